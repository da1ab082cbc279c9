"""The file denoiser on its own: a whole file aligned with its input, the worker's lower priority, a model that
cannot load, and finished jobs forgotten with their files after their time."""

import os
import shutil
import wave

import numpy as np
import pytest

from audio_engine.denoise import DenoiseSettings
from audio_engine.file_denoise import UNAVAILABLE, FileDenoiser, denoise_samples

from .fake_backends import SlowHalvingBackend
from .helpers import FIXTURE_DIR

HALVING = "tests.engine.fake_backends:SlowHalvingBackend"


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def submit_fixture(denoiser: FileDenoiser):
    path = denoiser.new_input_path()
    shutil.copyfile(FIXTURE_DIR / "uploads" / "speech.ogg", path)
    return denoiser.submit(path, owner="1", denoise=True, max_seconds=60)


def test_a_whole_file_comes_out_aligned_with_its_input_and_as_long():
    samples = np.random.default_rng(1).uniform(-0.5, 0.5, 48_000 + 123).astype(np.float32)

    out = denoise_samples(SlowHalvingBackend(DenoiseSettings()), samples)

    assert len(out) == len(samples)
    np.testing.assert_allclose(out, 0.5 * samples, atol=1e-7)  # the backend's 30 ms delay is removed


def test_the_worker_runs_at_lower_priority_and_its_jobs_expire_with_their_files(tmp_path):
    clock = ManualClock()
    denoiser = FileDenoiser(
        DenoiseSettings(), HALVING, max_jobs=2, niceness=7, scratch_dir=tmp_path, job_ttl_s=60, clock=clock
    )
    try:
        job = submit_fixture(denoiser)
        assert job.finished.wait(30) and job.done
        assert denoiser.worker_pid is not None
        assert os.getpriority(os.PRIO_PROCESS, denoiser.worker_pid) - os.getpriority(os.PRIO_PROCESS, 0) == 7
        with wave.open(str(job.output_path)) as wav:
            assert wav.getnframes() / wav.getframerate() == pytest.approx(2.5, abs=0.02)
        assert not job.input_path.exists()

        clock.now += 61
        assert denoiser.job(job.id) is None
        assert not job.output_path.exists()
    finally:
        denoiser.shutdown()


def test_a_job_says_it_is_done_only_once_what_it_finishes_with_is_recorded(tmp_path):
    seen_by_the_callback = []

    def record(job) -> None:
        seen_by_the_callback.append((job.done, job.output_path.exists()))

    denoiser = FileDenoiser(
        DenoiseSettings(), HALVING, max_jobs=2, niceness=0, scratch_dir=tmp_path, on_finished=record
    )
    try:
        job = submit_fixture(denoiser)
        assert job.finished.wait(30) and job.done
        assert seen_by_the_callback == [(False, True)]  # called with the output written, before "done"
    finally:
        denoiser.shutdown()


def test_a_model_that_cannot_load_fails_the_job_as_unavailable(tmp_path):
    denoiser = FileDenoiser(
        DenoiseSettings(), "tests.engine.fake_backends:NoSuchBackend", max_jobs=2, niceness=0, scratch_dir=tmp_path
    )
    try:
        job = submit_fixture(denoiser)
        assert job.finished.wait(30)
        assert (job.state, job.error.reason) == ("failed", UNAVAILABLE)
        assert not job.input_path.exists()
    finally:
        denoiser.shutdown()
