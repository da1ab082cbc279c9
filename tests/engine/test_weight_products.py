"""The GRUs' weight products: compiled panel products where the CPU allows, numpy elsewhere, the same sums."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio_engine.dfn3.network import COMPILED_PRODUCTS, WeightProduct


def cpu_has_avx2_and_fma() -> bool:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return {"avx2", "fma"} <= set(flags.split())


needs_avx2 = pytest.mark.skipif(not cpu_has_avx2_and_fma(), reason="this CPU has no AVX2 and FMA")


@needs_avx2
def test_the_compiled_products_are_built_and_used_where_the_cpu_has_avx2_and_fma():
    assert COMPILED_PRODUCTS
    assert WeightProduct(np.ones((16, 4), np.float32)).compiled


@needs_avx2
@pytest.mark.parametrize("outputs, inputs", [(768, 256), (100, 7), (16, 1), (5, 300)])
def test_compiled_products_equal_numpy_for_any_shape_and_column_count(outputs, inputs):
    rng = np.random.default_rng(outputs + inputs)
    weight = rng.standard_normal((outputs, inputs)).astype(np.float32)
    product = WeightProduct(weight, compiled=True)
    for columns in (*range(1, 14), 24, 64, 130):
        x = rng.standard_normal((inputs, columns)).astype(np.float32)
        expected = weight.astype(np.float64) @ x.astype(np.float64)
        got = product(x)
        assert got.shape == (outputs, columns) and got.dtype == np.float32
        assert np.max(np.abs(got - expected)) < 1e-5 * max(1.0, np.max(np.abs(expected))) * np.sqrt(inputs)


@needs_avx2
def test_inputs_that_are_views_are_read_as_the_values_they_show():
    weight = np.arange(48 * 10, dtype=np.float32).reshape(48, 10) / 100
    product = WeightProduct(weight, compiled=True)
    wide = np.arange(10 * 14, dtype=np.float32).reshape(10, 14)
    for view in (wide[:, ::2], np.asfortranarray(wide[:, :5]), wide[:, 3:9].astype(np.float64)):
        assert np.allclose(product(view), weight @ view.astype(np.float32), rtol=1e-6)


def test_numpy_products_are_the_fallback():
    weight = np.random.default_rng(1).standard_normal((40, 9)).astype(np.float32)
    x = np.random.default_rng(2).standard_normal((9, 3)).astype(np.float32)
    product = WeightProduct(weight, compiled=False)
    assert not product.compiled
    assert np.allclose(product(x), weight @ x, rtol=1e-6)


@needs_avx2
def test_inputs_of_the_wrong_size_are_refused_clearly():
    product = WeightProduct(np.ones((32, 10), np.float32), compiled=True)
    with pytest.raises(ValueError, match="x: expected 30 contiguous float32 values"):
        product(np.ones((9, 3), np.float32))  # 9 inputs where the weight takes 10: 27 values
