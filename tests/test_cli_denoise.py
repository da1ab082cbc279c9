"""`quietcast denoise` against a real server (Daphne, its file worker, the real denoiser): a file too long to be
answered in the request goes through a job the client polls, and a refused file is reported in one line."""

import io
import wave

import numpy as np
import pytest

from quietcast_cli.main import main
from tests.audio_checks import pause_level_db
from tests.fixtures.make_fixtures import FIXTURE_DIR, read_wav
from tests.live_server import PASSWORD, prepare_database, running_daphne, seed_code, server_environment

pytestmark = pytest.mark.slow


def test_the_cli_denoises_a_file_through_a_polled_job_and_reports_a_bad_file(tmp_path, capsys):
    # The 2.5 s fixture is over the 1 s answered in the request: the client must poll its job.
    env = server_environment(tmp_path, DENOISE_WORKERS="1", DENOISE_UPLOAD_SYNC_SECONDS="1")
    prepare_database(env, seed_code(("alice",)))
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not a recording\n" * 50)
    with running_daphne(env, tmp_path / "server.log") as server:
        login = ["--server", server.url, "denoise", "--user", "alice", "--password", PASSWORD]
        denoised = main([*login, str(FIXTURE_DIR / "uploads" / "speech.webm"), "--out", str(tmp_path / "clean.wav")])
        refused = main([*login, str(not_audio), "--out", str(tmp_path / "never.wav")])

    assert (denoised, refused) == (0, 1)
    output = capsys.readouterr()
    assert "denoising:" in output.err  # it polled the job
    assert output.err.strip().splitlines()[-1] == (
        "quietcast: POST /api/denoise/ failed (400): The file cannot be read as audio (WAV, FLAC, Ogg, MP3 or WebM)."
    )
    assert not (tmp_path / "never.wav").exists()
    with wave.open(io.BytesIO((tmp_path / "clean.wav").read_bytes())) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (48_000, 1)
        clean = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768
    assert len(clean) / 48_000 == pytest.approx(2.5, abs=0.02)
    reference = read_wav(FIXTURE_DIR / "speech_clean.wav")
    noisy = read_wav(FIXTURE_DIR / "speech_noisy.wav")[int(2.5 * 48_000) : int(5.0 * 48_000)]
    assert pause_level_db(noisy, reference) - pause_level_db(clean, reference) >= 10
