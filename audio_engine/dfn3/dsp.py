"""The signal processing around the DeepFilterNet3 network, as libDF (DeepFilterNet's Rust core) defines it.

Everything works on a batch of streams at once: axis 0 is the stream. Spectra are complex64 with
`fft_size // 2 + 1` bins; features and gains are float32.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32

# Initial states of the running feature normalisation (libDF's MEAN_NORM_INIT and UNIT_NORM_INIT).
MEAN_NORM_INIT = (-60.0, -90.0)
UNIT_NORM_INIT = (0.001, 0.0001)


def _freq2erb(freq_hz: np.float32) -> np.float32:
    return F32(9.265) * np.log1p(F32(freq_hz) / (F32(24.7) * F32(9.265)))


def _erb2freq(n_erb: np.float32) -> np.float32:
    return F32(24.7) * F32(9.265) * (np.exp(F32(n_erb) / F32(9.265)) - F32(1.0))


def erb_band_widths(sr: int, fft_size: int, nb_bands: int, min_nb_freqs: int) -> np.ndarray:
    """Number of FFT bins in each ERB band (they add up to fft_size // 2 + 1)."""
    freq_width = F32(sr) / F32(fft_size)
    erb_low, erb_high = _freq2erb(F32(0.0)), _freq2erb(F32(sr // 2))
    step = (erb_high - erb_low) / F32(nb_bands)
    widths = np.zeros(nb_bands, dtype=np.int64)
    prev_freq = 0
    freq_over = 0
    for i in range(1, nb_bands + 1):
        fb = int(np.round(_erb2freq(erb_low + F32(i) * step) / freq_width))
        nb_freqs = fb - prev_freq - freq_over
        if nb_freqs < min_nb_freqs:
            freq_over = min_nb_freqs - nb_freqs
            nb_freqs = min_nb_freqs
        else:
            freq_over = 0
        widths[i - 1] = nb_freqs
        prev_freq = fb
    widths[-1] += 1
    widths[-1] -= widths.sum() - (fft_size // 2 + 1)
    return widths


def vorbis_window(fft_size: int) -> np.ndarray:
    """sin(pi/2 sin^2(pi (n + 1/2) / N)), computed in double precision like libDF."""
    half = fft_size // 2
    inner = np.sin(0.5 * np.pi * (np.arange(fft_size, dtype=np.float64) + 0.5) / half)
    return np.sin(0.5 * np.pi * inner * inner).astype(F32)


def linspace_f32(start: float, stop: float, count: int) -> np.ndarray:
    step = (F32(stop) - F32(start)) / F32(count - 1)
    return (F32(start) + np.arange(count, dtype=F32) * step).astype(F32)


def band_power(spec: np.ndarray, bin_weight: np.ndarray, band_starts: np.ndarray) -> np.ndarray:
    """Mean power of each ERB band: spec (B, n_freqs) complex64 -> (B, nb_bands) float32.

    bin_weight: 1 / (width of the bin's band) per bin; band_starts: the first bin of each band.
    """
    parts = spec.view(F32)
    power = parts[:, 0::2] * parts[:, 0::2]
    power += parts[:, 1::2] * parts[:, 1::2]
    power *= bin_weight
    return np.add.reduceat(power, band_starts, axis=1)


def post_filter(noisy: np.ndarray, enhanced: np.ndarray, beta: float) -> None:
    """libDF's post-filter, in place on `enhanced`: attenuates bins further where the gain is already low.

    As in libDF it runs over whole groups of four bins, so the last (Nyquist) bin of an odd-length
    spectrum is left as it is.
    """
    n = (noisy.shape[-1] // 4) * 4
    eps = F32(1e-12)
    g = np.abs(enhanced[:, :n]) / (np.abs(noisy[:, :n]) + eps)
    np.minimum(g, F32(1.0), out=g)
    np.maximum(g, eps, out=g)
    g_sin = g * np.sin(g * F32(np.pi / 2))
    ratio = g / g_sin
    pf = (F32(beta + 1.0) * g / (F32(1.0) + F32(beta) * ratio * ratio)) / g
    enhanced[:, :n] *= pf
