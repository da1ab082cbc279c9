"""The media host registry: heartbeats in a real redis-server (REDIS_TEST_URL), judged by a clock moved by hand."""

import os
import uuid
import wave

import pytest

from streams import hosts, media, services, signals
from streams.events import EndReason
from streams.models import ActiveStream, PresenceConnection, StreamRecording

DEAD = 10


@pytest.fixture
def redis_registry(settings):
    redis_url = os.environ.get("REDIS_TEST_URL")
    if not redis_url:
        pytest.skip("REDIS_TEST_URL is not set: run the suite with `make test`, which starts redis-server")
    settings.REDIS_URL = redis_url
    settings.MEDIA_HOST_DEAD_SECONDS = DEAD


def names(prefix: str, this_host: str) -> list[str]:
    return [host.host_id for host in hosts.live_hosts(this_host) if host.host_id.startswith(prefix)]


@pytest.mark.redis
def test_a_host_is_alive_while_it_beats_and_dead_once_it_stops(redis_registry, lifecycle_clock):
    prefix = f"test-{uuid.uuid4().hex}-"
    host_a, host_b = prefix + "a:8000", prefix + "b:8000"
    hosts.announce(host_a, denoise_headroom=3)
    hosts.announce(host_b, denoise_headroom=0)
    assert names(prefix, host_a) == [host_a, host_b]
    assert [host.denoise_headroom for host in hosts.live_hosts(host_a) if host.host_id == host_a] == [3]
    lifecycle_clock.advance(DEAD - 1)
    hosts.announce(host_a, denoise_headroom=2)
    lifecycle_clock.advance(2)
    assert names(prefix, host_a) == [host_a]
    assert hosts.is_alive(host_a, this_host_id=host_b) and not hosts.is_alive(host_b, this_host_id=host_a)


def test_without_redis_the_only_host_is_this_one_and_it_is_alive(settings):
    settings.REDIS_URL = ""
    assert [host.host_id for host in hosts.live_hosts("here:8000")] == ["here:8000"]
    assert hosts.is_alive("here:8000", this_host_id="here:8000")
    assert not hosts.is_alive("elsewhere:8000", this_host_id="here:8000")


# --- failover: a surviving process ends a dead host's streams; the dead host, back, registers the recording ------


def hold(user, host_id: str, settings) -> ActiveStream:
    """`user` goes live with audio, her media held by `host_id`."""
    settings.MEDIA_HOST_ID = host_id
    stream = services.start_stream(user, denoise=False)
    signals.publisher_connected.send(sender=signals.MEDIA, session_id=str(stream.session_id))
    ActiveStream.objects.filter(pk=stream.pk).update(media_host=host_id)
    return stream


def write_partial_recording(stream: ActiveStream, seconds: float) -> None:
    path = media.partial_path(stream.owner_id, stream.session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as partial:
        partial.setnchannels(1)
        partial.setsampwidth(2)
        partial.setframerate(48000)
        partial.writeframes(bytes(int(48000 * seconds) * 2))


@pytest.fixture
def ended(monkeypatch) -> list[tuple[int, EndReason]]:
    """Every stream_ended event sent to friends: (broadcaster, reason)."""
    sent: list[tuple[int, EndReason]] = []
    monkeypatch.setattr(services.events, "stream_ended", lambda owner_id, reason: sent.append((owner_id, reason)))
    return sent


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_survivor_ends_a_dead_hosts_streams_within_the_bound_and_the_dead_host_back_registers_them(
    redis_registry, settings, tmp_path, lifecycle_clock, alice, bob, ended
):
    prefix = f"test-{uuid.uuid4().hex}-"
    dying, surviving = prefix + "a:8000", prefix + "b:8000"
    hosts.announce(dying, denoise_headroom=1)
    hosts.announce(surviving, denoise_headroom=1)
    settings.RECORDINGS_DIR = tmp_path / "on-the-dying-host"
    lost = hold(alice, dying, settings)
    write_partial_recording(lost, seconds=2.0)
    kept = hold(bob, surviving, settings)

    settings.MEDIA_HOST_ID = surviving
    settings.RECORDINGS_DIR = tmp_path / "on-the-survivor"  # the survivor cannot reach the dying host's disk
    lifecycle_clock.advance(DEAD - 1)
    hosts.announce(surviving, denoise_headroom=1)
    assert services.end_streams_of_dead_hosts() == []  # still within the bound: the host may only be slow
    lifecycle_clock.advance(2)
    assert [stream.owner_id for stream in services.end_streams_of_dead_hosts()] == [alice.pk]
    assert ended == [(alice.pk, EndReason.SERVER_LOST)]
    assert ActiveStream.objects.filter(owner=bob).exists()
    assert services.end_streams_of_dead_hosts() == []  # ended once, however many survivors look

    again = services.start_stream(alice, denoise=False)  # she goes live again at once, on the survivor
    assert again.session_id != lost.session_id

    settings.MEDIA_HOST_ID = dying
    settings.RECORDINGS_DIR = tmp_path / "on-the-dying-host"
    services.recover_after_restart()
    recording = StreamRecording.objects.get(session_id=lost.session_id)
    assert recording.owner_id == alice.pk and recording.duration == pytest.approx(2.0)
    assert ActiveStream.objects.filter(owner=alice, session_id=again.session_id).exists()  # not the restarted host's
    assert ActiveStream.objects.filter(pk=kept.pk).exists()


# --- a restarting host leaves what other hosts hold alone ---------------------------------------------------------


@pytest.mark.django_db
def test_a_restarting_host_forgets_only_its_own_presence_sockets(settings, alice, bob, carol, ended):
    settings.MEDIA_HOST_ID = "host-a:8000"
    services.presence_connected(alice, "alice-on-a")
    services.presence_connected(carol, "carol-on-a")
    settings.MEDIA_HOST_ID = "host-b:8000"
    services.presence_connected(bob, "bob-on-b")
    services.presence_connected(carol, "carol-on-b")
    alice_on_b = hold(alice, "host-b:8000", settings)  # her page's socket is on A, her media on B

    settings.MEDIA_HOST_ID = "host-a:8000"
    assert services.recover_after_restart() == []
    assert set(PresenceConnection.objects.values_list("channel_name", flat=True)) == {"bob-on-b", "carol-on-b"}
    # A's sockets went with it: alice, live on B with none left, is away (her page reconnects within the grace).
    assert ActiveStream.objects.get(pk=alice_on_b.pk).presence_lost_at is not None
    assert ended == []


@pytest.mark.django_db
def test_a_restarting_host_leaves_the_partial_recording_another_host_is_writing(settings, tmp_path, alice, bob):
    settings.RECORDINGS_DIR = tmp_path / "shared-recordings"  # one directory for every process of the site
    live_on_b = hold(bob, "host-b:8000", settings)
    write_partial_recording(live_on_b, seconds=1.0)
    left_by_a = hold(alice, "host-a:8000", settings)
    write_partial_recording(left_by_a, seconds=1.0)

    settings.MEDIA_HOST_ID = "host-a:8000"
    services.recover_after_restart()
    assert StreamRecording.objects.filter(session_id=left_by_a.session_id).exists()
    assert not StreamRecording.objects.filter(session_id=live_on_b.session_id).exists()
    assert media.partial_path(bob.pk, live_on_b.session_id).exists()
    assert ActiveStream.objects.filter(pk=live_on_b.pk).exists()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_survivor_forgets_a_dead_hosts_presence_sockets_but_not_those_of_a_host_just_starting(
    redis_registry, settings, lifecycle_clock, alice, bob
):
    prefix = f"test-{uuid.uuid4().hex}-"
    dying, surviving, starting = prefix + "a:8000", prefix + "b:8000", prefix + "c:8000"
    hosts.announce(dying, denoise_headroom=1)
    hosts.announce(surviving, denoise_headroom=1)
    settings.MEDIA_HOST_ID = dying
    services.presence_connected(alice, "alice-on-a")
    settings.MEDIA_HOST_ID = starting  # its first socket, before its first heartbeat
    services.presence_connected(bob, "bob-on-c")
    alice_on_b = hold(alice, surviving, settings)

    lifecycle_clock.advance(DEAD - 1)
    hosts.announce(surviving, denoise_headroom=1)
    services.end_streams_of_dead_hosts()
    assert PresenceConnection.objects.count() == 2  # within the bound: A may only be slow
    lifecycle_clock.advance(2)
    hosts.announce(surviving, denoise_headroom=1)
    services.end_streams_of_dead_hosts()
    assert list(PresenceConnection.objects.values_list("channel_name", flat=True)) == ["bob-on-c"]
    assert ActiveStream.objects.get(pk=alice_on_b.pk).presence_lost_at is not None  # away: no page of hers is open


@pytest.mark.django_db
def test_without_redis_the_sockets_left_under_an_earlier_id_of_the_one_process_are_forgotten(settings, alice):
    settings.REDIS_URL = ""
    settings.MEDIA_HOST_ID = "here:8000"
    services.presence_connected(alice, "from-the-run-on-8000")
    settings.MEDIA_HOST_ID = "here:8080"  # restarted on another port
    services.presence_connected(alice, "this-run")
    services.end_streams_of_dead_hosts()
    assert list(PresenceConnection.objects.values_list("channel_name", flat=True)) == ["this-run"]
