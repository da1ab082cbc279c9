"""Denoise a file (`POST /api/denoise/`) and keep an upload as a recording (`POST /api/recordings/upload/`):
every accepted format, every way a file is refused, jobs for long files and who may see them, and kept uploads
seen like live recordings. The real file worker and the real denoiser (the default batched DeepFilterNet3)."""

import io
import time
import wave

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from streams import media
from streams.models import StreamRecording
from tests.audio_checks import pause_level_db
from tests.fixtures.make_fixtures import FIXTURE_DIR, read_wav

UPLOADS = FIXTURE_DIR / "uploads"
FORMATS = ["speech.wav", "speech.flac", "speech.ogg", "speech.mp3", "speech.webm"]
FIXTURE_SECONDS = 2.5

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.api]


@pytest.fixture(autouse=True)
def server_dirs(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.VAR_DIR = tmp_path / "var"
    media.stop_file_denoiser()  # a fresh worker and queue with these settings
    yield
    media.stop_file_denoiser()


def upload(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (UPLOADS / name).read_bytes() if content is None else content)


def wav_samples(body: bytes) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(body)) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return rate, channels, pcm.astype(np.float32) / 32768


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def post_file(client, path: str, name: str, content: bytes | None = None, **fields):
    return client.post(path, {"audio": upload(name, content), **fields}, format="multipart")


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_comes_back_as_48k_mono_wav_of_the_same_length(api_client, alice, name):
    response = post_file(api_client(alice), "/api/denoise/", name)

    assert response.status_code == 200, getattr(response, "data", None)
    assert response["Content-Type"] == "audio/wav"
    rate, channels, samples = wav_samples(body_of(response))
    assert (rate, channels) == (48_000, 1)
    assert len(samples) / rate == pytest.approx(FIXTURE_SECONDS, abs=0.02)


@pytest.mark.parametrize("name", ["speech.webm", "speech.wav"])
def test_the_speech_pauses_come_back_10_db_quieter(api_client, alice, name):
    clean = read_wav(FIXTURE_DIR / "speech_clean.wav")
    noisy = read_wav(FIXTURE_DIR / "speech_noisy.wav")[int(2.5 * 48_000) : int(5.0 * 48_000)]

    response = post_file(api_client(alice), "/api/denoise/", name)

    _, _, denoised = wav_samples(body_of(response))
    assert pause_level_db(noisy, clean) - pause_level_db(denoised, clean) >= 10


@pytest.mark.parametrize(
    ("name", "content", "expected_status", "message"),
    [
        ("empty.wav", b"", 400, "The file is empty."),
        ("notes.txt", b"These are my notes, not a recording.\n" * 20, 400, "cannot be read as audio"),
        ("corrupt.ogg", (UPLOADS / "speech.ogg").read_bytes()[:60] + bytes(range(256)) * 8, 400, "cannot be read"),
        ("picture.webm", (FIXTURE_DIR.parents[1] / "docs" / "home.png").read_bytes(), 400, "has no audio"),
    ],
)
def test_a_file_that_is_not_usable_audio_gets_a_clear_400(api_client, alice, name, content, expected_status, message):
    response = post_file(api_client(alice), "/api/denoise/", name, content)

    assert response.status_code == expected_status
    assert message in response.json()["error"]


def test_a_file_that_is_too_long_is_refused(api_client, alice, settings):
    settings.DENOISE_UPLOAD_MAX_SECONDS = 2.0

    response = post_file(api_client(alice), "/api/denoise/", "speech.flac")

    assert response.status_code == 400
    assert response.json()["error"] == "The audio is longer than 2 seconds."


def test_a_file_that_is_too_big_is_refused_with_413(api_client, alice, settings):
    settings.DENOISE_UPLOAD_MAX_MB = 0.02  # the FLAC fixture is 70 kB

    response = post_file(api_client(alice), "/api/denoise/", "speech.flac")

    assert response.status_code == 413
    assert response.json()["error"] == "The file is larger than 0.02 MB."


def test_a_request_without_a_file_gets_a_400(api_client, alice):
    response = api_client(alice).post("/api/denoise/", {"title": "x"}, format="multipart")

    assert response.status_code == 400
    assert response.json()["error"].startswith("audio:")


def test_only_logged_in_people_may_denoise_files(api_client):
    response = post_file(api_client(), "/api/denoise/", "speech.ogg")

    assert response.status_code == 401


def poll(client, url: str, limit_s: float = 60.0):
    deadline = time.monotonic() + limit_s
    while True:
        response = client.get(url)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_a_long_file_gets_a_job_that_reports_progress_then_the_wav(api_client, alice, settings):
    settings.DENOISE_UPLOAD_SYNC_SECONDS = 1.0
    client = api_client(alice)

    accepted = post_file(client, "/api/denoise/", "speech.mp3")

    assert accepted.status_code == 202
    job = accepted.json()
    assert job["status"] in ("queued", "running") and 0 <= job["progress"] <= 1
    assert job["duration"] == pytest.approx(FIXTURE_SECONDS, abs=0.02)
    assert job["url"] == f"/api/denoise/jobs/{job['id']}/"
    finished = poll(client, job["url"])
    assert finished.status_code == 200 and finished["Content-Type"] == "audio/wav"
    assert len(wav_samples(body_of(finished))[2]) / 48_000 == pytest.approx(FIXTURE_SECONDS, abs=0.02)


def test_a_job_is_seen_only_by_whoever_submitted_it(api_client, alice, bob, settings):
    settings.DENOISE_UPLOAD_SYNC_SECONDS = 1.0
    job_url = post_file(api_client(alice), "/api/denoise/", "speech.ogg").json()["url"]

    assert api_client(bob).get(job_url).status_code == 404  # even her friend
    assert api_client().get(job_url).status_code == 401
    assert poll(api_client(alice), job_url).status_code == 200
    assert api_client(bob).get("/api/denoise/jobs/nonsense/").status_code == 404


def test_a_busy_file_worker_answers_503_with_retry_after(api_client, alice, settings, tmp_path):
    settings.DENOISE_UPLOAD_QUEUE = 1
    settings.DENOISE_UPLOAD_SYNC_SECONDS = 1.0
    media.stop_file_denoiser()
    long_speech = np.tile(read_wav(FIXTURE_DIR / "speech_noisy.wav"), 6)  # 42 s: a while to denoise
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(48_000)
        wav.writeframes((long_speech * 32767).astype("<i2").tobytes())
    client = api_client(alice)

    first = post_file(client, "/api/denoise/", "long.wav", buffer.getvalue())
    second = post_file(client, "/api/denoise/", "speech.ogg")

    assert first.status_code == 202
    assert second.status_code == 503
    assert second["Retry-After"] == "30"
    assert "busy" in second.json()["error"]


# --- keeping an upload as a recording ---------------------------------------------------------------------------


def test_a_kept_upload_is_a_recording_her_friend_can_play_and_a_stranger_cannot(
    api_client, browser_client, alice, bob, carol
):
    response = post_file(api_client(alice), "/api/recordings/upload/", "speech.webm", title="Kitchen test")

    assert response.status_code == 201, response.json()
    recording = response.json()
    assert recording["title"] == "Kitchen test"
    assert recording["denoise_enabled"] is True
    assert recording["duration"] == pytest.approx(FIXTURE_SECONDS, abs=0.02)
    assert recording["denoised_seconds"] == pytest.approx(FIXTURE_SECONDS, abs=0.02)
    listed = api_client(bob).get("/api/users/alice/recordings/").json()["recordings"]
    assert [r["id"] for r in listed] == [recording["id"]]
    friend_hears = browser_client(bob).get(recording["url"])
    assert friend_hears.status_code == 200
    assert wav_samples(body_of(friend_hears))[0] == 48_000
    assert api_client(carol).get("/api/users/alice/recordings/").status_code == 403
    assert browser_client(carol).get(recording["url"]).status_code == 404


def test_an_upload_kept_undenoised_says_so(api_client, alice):
    response = post_file(api_client(alice), "/api/recordings/upload/", "speech.mp3", title="As it was", denoise="false")

    assert response.status_code == 201
    assert (response.json()["denoise_enabled"], response.json()["denoised_seconds"]) == (False, 0.0)


def test_a_long_kept_upload_appears_when_its_job_is_done(api_client, alice, settings):
    settings.DENOISE_UPLOAD_SYNC_SECONDS = 1.0
    client = api_client(alice)

    accepted = post_file(client, "/api/recordings/upload/", "speech.flac", title="Later")

    assert accepted.status_code == 202
    assert poll(client, accepted.json()["url"]).status_code == 200
    assert [r.title for r in StreamRecording.objects.filter(owner=alice)] == ["Later"]


def test_keeping_an_upload_respects_the_recording_quota(api_client, alice, settings):
    settings.RECORDINGS_QUOTA_MB = 0.1
    StreamRecording.objects.create(owner=alice, title="Long", audio_path="x.wav", duration=60)

    response = post_file(api_client(alice), "/api/recordings/upload/", "speech.ogg", title="One more")

    assert response.status_code == 403
    assert "Delete some recordings" in response.json()["error"]
    assert StreamRecording.objects.filter(owner=alice).count() == 1


def test_keeping_an_upload_needs_a_title(api_client, alice):
    response = post_file(api_client(alice), "/api/recordings/upload/", "speech.ogg")

    assert response.status_code == 400
    assert response.json()["error"].startswith("title:")
