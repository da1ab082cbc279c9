"""Incremental WAV recording and the repair of recordings left by a killed process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np

from audio_engine import complete_orphan_recording, repair_partial_wav
from audio_engine.recorder import FLUSH_INTERVAL_S, WavRecorder

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_recording_is_partial_while_streaming_and_renamed_on_finalize(tmp_path):
    recorder = WavRecorder(tmp_path / "talk.wav")
    tone = (0.3 * np.sin(np.arange(48_000) / 10)).astype(np.float32)
    for start in range(0, len(tone), 960):
        recorder.write(tone[start : start + 960])
    assert (tmp_path / "talk.partial.wav").exists() and not (tmp_path / "talk.wav").exists()

    result = recorder.finalize()

    assert result.path == tmp_path / "talk.wav" and result.duration_s == 1.0
    assert not (tmp_path / "talk.partial.wav").exists()
    with wave.open(str(result.path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (48_000, 1, 2)
        written = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2") / 32768
    assert np.max(np.abs(written - tone)) < 1e-3


def test_recording_reaches_the_os_at_least_every_half_second(tmp_path):
    recorder = WavRecorder(tmp_path / "talk.wav")
    for _ in range(int(FLUSH_INTERVAL_S / 0.02) + 1):
        recorder.write(np.zeros(960, dtype=np.float32))
    on_disk = (tmp_path / "talk.partial.wav").stat().st_size - 44
    assert on_disk / 2 / 48_000 >= FLUSH_INTERVAL_S
    recorder.finalize()


RECORD_FOREVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from audio_engine.recorder import WavRecorder
    recorder = WavRecorder(sys.argv[1])
    print("recording", flush=True)
    start = time.perf_counter()
    frame = (0.1 * np.random.default_rng(0).standard_normal(960)).astype(np.float32)
    for index in range(100_000):
        recorder.write(frame)
        time.sleep(max(0.0, start + (index + 1) * 0.02 - time.perf_counter()))
""")


def test_recording_of_a_killed_process_is_repaired_to_its_duration(tmp_path):
    target = tmp_path / "killed.wav"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen([sys.executable, "-c", RECORD_FOREVER, str(target)], stdout=subprocess.PIPE, env=env)
    assert child.stdout.readline() == b"recording\n"
    started = time.perf_counter()
    time.sleep(2.0)
    child.send_signal(signal.SIGKILL)
    recorded_for = time.perf_counter() - started
    child.wait()

    partial = tmp_path / "killed.partial.wav"
    duration = repair_partial_wav(partial)

    assert abs(duration - recorded_for) < 1.0, (duration, recorded_for)
    with wave.open(str(partial)) as wav:
        assert abs(wav.getnframes() / 48_000 - duration) < 1e-6
    result = complete_orphan_recording(partial)
    assert result.path == target and target.exists() and not partial.exists()
    assert result.duration_s == duration


def test_repair_handles_a_file_cut_inside_a_sample(tmp_path):
    recorder = WavRecorder(tmp_path / "odd.wav")
    recorder.write(np.zeros(4800, dtype=np.float32))
    recorder.abandon()
    partial = tmp_path / "odd.partial.wav"
    with open(partial, "ab") as handle:
        handle.write(b"\x01")
    assert repair_partial_wav(partial) == 0.1
    with wave.open(str(partial)) as wav:
        assert wav.getnframes() == 4800


def test_finalizing_twice_returns_the_same_recording(tmp_path):
    recorder = WavRecorder(tmp_path / "talk.wav")
    recorder.write(np.zeros(4800, dtype=np.float32))
    first = recorder.finalize()
    assert recorder.finalize() == first and first.duration_s == 0.1
