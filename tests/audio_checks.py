"""Measurements on received audio, shared by the media tests."""

import numpy as np

HOP = 480  # 10 ms at 48 kHz
FRAME = 960  # 20 ms at 48 kHz


def level_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) + 1e-12))


def _envelope(samples: np.ndarray) -> np.ndarray:
    hops = len(samples) // HOP
    return np.sqrt(np.mean(samples[: hops * HOP].reshape(hops, HOP) ** 2, axis=1))


def alignment_lag(received: np.ndarray, reference: np.ndarray) -> int:
    """Where `reference` starts in `received`, in samples (a whole number of 10 ms hops; negative when `received`
    starts inside `reference`), by cross-correlating their envelopes."""
    env_received, env_reference = _envelope(received), _envelope(reference)
    correlation = np.correlate(env_received - env_received.mean(), env_reference - env_reference.mean(), mode="full")
    return (int(np.argmax(correlation)) - (len(env_reference) - 1)) * HOP


def longest_silence_s(samples: np.ndarray) -> float:
    """The longest run of digital silence (exact zeros: what a receiver plays for packets that never came)."""
    silent = np.concatenate([[False], samples == 0, [False]])
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) / 48_000 if len(runs) else 0.0


def aligned_pair(received: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The overlapping parts of `received` and `reference`, lined up by cross-correlating their envelopes.

    Works whichever started first (a listener may join after the audio began, and arrives with some delay).
    """
    lag = alignment_lag(received, reference)
    if lag >= 0:
        received = received[lag:]
    else:
        reference = reference[-lag:]
    length = min(len(received), len(reference))
    return received[:length], reference[:length]


def pause_level_db(received: np.ndarray, clean_reference: np.ndarray) -> float:
    """Level of the received audio where the clean reference is silent (the pauses between words)."""
    received, clean_reference = aligned_pair(received, clean_reference)
    frames = len(received) // FRAME
    clean_frames = clean_reference[: frames * FRAME].reshape(frames, FRAME)
    silent = np.max(np.abs(clean_frames), axis=1) < 1e-3
    silent &= np.roll(silent, 3) & np.roll(silent, -3)  # stay clear of the edges of words
    return level_db(received[: frames * FRAME].reshape(frames, FRAME)[silent])
