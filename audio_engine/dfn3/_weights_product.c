/* Weight products with few columns for the batched DeepFilterNet3 (audio_engine.dfn3.network.WeightProduct).

   A denoise worker multiplies each GRU's fixed (3H x in) weights by the inputs or hidden states of its few
   streams: 1 to ~24 columns per product, 15 such products every 20 ms. OpenBLAS's sgemm repacks the whole weight
   matrix on every call and its kernels are built for wide products; measured single-threaded on the 2-core
   test machine, a (768 x 256) weight times 6 columns took ~120 us where this code takes ~60. Here the weights
   are packed once, when the model loads, in panels of 16 rows laid out k by k, and each product streams
   through them with 12 accumulators in registers (16 rows x 6 columns per pass). Compiled for AVX2 and FMA
   and used only when the CPU has both (`supported()`); otherwise the caller keeps using numpy. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define PANEL_ROWS 16 /* network.py's PANEL_ROWS sizes the packed buffers: keep the two equal. */
#define BLOCK_COLUMNS 6
#define AVX2_FMA __attribute__((target("avx2,fma")))

/* Writes rows [0, rows) of a 16-row panel's 6 (or 1) accumulated columns into y (row-major, `columns` wide). */
#define STORE_COLUMN(low, high, column)                                                     \
    do {                                                                                    \
        float lane[PANEL_ROWS];                                                             \
        _mm256_storeu_ps(lane, low);                                                        \
        _mm256_storeu_ps(lane + 8, high);                                                   \
        for (int r = 0; r < rows; r++) y[(size_t)r * columns + (column)] = lane[r];         \
    } while (0)

#define FMA_COLUMN(c)                                                                       \
    xb = _mm256_broadcast_ss(xk + (c));                                                     \
    acc##c##0 = _mm256_fmadd_ps(w0, xb, acc##c##0);                                         \
    acc##c##1 = _mm256_fmadd_ps(w1, xb, acc##c##1)

/* One panel times 6 columns of x (inputs x columns, row-major) starting at `first`. */
AVX2_FMA static void panel_times_6(const float *panel, const float *x, float *y, int inputs, int columns,
                                   int first, int rows) {
    __m256 acc00 = _mm256_setzero_ps(), acc01 = acc00, acc10 = acc00, acc11 = acc00, acc20 = acc00,
           acc21 = acc00, acc30 = acc00, acc31 = acc00, acc40 = acc00, acc41 = acc00, acc50 = acc00,
           acc51 = acc00;
    for (int k = 0; k < inputs; k++) {
        const float *wk = panel + (size_t)k * PANEL_ROWS;
        const float *xk = x + (size_t)k * columns + first;
        __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8), xb;
        FMA_COLUMN(0);
        FMA_COLUMN(1);
        FMA_COLUMN(2);
        FMA_COLUMN(3);
        FMA_COLUMN(4);
        FMA_COLUMN(5);
    }
    STORE_COLUMN(acc00, acc01, first);
    STORE_COLUMN(acc10, acc11, first + 1);
    STORE_COLUMN(acc20, acc21, first + 2);
    STORE_COLUMN(acc30, acc31, first + 3);
    STORE_COLUMN(acc40, acc41, first + 4);
    STORE_COLUMN(acc50, acc51, first + 5);
}

/* One panel times one column: two independent sums over even and odd k, to hide the FMA latency. */
AVX2_FMA static void panel_times_1(const float *panel, const float *x, float *y, int inputs, int columns,
                                   int column, int rows) {
    __m256 even0 = _mm256_setzero_ps(), even1 = even0, odd0 = even0, odd1 = even0;
    int k = 0;
    for (; k + 1 < inputs; k += 2) {
        const float *wk = panel + (size_t)k * PANEL_ROWS;
        __m256 xe = _mm256_broadcast_ss(x + (size_t)k * columns + column);
        __m256 xo = _mm256_broadcast_ss(x + (size_t)(k + 1) * columns + column);
        even0 = _mm256_fmadd_ps(_mm256_loadu_ps(wk), xe, even0);
        even1 = _mm256_fmadd_ps(_mm256_loadu_ps(wk + 8), xe, even1);
        odd0 = _mm256_fmadd_ps(_mm256_loadu_ps(wk + 16), xo, odd0);
        odd1 = _mm256_fmadd_ps(_mm256_loadu_ps(wk + 24), xo, odd1);
    }
    if (k < inputs) {
        const float *wk = panel + (size_t)k * PANEL_ROWS;
        __m256 xe = _mm256_broadcast_ss(x + (size_t)k * columns + column);
        even0 = _mm256_fmadd_ps(_mm256_loadu_ps(wk), xe, even0);
        even1 = _mm256_fmadd_ps(_mm256_loadu_ps(wk + 8), xe, even1);
    }
    even0 = _mm256_add_ps(even0, odd0);
    even1 = _mm256_add_ps(even1, odd1);
    STORE_COLUMN(even0, even1, column);
}

AVX2_FMA static void packed_times(const float *packed, const float *x, float *y, int outputs, int inputs,
                                  int columns) {
    for (int row = 0; row < outputs; row += PANEL_ROWS) {
        const float *panel = packed + (size_t)row * inputs;
        int rows = outputs - row < PANEL_ROWS ? outputs - row : PANEL_ROWS;
        float *y_rows = y + (size_t)row * columns;
        int column = 0;
        for (; column + BLOCK_COLUMNS <= columns; column += BLOCK_COLUMNS)
            panel_times_6(panel, x, y_rows, inputs, columns, column, rows);
        for (; column < columns; column++) panel_times_1(panel, x, y_rows, inputs, columns, column, rows);
    }
}

static int contiguous_floats(Py_buffer *view, Py_ssize_t count, const char *name) {
    if (view->len != count * (Py_ssize_t)sizeof(float) || view->itemsize != (Py_ssize_t)sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float32 values", name, count);
        return 0;
    }
    return 1;
}

static int panel_count(int outputs) { return (outputs + PANEL_ROWS - 1) / PANEL_ROWS; }

/* pack(weight, packed, outputs, inputs): weight (outputs x inputs, row-major) into panels; packed must hold
   panel_count(outputs) * 16 * inputs floats (the last panel's missing rows are zeros). */
static PyObject *pack(PyObject *self, PyObject *args) {
    Py_buffer weight, packed;
    int outputs, inputs;
    if (!PyArg_ParseTuple(args, "y*w*ii", &weight, &packed, &outputs, &inputs)) return NULL;
    PyObject *result = NULL;
    if (outputs > 0 && inputs > 0 && contiguous_floats(&weight, (Py_ssize_t)outputs * inputs, "weight") &&
        contiguous_floats(&packed, (Py_ssize_t)panel_count(outputs) * PANEL_ROWS * inputs, "packed")) {
        const float *w = weight.buf;
        float *p = packed.buf;
        memset(p, 0, (size_t)packed.len);
        for (int row = 0; row < outputs; row++) {
            float *panel = p + (size_t)(row / PANEL_ROWS) * PANEL_ROWS * inputs;
            for (int k = 0; k < inputs; k++) panel[(size_t)k * PANEL_ROWS + row % PANEL_ROWS] = w[(size_t)row * inputs + k];
        }
        result = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "outputs and inputs must be positive");
    }
    PyBuffer_Release(&weight);
    PyBuffer_Release(&packed);
    return result;
}

/* times(packed, x, y, outputs, inputs, columns): y (outputs x columns) = weight @ x (inputs x columns). */
static PyObject *times(PyObject *self, PyObject *args) {
    Py_buffer packed, x, y;
    int outputs, inputs, columns;
    if (!PyArg_ParseTuple(args, "y*y*w*iii", &packed, &x, &y, &outputs, &inputs, &columns)) return NULL;
    PyObject *result = NULL;
    if (outputs > 0 && inputs > 0 && columns > 0 &&
        contiguous_floats(&packed, (Py_ssize_t)panel_count(outputs) * PANEL_ROWS * inputs, "packed") &&
        contiguous_floats(&x, (Py_ssize_t)inputs * columns, "x") &&
        contiguous_floats(&y, (Py_ssize_t)outputs * columns, "y")) {
        Py_BEGIN_ALLOW_THREADS
        packed_times(packed.buf, x.buf, y.buf, outputs, inputs, columns);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "outputs, inputs and columns must be positive");
    }
    PyBuffer_Release(&packed);
    PyBuffer_Release(&x);
    PyBuffer_Release(&y);
    return result;
}

static PyObject *supported(PyObject *self, PyObject *unused) {
    __builtin_cpu_init();
    return PyBool_FromLong(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
}

static PyMethodDef methods[] = {
    {"pack", pack, METH_VARARGS, "pack(weight, packed, outputs, inputs): weights into 16-row panels."},
    {"times", times, METH_VARARGS, "times(packed, x, y, outputs, inputs, columns): y = weight @ x."},
    {"supported", supported, METH_NOARGS, "Whether this CPU has AVX2 and FMA, which `times` needs."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_weights_product", NULL, -1, methods};

PyMODINIT_FUNC PyInit__weights_product(void) { return PyModule_Create(&module); }
