"""Recordings people keep: titles by the broadcaster's clock, the Ogg/Opus download, pages of the list, merging
fragments, waveforms, and renames and deletes reaching open pages."""

import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from channels.db import database_sync_to_async

from streams import media, recordings, services
from streams.events import EndReason
from streams.models import ActiveStream, StreamRecording
from tests import test_presence
from tests.test_presence import connect, expect_silence

channel_layer = test_presence.channel_layer  # each socket test runs over the in-memory layer and a real Redis

RATE = 48000


def write_wav(path: Path, seconds: float, amplitude: float = 0.5, frequency: float = 440.0) -> Path:
    """A 48 kHz mono 16-bit WAV: a tone at `amplitude` of full scale (0 for silence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    times = np.arange(int(seconds * RATE)) / RATE
    samples = (amplitude * 32767 * np.sin(2 * np.pi * frequency * times)).astype("<i2")
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(RATE)
        audio.writeframes(samples.tobytes())
    return path


@pytest.fixture
def recordings_dir(settings, tmp_path) -> Path:
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.RECORDINGS_DIR.mkdir()
    return settings.RECORDINGS_DIR


def saved_recording(owner, title: str, created_at: datetime, seconds: float = 2.0, **fields) -> StreamRecording:
    """A recording with real audio on disk, saved at `created_at` (when its stream ended)."""
    relative_path = f"{owner.pk}/{title.replace(' ', '-')}.wav"
    write_wav(media.absolute_path(relative_path), seconds, fields.pop("amplitude", 0.5))
    recording = StreamRecording.objects.create(
        owner=owner, title=title, audio_path=relative_path, duration=seconds, **fields
    )
    StreamRecording.objects.filter(pk=recording.pk).update(created_at=created_at)
    recording.refresh_from_db()
    return recording


EVENING = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)


# --- titles ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started_utc", "time_zone", "title"),
    [
        (datetime(2026, 11, 24, 19, 30, tzinfo=UTC), "Europe/Paris", "Tuesday evening live"),  # 20:30 there
        (datetime(2026, 11, 24, 19, 30, tzinfo=UTC), "Asia/Tokyo", "Tuesday night live"),  # 04:30 Wednesday
        (datetime(2026, 11, 24, 14, 0, tzinfo=UTC), "America/New_York", "Tuesday morning live"),  # 09:00 there
        (datetime(2026, 11, 25, 6, 0, tzinfo=UTC), "America/Los_Angeles", "Tuesday night live"),  # 22:00 Tue
        (datetime(2026, 11, 25, 9, 0, tzinfo=UTC), "America/Los_Angeles", "Tuesday night live"),  # 01:00 Wed
        (datetime(2026, 11, 24, 13, 0, tzinfo=UTC), "", "Tuesday afternoon live"),  # no zone: TIME_ZONE (UTC)
    ],
)
def test_a_new_recording_is_titled_by_the_broadcasters_own_clock(started_utc, time_zone, title):
    assert services.recording_title(started_utc, time_zone) == title


@pytest.mark.django_db
def test_the_page_sends_its_time_zone_when_going_live_and_the_recording_is_titled_by_it(
    api_client, alice, monkeypatch
):
    monkeypatch.setattr(
        media, "finish", lambda *_, **__: media.FinishedRecording(relative_path="1/x.wav", duration=60.0)
    )
    assert api_client(alice).post("/api/stream/start/", {"time_zone": "Asia/Tokyo"}, format="json").status_code == 201
    ActiveStream.objects.filter(owner=alice).update(started_at=datetime(2026, 11, 24, 11, 0, tzinfo=UTC))
    ended = services.end_stream(alice, reason=EndReason.STOPPED)
    assert ended.recording.title == "Tuesday evening live"  # 20:00 in Tokyo


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["../../etc/passwd", "Europe Paris", "x" * 65, "/Europe"])
def test_a_malformed_time_zone_is_a_400_and_nothing_goes_live(api_client, alice, zone):
    response = api_client(alice).post("/api/stream/start/", {"time_zone": zone}, format="json")
    assert response.status_code == 400
    assert "time_zone" in response.json()["error"]
    assert not ActiveStream.objects.filter(owner=alice).exists()


@pytest.mark.django_db
def test_a_time_zone_this_server_does_not_know_still_goes_live_titled_by_time_zone(api_client, alice, monkeypatch):
    monkeypatch.setattr(
        media, "finish", lambda *_, **__: media.FinishedRecording(relative_path="1/x.wav", duration=60.0)
    )
    assert api_client(alice).post("/api/stream/start/", {"time_zone": "Mars/Olympus"}, format="json").status_code == 201
    ActiveStream.objects.filter(owner=alice).update(started_at=datetime(2026, 11, 24, 11, 0, tzinfo=UTC))
    assert services.end_stream(alice, reason=EndReason.STOPPED).recording.title == "Tuesday morning live"


# --- the compressed download -----------------------------------------------------------------------------------

def body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def minute_long(recordings_dir, cast) -> StreamRecording:
    return saved_recording(cast["owner"], "Morning walk", EVENING, seconds=60.0)


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize("role", ["owner", "friend"])
def test_the_ogg_download_is_opus_and_about_half_a_megabyte_a_minute(browser_client, cast, minute_long, role):
    response = browser_client(cast[role]).get(f"/recordings/{minute_long.pk}/audio/?format=ogg&download=1")
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/ogg"
    assert response["Content-Disposition"].startswith("attachment;") and ".ogg" in response["Content-Disposition"]
    ogg = body(response)
    wav_size = media.absolute_path(minute_long.audio_path).stat().st_size
    assert 400_000 < len(ogg) < 520_000 < wav_size / 10
    decoded = Path(media.absolute_path(minute_long.audio_path)).with_name("decoded.ogg")
    decoded.write_bytes(ogg)
    with av.open(str(decoded)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        assert 59.9 < float(container.duration / 1_000_000) < 60.1


@pytest.mark.django_db
@pytest.mark.api
def test_the_ogg_copy_is_made_once_cached_beside_the_wav_and_deleted_with_it(
    browser_client, api_client, cast, minute_long, monkeypatch, django_capture_on_commit_callbacks
):
    client = browser_client(cast["friend"])
    first = body(client.get(f"/recordings/{minute_long.pk}/audio/?format=ogg"))
    cached = media.absolute_path(minute_long.audio_path).with_suffix(".ogg")
    assert cached.read_bytes() == first

    def no_encoding(*args):
        raise AssertionError("encoded again")

    monkeypatch.setattr(media, "encode_ogg_opus", no_encoding)
    assert body(client.get(f"/recordings/{minute_long.pk}/audio/?format=ogg")) == first
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client(cast["owner"]).delete(f"/api/recordings/{minute_long.pk}/").status_code == 204
    assert not cached.exists() and not media.absolute_path(minute_long.audio_path).exists()


@pytest.mark.django_db
@pytest.mark.api
def test_the_ogg_download_answers_ranges_like_the_wav(browser_client, cast, minute_long):
    client = browser_client(cast["friend"])
    whole = body(client.get(f"/recordings/{minute_long.pk}/audio/?format=ogg"))
    part = client.get(f"/recordings/{minute_long.pk}/audio/?format=ogg", HTTP_RANGE="bytes=100-199")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert body(part) == whole[100:200]
    past_the_end = client.get(f"/recordings/{minute_long.pk}/audio/?format=ogg", HTTP_RANGE=f"bytes={len(whole)}-")
    assert past_the_end.status_code == 416


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize("role", ["stranger", "pending"])
def test_the_ogg_download_is_refused_to_people_who_may_not_hear_the_wav(browser_client, cast, minute_long, role):
    assert browser_client(cast[role]).get(f"/recordings/{minute_long.pk}/audio/?format=ogg").status_code == 404
    assert not media.absolute_path(minute_long.audio_path).with_suffix(".ogg").exists()  # nothing encoded for them


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize("wanted", ["mp3", "OGG", "", "wav;ogg"])
def test_an_unknown_format_is_a_clear_400(browser_client, cast, minute_long, wanted):
    response = browser_client(cast["friend"]).get(f"/recordings/{minute_long.pk}/audio/?format={wanted}")
    assert response.status_code == 400
    assert response.json()["error"].endswith("use wav or ogg.")


@pytest.mark.django_db
@pytest.mark.api
def test_wav_stays_the_lossless_default(browser_client, cast, minute_long):
    response = browser_client(cast["friend"]).get(f"/recordings/{minute_long.pk}/audio/?format=wav")
    assert response["Content-Type"] == "audio/wav"
    assert body(response) == media.absolute_path(minute_long.audio_path).read_bytes()


# --- pages of the list ----------------------------------------------------------------------------------------


@pytest.fixture
def five(recordings_dir, cast) -> list[StreamRecording]:
    """alice's recordings an hour apart, oldest first."""
    return [saved_recording(cast["owner"], f"part {n}", EVENING + timedelta(hours=n)) for n in range(5)]


def titles(response) -> list[str]:
    return [recording["title"] for recording in response.json()["recordings"]]


@pytest.mark.django_db
@pytest.mark.api
def test_the_list_comes_in_pages_newest_first(api_client, cast, five):
    client = api_client(cast["friend"])
    first = client.get("/api/users/alice/recordings/?limit=2").json()
    assert [r["title"] for r in first["recordings"]] == ["part 4", "part 3"]
    assert first["more"] is True and first["next_before"] == five[3].pk
    second = client.get(f"/api/users/alice/recordings/?limit=2&before={first['next_before']}").json()
    assert [r["title"] for r in second["recordings"]] == ["part 2", "part 1"]
    last = client.get(f"/api/users/alice/recordings/?limit=2&before={second['next_before']}").json()
    assert [r["title"] for r in last["recordings"]] == ["part 0"]
    assert last["more"] is False and last["next_before"] is None


@pytest.mark.django_db
@pytest.mark.api
def test_before_may_be_a_time(api_client, cast, five):
    response = api_client(cast["owner"]).get("/api/recordings/?before=2026-11-21T22:30:00Z")
    assert titles(response) == ["part 2", "part 1", "part 0"]
    # The same instant written in another zone.
    assert titles(api_client(cast["owner"]).get("/api/recordings/?before=2026-11-21T23:30:00%2B01:00")) == titles(
        response
    )


@pytest.mark.django_db
@pytest.mark.api
def test_the_default_page_size_is_the_setting(api_client, cast, five, settings):
    settings.RECORDINGS_PAGE_SIZE = 3
    page = api_client(cast["owner"]).get("/api/recordings/").json()
    assert len(page["recordings"]) == 3 and page["more"] is True


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=0", "limit must be a whole number from 1 to 100."),
        ("limit=101", "limit must be a whole number from 1 to 100."),
        ("limit=-1", "limit must be a whole number from 1 to 100."),
        ("limit=ten", "limit must be a whole number from 1 to 100."),
        ("limit=%C2%B2", "limit must be a whole number from 1 to 100."),  # a superscript two is a digit to Python
        ("limit=" + "9" * 5000, "limit must be a whole number from 1 to 100."),
        ("before=%C2%B2", "before must be a recording id or a time such as 2026-11-21T22:53:00Z."),
        ("before=yesterday", "before must be a recording id or a time such as 2026-11-21T22:53:00Z."),
        ("before=2026-13-45T99:00:00Z", "before must be a recording id or a time such as 2026-11-21T22:53:00Z."),
        ("before=999999", "before: there is no such recording in this list."),
        ("before=" + "9" * 5000, "before: there is no such recording in this list."),
    ],
)
def test_bad_paging_values_are_a_clear_400(api_client, cast, five, query, says):
    for url in ("/api/recordings/", "/api/users/alice/recordings/"):
        response = api_client(cast["owner"]).get(f"{url}?{query}")
        assert (response.status_code, response.json()) == (400, {"error": says})


@pytest.mark.django_db
@pytest.mark.api
def test_before_must_be_a_recording_of_the_listed_person(api_client, cast, five, recordings_dir):
    bobs = saved_recording(cast["friend"], "bob's", EVENING)
    assert api_client(cast["friend"]).get(f"/api/users/alice/recordings/?before={bobs.pk}").status_code == 400


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize(("role", "expected"), [("stranger", 403), ("pending", 403), ("friend", 200)])
def test_paging_keeps_the_access_rule(api_client, cast, five, role, expected):
    response = api_client(cast[role]).get(f"/api/users/alice/recordings/?before={five[2].pk}&limit=1")
    assert response.status_code == expected


@pytest.mark.django_db
def test_the_page_shows_the_first_page_and_load_more(browser_client, cast, five, settings):
    settings.RECORDINGS_PAGE_SIZE = 2
    page = browser_client(cast["friend"]).get("/user/alice/").content.decode()
    assert "part 4" in page and "part 3" in page and "part 2" not in page
    assert "data-load-more" in page


# --- waveforms ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_saved_recording_gets_its_waveform(recordings_dir, alice, monkeypatch):
    relative_path = f"{alice.pk}/loud-then-quiet.wav"
    path = media.absolute_path(relative_path)
    write_wav(path, 2.0, amplitude=0.8)
    write_wav(path.with_name("quiet.wav"), 2.0, amplitude=0.1)
    joined = media.join(alice.pk, [relative_path, f"{alice.pk}/quiet.wav"])  # loud for 2 s, then quiet for 2 s
    monkeypatch.setattr(media, "finish", lambda session_id, owner_id, **_: joined)
    services.start_stream(alice)
    recording = services.end_stream(alice, reason=EndReason.STOPPED).recording
    assert len(recording.peaks) == media.WAVEFORM_PEAKS
    first_half, second_half = recording.peaks[:100], recording.peaks[100:]
    assert min(first_half) > 0.75 and max(first_half) <= 0.81
    assert max(second_half) < 0.11 and min(second_half) > 0.09


@pytest.mark.django_db
def test_recordings_without_a_waveform_get_one_once_when_listed(api_client, cast, recordings_dir, monkeypatch):
    old = saved_recording(cast["owner"], "old", EVENING)
    assert old.peaks is None
    listed = api_client(cast["friend"]).get("/api/users/alice/recordings/").json()["recordings"][0]
    assert len(listed["peaks"]) == media.WAVEFORM_PEAKS and max(listed["peaks"]) > 0.45
    old.refresh_from_db()
    assert old.peaks == listed["peaks"]
    monkeypatch.setattr(media, "waveform_peaks", lambda *args: pytest.fail("computed again"))
    api_client(cast["friend"]).get("/api/users/alice/recordings/")


# --- merging fragments ----------------------------------------------------------------------------------------


@pytest.fixture
def fragments(recordings_dir, cast) -> tuple[StreamRecording, StreamRecording]:
    """Two parts of one evening: the second began 5 minutes after the first ended."""
    first = saved_recording(cast["owner"], "Tuesday evening live", EVENING, seconds=3.0, amplitude=0.8,
                            description="first part", denoised_seconds=3.0)
    second = saved_recording(cast["owner"], "Tuesday evening live 2", EVENING + timedelta(minutes=5, seconds=2),
                             seconds=2.0, amplitude=0.2, denoised_seconds=1.0)
    return first, second


@pytest.mark.django_db
@pytest.mark.api
def test_the_owner_merges_two_fragments_into_one_recording_on_one_timeline(
    api_client, cast, fragments, django_capture_on_commit_callbacks
):
    first, second = fragments
    used_before = services.recorded_megabytes(cast["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(cast["owner"]).post(f"/api/recordings/{second.pk}/merge-previous/")
    assert response.status_code == 201
    merged = response.json()
    assert merged["title"] == "Tuesday evening live" and merged["description"] == "first part"
    assert merged["duration"] == 5.0 and merged["denoised_seconds"] == 4.0
    assert merged["created_at"] == second.created_at.isoformat()
    assert list(StreamRecording.objects.filter(owner=cast["owner"]).values_list("pk", flat=True)) == [merged["id"]]
    for part in fragments:
        assert not media.absolute_path(part.audio_path).exists()
    with wave.open(str(media.absolute_path(StreamRecording.objects.get().audio_path))) as audio:
        samples = np.frombuffer(audio.readframes(audio.getnframes()), dtype="<i2")
    assert len(samples) == 5 * RATE
    assert np.abs(samples[: 3 * RATE]).max() > 0.75 * 32767 > 0.25 * 32767 > np.abs(samples[3 * RATE :]).max()
    assert services.recorded_megabytes(cast["owner"]) == pytest.approx(used_before)
    assert merged["peaks"][0] > 0.75 and merged["peaks"][-1] < 0.25
    # Friends may play it; the rule is the same as for any recording.
    assert api_client(cast["friend"]).get("/api/users/alice/recordings/").json()["recordings"][0]["id"] == merged["id"]


@pytest.mark.django_db
@pytest.mark.api
def test_fragments_of_different_evenings_are_not_merged(api_client, cast, fragments, settings):
    settings.RECORDINGS_MERGE_GAP_MINUTES = 4
    response = api_client(cast["owner"]).post(f"/api/recordings/{fragments[1].pk}/merge-previous/")
    assert response.status_code == 409
    assert "more than 4 minutes" in response.json()["error"]
    assert StreamRecording.objects.count() == 2
    assert sorted(p.name for p in media.absolute_path(str(cast["owner"].pk)).iterdir()) == [
        "Tuesday-evening-live-2.wav",
        "Tuesday-evening-live.wav",
    ]


@pytest.mark.django_db
@pytest.mark.api
def test_the_oldest_recording_has_nothing_to_merge_with(api_client, cast, fragments):
    response = api_client(cast["owner"]).post(f"/api/recordings/{fragments[0].pk}/merge-previous/")
    assert (response.status_code, response.json()) == (
        409,
        {"error": "There is no earlier recording to merge this one with."},
    )


@pytest.mark.django_db
@pytest.mark.api
@pytest.mark.parametrize(("role", "expected"), [("friend", 403), ("stranger", 404), ("pending", 404)])
def test_only_the_owner_merges(api_client, cast, fragments, role, expected):
    assert api_client(cast[role]).post(f"/api/recordings/{fragments[1].pk}/merge-previous/").status_code == expected
    assert StreamRecording.objects.count() == 2


# --- renames, deletes and merges reach open pages ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_renames_and_deletes_reach_the_owners_and_friends_pages_only(channel_layer, cast, recordings_dir):
    recording = await database_sync_to_async(saved_recording)(cast["owner"], "Morning", EVENING)
    sockets = {}
    for role in ("friend", "owner", "stranger", "pending"):
        sockets[role], _, _ = await connect("/ws/presence/", cast[role])
        await sockets[role].receive_json_from()  # all_statuses

    await database_sync_to_async(recordings.rename_recording)(cast["owner"], recording.pk, "Walk", "by the river")
    for role in ("friend", "owner"):
        renamed = await sockets[role].receive_json_from()
        assert renamed["type"] == "recording_updated" and renamed["username"] == "alice"
        assert (renamed["recording"]["id"], renamed["recording"]["title"]) == (recording.pk, "Walk")
        assert renamed["recording"]["description"] == "by the river"

    await database_sync_to_async(recordings.delete_recording)(cast["owner"], recording.pk)
    for role in ("friend", "owner"):
        assert await sockets[role].receive_json_from() == {
            "type": "recording_deleted",
            "username": "alice",
            "id": recording.pk,
        }
    for role in ("stranger", "pending"):
        await expect_silence(sockets[role])
    for socket in sockets.values():
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_refused_rename_tells_nobody(channel_layer, cast, recordings_dir):
    recording = await database_sync_to_async(saved_recording)(cast["owner"], "Morning", EVENING)
    friend, _, _ = await connect("/ws/presence/", cast["friend"])
    await friend.receive_json_from()
    with pytest.raises(recordings.InvalidRecordingDetails):
        await database_sync_to_async(recordings.rename_recording)(cast["owner"], recording.pk, "   ")
    with pytest.raises(recordings.NotRecordingOwner):
        await database_sync_to_async(recordings.delete_recording)(cast["friend"], recording.pk)
    await expect_silence(friend)
    await friend.disconnect()
