"""The DeepFilterNet3 network, evaluated for a batch of streams and a few consecutive 10 ms frames of each.

Same operations as the official ONNX graphs (encoder, ERB decoder, DF decoder), with the batch axis being
the streams and everything that the graphs carry across time held explicitly per stream:
- the encoder's two input convolutions look at the current and the two previous feature frames (the graphs
  pad time by 2 in front): the caller passes each stream's two frames before the call and its new ones;
- the GRUs' hidden states;
- the DF decoder's (5, 1) convolution over the last 5 frames of `c0`: kept as running partial sums for the
  next 4 outputs, so that a stream carries 4 x 10 x nb_df values instead of 4 frames of c0.

A call covers `steps` frames per stream (the worker's 20 ms frame is two). Rows are stream-major (row
b * steps + t is stream b's frame t): every layer without memory (convolutions, linear layers, the GRUs'
input projections, the decoders' convolutions) computes all rows in one operation, and only what runs along
time (the GRU recurrences, the DF decoder's partial sums) goes step by step. A stream's state advances at a
step only where the caller's mask says so (a frame it did not send, a decoder that did not run).

Inside, the convolutions work channel-last, (rows, frequencies, channels), so that every 1x1 convolution
is one matrix product over all rows and bins and the frequency taps read contiguous channel vectors; the
GRUs and grouped linear layers work feature-major, (features, rows).
"""

from __future__ import annotations

import numpy as np

from audio_engine.dfn3.model import Dfn3Files

F32 = np.float32
# Rows per panel of a packed weight (_weights_product.c's PANEL_ROWS).
PANEL_ROWS = 16
# Whether WeightProduct uses the compiled products: built (on install), and this CPU has AVX2 and FMA.
try:
    from audio_engine.dfn3 import _weights_product

    COMPILED_PRODUCTS = _weights_product.supported()
except ImportError:  # a source tree that `pip install` has not built
    COMPILED_PRODUCTS = False

# Dfn3Network.encode's (e0, e1, e2, e3, c0, emb, lsnr).
EncoderOutput = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def relu_(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, F32(0.0), out=x)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += F32(1.0)
    return np.reciprocal(x, out=x)


# The most result columns one weight product gets: OpenBLAS's single-threaded sgemm (Haswell kernels) slows
# down more than linearly beyond ~64 columns for weights of these shapes; measured, (768, 256) @ (256, 128)
# took 3.3 ms where two products of 64 columns took 1.4.
MAX_PRODUCT_COLUMNS = 64


def weights_times(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """weight (..., out, in) @ x (..., in, n), in products of at most MAX_PRODUCT_COLUMNS columns."""
    columns = x.shape[-1]
    if columns <= MAX_PRODUCT_COLUMNS:
        return np.matmul(weight, x)
    y = np.empty(np.broadcast_shapes(weight.shape[:-2], x.shape[:-2]) + (weight.shape[-2], columns), dtype=F32)
    for start in range(0, columns, MAX_PRODUCT_COLUMNS):
        end = start + MAX_PRODUCT_COLUMNS
        y[..., start:end] = np.matmul(weight, x[..., start:end])
    return y


class WeightProduct:
    """A fixed weight (out, in) times inputs (in, n): the GRUs' products, with few columns (a worker's streams).

    Uses the compiled panel products (`audio_engine/dfn3/_weights_product.c`, built on install) where this CPU
    has AVX2 and FMA: for 2-7 columns they take about half of what numpy's sgemm does, which repacks the
    weight on every call, and three quarters at 12. Elsewhere numpy. Both give the same sums up to float32
    rounding.
    """

    def __init__(self, weight: np.ndarray, compiled: bool | None = None) -> None:
        self.outputs, self.inputs = weight.shape
        self.compiled = COMPILED_PRODUCTS if compiled is None else compiled
        if self.compiled:
            if not COMPILED_PRODUCTS:
                raise RuntimeError("the compiled weight products are not available here")
            panels = -(-self.outputs // PANEL_ROWS)
            self._weight = np.empty(panels * PANEL_ROWS * self.inputs, dtype=F32)
            _weights_product.pack(np.ascontiguousarray(weight, dtype=F32), self._weight, self.outputs, self.inputs)
        else:
            self._weight = np.ascontiguousarray(weight, dtype=F32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.compiled:
            return weights_times(self._weight, x)
        x = np.ascontiguousarray(x, dtype=F32)
        y = np.empty((self.outputs, x.shape[1]), dtype=F32)
        _weights_product.times(self._weight, x, y, self.outputs, self.inputs, x.shape[1])
        return y


class GroupedLinear:
    """The graphs' grouped linear layers (`btgi,gih->btgh` einsums) on feature-major (features, B) input."""

    def __init__(self, weight: np.ndarray) -> None:
        self.groups, self.inputs, self.outputs = weight.shape
        self.weight_t = np.ascontiguousarray(weight.transpose(0, 2, 1))  # (groups, out, in)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch = x.shape[-1]
        y = weights_times(self.weight_t, x.reshape(self.groups, self.inputs, batch))
        return y.reshape(self.groups * self.outputs, batch)


class Gru:
    """One ONNX GRU layer (gates z, r, h; linear_before_reset=1) for a batch of streams over a few steps.

    Feature-major: the input is (in, rows) and the outputs come back as (H, rows), because a (3H, in)
    weight times a (in, rows) input is the faster matrix product for small batches. The input projection
    is one product for all steps; only the recurrence runs step by step.
    """

    def __init__(self, w: np.ndarray, r: np.ndarray, b: np.ndarray) -> None:
        hidden = r.shape[-1]
        self.hidden = hidden
        self.w = WeightProduct(w[0])
        self.r = WeightProduct(r[0])
        self.b_in = np.ascontiguousarray(b[0, : 3 * hidden, None])
        self.b_rec = np.ascontiguousarray(b[0, 3 * hidden :, None])

    def run(self, x: np.ndarray, h: np.ndarray, commit: np.ndarray | None) -> np.ndarray:
        """x (in, B * steps) stream-major; h (B, H) advances in place at the steps where `commit` (B, steps)
        is set (None = everywhere). Returns each step's output (H, B * steps); where a step is not committed
        its output is what the stream would have got, and the state carries on from before it."""
        hidden = self.hidden
        batch = h.shape[0]
        steps = x.shape[1] // batch
        if steps > 1:  # step-major, so that each step's gates are contiguous rows of `batch` columns
            x = x.reshape(x.shape[0], batch, steps).transpose(0, 2, 1).reshape(x.shape[0], -1)
        gi = self.w(x)
        gi += self.b_in
        if steps > 1:
            # (steps, 3H, B): each step's gates one contiguous block (elementwise ufuncs on a column slice of
            # a wider array run element by element when B is 1: ~6x slower).
            gi = np.ascontiguousarray(gi.reshape(3 * hidden, steps, batch).transpose(1, 0, 2))
        else:
            gi = gi[None]
        state = np.ascontiguousarray(h.T)
        outputs = np.empty((steps, hidden, batch), dtype=F32)
        for t in range(steps):
            new = self._cell(gi[t], state)
            outputs[t] = new
            state = new if commit is None else np.where(commit[:, t], new, state)
        h[...] = state.T
        return outputs.transpose(1, 2, 0).reshape(hidden, batch * steps)

    def _cell(self, gi: np.ndarray, h: np.ndarray) -> np.ndarray:
        """gi (3H, B): the input's projection for this step (overwritten); h (H, B) -> new hidden state (H, B)."""
        hidden = self.hidden
        gh = self.r(h)
        gh += self.b_rec
        zr = gi[: 2 * hidden]
        zr += gh[: 2 * hidden]
        sigmoid_(zr)
        z, r = zr[:hidden], zr[hidden:]
        n = gi[2 * hidden :]
        r *= gh[2 * hidden :]
        n += r
        np.tanh(n, out=n)
        # h' = (1 - z) n + z h = n + z (h - n)
        new = h - n
        new *= z
        new += n
        return new


class Pointwise:
    """A 1x1 convolution with bias (and ReLU) on channel-last (B, freqs, channels) activations."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight_t = np.ascontiguousarray(weight.reshape(weight.shape[0], -1).T)  # (in, out)
        self.bias = bias

    def __call__(self, x: np.ndarray, relu: bool = True) -> np.ndarray:
        batch, freqs, channels = x.shape
        y = x.reshape(batch * freqs, channels) @ self.weight_t
        y += self.bias
        if relu:
            relu_(y)
        return y.reshape(batch, freqs, -1)


def pad_freqs(x: np.ndarray) -> np.ndarray:
    """(B, F, C) -> (B, F + 2, C) with a zero bin on each side."""
    batch, freqs, channels = x.shape
    padded = np.empty((batch, freqs + 2, channels), dtype=F32)
    padded[:, 0] = 0
    padded[:, -1] = 0
    padded[:, 1:-1] = x
    return padded


class Depthwise:
    """A depthwise (1, 3) convolution along frequency, padding 1, stride 1 or 2, no bias."""

    def __init__(self, weight: np.ndarray, stride: int) -> None:
        self.taps = [np.ascontiguousarray(weight[:, 0, 0, k]) for k in range(3)]
        self.stride = stride

    def __call__(self, x: np.ndarray) -> np.ndarray:
        padded = pad_freqs(x)
        s = self.stride
        out_freqs = (x.shape[1] - 1) // s + 1
        y = self.taps[0] * padded[:, 0 : s * out_freqs : s]
        for k in (1, 2):
            y += self.taps[k] * padded[:, k : k + s * out_freqs : s]
        return y


class DepthwiseTransposed:
    """A depthwise (1, 3) transposed convolution, stride 2, padding 1, output padding 1: F -> 2F."""

    def __init__(self, weight: np.ndarray) -> None:
        self.taps = [np.ascontiguousarray(weight[:, 0, 0, k]) for k in range(3)]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        batch, freqs, channels = x.shape
        y = np.empty((batch, 2 * freqs, channels), dtype=F32)
        np.multiply(self.taps[1], x, out=y[:, 0::2])
        odd = y[:, 1::2]
        np.multiply(self.taps[2], x, out=odd)
        odd[:, :-1] += self.taps[0] * x[:, 1:]
        return y


class ChannelScale:
    """A depthwise 1x1 convolution with bias and ReLU (the ERB decoder's skip paths)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = np.ascontiguousarray(weight.reshape(-1))
        self.bias = bias

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.weight * x
        y += self.bias
        return relu_(y)


def run_grus(grus: list[Gru], x: np.ndarray, h: np.ndarray, commit: np.ndarray | None) -> np.ndarray:
    """Stacked GRU layers, layer by layer over all steps: x (in, rows) -> last layer's output (H, rows);
    h (B, layers, H) advances where `commit` (B, steps; None = everywhere)."""
    for layer, gru in enumerate(grus):
        x = gru.run(x, h[:, layer], commit)
    return x


def causal_patches_3x3(frames: np.ndarray, steps: int) -> np.ndarray:
    """(B, 2 + steps, F), two frames of context then the new ones -> (B * steps * F, 9): for each new frame the
    inputs of a 3x3 convolution over it and the two frames before it, with frequency padding 1."""
    batch, _, freqs = frames.shape
    padded = np.zeros((batch, 2 + steps, freqs + 2), dtype=F32)
    padded[:, :, 1:-1] = frames
    rows = np.empty((batch, steps, freqs, 9), dtype=F32)
    for kt in range(3):
        for kf in range(3):
            rows[..., kt * 3 + kf] = padded[:, kt : kt + steps, kf : kf + freqs]
    return rows.reshape(-1, 9)


class Dfn3Network:
    """The three graphs of a DeepFilterNet3 model as batched one-frame steps; holds only weights."""

    def __init__(self, files: Dfn3Files) -> None:
        cfg = files.config
        self.config = cfg
        enc, erb, dfd = files.enc, files.erb_dec, files.df_dec
        self.conv_ch = cfg.conv_ch
        self.nb_df = cfg.nb_df
        self.df_order = cfg.df_order

        w, b = enc("/erb_conv0/1/Conv")
        self.erb_conv0 = (np.ascontiguousarray(w.reshape(w.shape[0], 9).T), b)  # (9 taps, out), (out,)
        (w,) = enc("/erb_conv1/0/Conv")
        self.erb_conv1 = (Depthwise(w, stride=2), Pointwise(*enc("/erb_conv1/1/Conv")))
        (w,) = enc("/erb_conv2/Conv")
        self.erb_conv2 = (Depthwise(w, stride=2), Pointwise(*enc("/erb_conv2/Conv_1")))
        (w,) = enc("/erb_conv3/0/Conv")
        self.erb_conv3 = (Depthwise(w, stride=1), Pointwise(*enc("/erb_conv3/1/Conv")))
        (w,) = enc("/df_conv0/1/Conv")  # (out, 1, 3, 3), 2 groups: input channel g feeds half g of the outputs
        half = w.shape[0] // 2
        grouped = np.zeros((2, 9, w.shape[0]), dtype=F32)  # (input channel, taps, out)
        for g in range(2):
            grouped[g, :, g * half : (g + 1) * half] = w[g * half : (g + 1) * half].reshape(half, 9).T
        self.df_conv0 = (grouped.reshape(18, -1), Pointwise(*enc("/df_conv0/2/Conv")))
        (w,) = enc("/df_conv1/Conv")
        self.df_conv1 = (Depthwise(w, stride=2), Pointwise(*enc("/df_conv1/Conv_1")))
        self.df_fc_emb = GroupedLinear(*enc("/df_fc_emb/0/Einsum"))
        self.enc_lin_in = GroupedLinear(*enc("/emb_gru/linear_in/0/Einsum"))
        self.enc_gru = Gru(*enc("/emb_gru/GRU"))
        self.enc_lin_out = GroupedLinear(*enc("/emb_gru/linear_out/0/Einsum"))
        (lsnr_w,) = enc("/lsnr_fc/0/MatMul")
        self.lsnr_w_row = np.ascontiguousarray(lsnr_w.T)
        (self.lsnr_b,) = enc("/lsnr_fc/0/Add")
        self.lsnr_scale = F32(cfg.lsnr_max - cfg.lsnr_min)
        self.lsnr_offset = F32(cfg.lsnr_min)

        self.erb_lin_in = GroupedLinear(*erb("/emb_gru/linear_in/Einsum"))
        self.erb_grus = [Gru(*erb("/emb_gru/GRU")), Gru(*erb("/emb_gru/GRU_1"))]
        self.erb_lin_out = GroupedLinear(*erb("/emb_gru/linear_out/Einsum"))
        self.conv3p = ChannelScale(*erb("/conv3p/0/Conv"))
        (w,) = erb("/convt3/Conv")
        self.convt3 = (Depthwise(w, stride=1), Pointwise(*erb("/convt3/Conv_1")))
        self.conv2p = ChannelScale(*erb("/conv2p/Conv"))
        self.convt2 = (DepthwiseTransposed(*erb("/convt2/0/ConvTranspose")), Pointwise(*erb("/convt2/1/Conv")))
        self.conv1p = ChannelScale(*erb("/conv1p/Conv"))
        self.convt1 = (DepthwiseTransposed(*erb("/convt1/ConvTranspose")), Pointwise(*erb("/convt1/Conv")))
        self.conv0p = ChannelScale(*erb("/conv0p/Conv"))
        w, b = erb("/conv0_out/0/Conv")
        self.conv0_out = (np.ascontiguousarray(w[0, :, 0, :]), b)  # (channels, 3 taps), (1,)

        self.df_lin_in = GroupedLinear(*dfd("/df_gru/linear_in/linear_in.0/Einsum"))
        self.df_grus = [Gru(*dfd("/df_gru/gru/GRU")), Gru(*dfd("/df_gru/gru/GRU_1"))]
        self.df_skip = GroupedLinear(*dfd("/df_skip/Einsum"))
        self.df_out = GroupedLinear(*dfd("/df_out/df_out.0/Einsum"))
        (w,) = dfd("/df_convp/df_convp.1/Conv")  # (out 10, in 32 per group, taps 5, 1), 2 groups
        out_ch, in_per_group, taps, _ = w.shape
        self.convp_taps = taps
        self.convp_out = out_ch
        # (channels, taps * out): one product gives what a c0 frame contributes through every tap.
        stacked = np.zeros((self.conv_ch, taps, out_ch), dtype=F32)
        groups = self.conv_ch // in_per_group
        per_group = out_ch // groups
        for o in range(out_ch):
            g = o // per_group
            stacked[g * in_per_group : (g + 1) * in_per_group, :, o] = w[o, :, :, 0]
        self.convp_weight = stacked.reshape(self.conv_ch, taps * out_ch)
        self.convp_pw = Pointwise(*dfd("/df_convp/df_convp.2/Conv"))

    # -- encoder -------------------------------------------------------------------------------------------------

    def encode(
        self, erb_frames: np.ndarray, spec_frames: np.ndarray, enc_h: np.ndarray, commit: np.ndarray | None
    ) -> EncoderOutput:
        """erb_frames (B, 2 + steps, nb_erb) and spec_frames (B, 2 + steps, 2, nb_df): per stream its two
        feature frames before the call, then its new ones.

        enc_h (B, H) advances in place where `commit` (B, steps; None = everywhere). Returns (e0, e1, e2, e3,
        c0) as (rows, freqs, channels), emb (512, rows) and lsnr (rows,) in dB, rows = B * steps.
        """
        batch, steps = erb_frames.shape[0], erb_frames.shape[1] - 2
        rows = batch * steps
        w, b = self.erb_conv0
        e0 = causal_patches_3x3(erb_frames, steps) @ w
        e0 += b
        e0 = relu_(e0).reshape(rows, erb_frames.shape[2], -1)
        e1 = self.erb_conv1[1](self.erb_conv1[0](e0))
        e2 = self.erb_conv2[1](self.erb_conv2[0](e1))
        e3 = self.erb_conv3[1](self.erb_conv3[0](e2))

        w, pointwise = self.df_conv0
        nb_df = spec_frames.shape[3]
        patches = np.concatenate(
            [causal_patches_3x3(spec_frames[:, :, 0], steps), causal_patches_3x3(spec_frames[:, :, 1], steps)],
            axis=1,
        )
        c0 = pointwise((patches @ w).reshape(rows, nb_df, -1))
        c1 = self.df_conv1[1](self.df_conv1[0](c0))

        # Channel-last flattening is the graphs' (B, F, C) order; the dense layers run feature-major.
        emb = relu_(self.df_fc_emb(c1.reshape(rows, -1).T))
        emb += e3.reshape(rows, -1).T
        x = relu_(self.enc_lin_in(emb))
        h = self.enc_gru.run(x, enc_h, commit)
        emb = relu_(self.enc_lin_out(h))
        lsnr = self.lsnr_w_row @ emb
        lsnr += self.lsnr_b
        lsnr = sigmoid_(lsnr)[0] * self.lsnr_scale + self.lsnr_offset
        return e0, e1, e2, e3, c0, emb, lsnr

    # -- ERB decoder ---------------------------------------------------------------------------------------------

    def decode_erb(
        self,
        emb: np.ndarray,
        e3: np.ndarray,
        e2: np.ndarray,
        e1: np.ndarray,
        e0: np.ndarray,
        erb_h: np.ndarray,
        commit: np.ndarray | None,
    ) -> np.ndarray:
        """ERB gains (rows, nb_erb). erb_h (B, layers, H) advances in place where `commit` (B, steps; None =
        everywhere)."""
        rows = emb.shape[1]
        x = run_grus(self.erb_grus, relu_(self.erb_lin_in(emb)), erb_h, commit)
        x = relu_(self.erb_lin_out(x))
        y = self.conv3p(e3) + x.T.reshape(e3.shape)
        y = self.convt3[1](self.convt3[0](y))
        y = self.conv2p(e2) + y
        y = self.convt2[1](self.convt2[0](y))
        y = self.conv1p(e1) + y
        y = self.convt1[1](self.convt1[0](y))
        y = self.conv0p(e0) + y
        taps, bias = self.conv0_out
        nb_erb = y.shape[1]
        z = (pad_freqs(y).reshape(-1, y.shape[2]) @ taps).reshape(rows, nb_erb + 2, 3)
        m = z[:, 0:nb_erb, 0] + z[:, 1 : nb_erb + 1, 1]
        m += z[:, 2 : nb_erb + 2, 2]
        m += bias
        return sigmoid_(m)

    # -- DF decoder ----------------------------------------------------------------------------------------------

    def decode_df(
        self, emb: np.ndarray, c0: np.ndarray, df_h: np.ndarray, convp_acc: np.ndarray, commit: np.ndarray | None
    ) -> np.ndarray:
        """Deep-filter coefficients (rows, nb_df, order) complex64.

        df_h (B, layers, H) and convp_acc (B, taps - 1, nb_df, out) advance in place where `commit` (B, steps;
        None = everywhere).
        """
        rows = emb.shape[1]
        batch = df_h.shape[0]
        steps = rows // batch
        x = run_grus(self.df_grus, relu_(self.df_lin_in(emb)), df_h, commit)
        x += self.df_skip(emb)
        out = np.tanh(self.df_out(x))  # (nb_df * order * 2, rows)

        # What each new c0 frame contributes through each tap: (B, steps, nb_df, taps, out).
        taps, out_ch = self.convp_taps, self.convp_out
        part = (c0.reshape(-1, self.conv_ch) @ self.convp_weight).reshape(batch, steps, self.nb_df, taps, out_ch)
        conv = np.empty((batch, steps, self.nb_df, out_ch), dtype=F32)
        acc = convp_acc
        for t in range(steps):
            frame = part[:, t]
            np.add(acc[:, 0], frame[:, :, taps - 1], out=conv[:, t])
            # The partial sums of the next taps - 1 outputs: shifted by one, plus this frame through the
            # taps before.
            advanced = np.empty_like(convp_acc)
            np.add(acc[:, 1:], frame[:, :, taps - 2 : 0 : -1].transpose(0, 2, 1, 3), out=advanced[:, : taps - 2])
            advanced[:, taps - 2] = frame[:, :, 0]
            acc = advanced if commit is None else np.where(commit[:, t, None, None, None], advanced, acc)
        convp_acc[...] = acc
        coefs = self.convp_pw(conv.reshape(rows, self.nb_df, out_ch))  # (rows, nb_df, order * 2)
        coefs += out.T.reshape(coefs.shape)
        return coefs.view(np.complex64)
