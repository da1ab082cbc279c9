"""A stream's life by the clock: grace after the broadcaster's page or media goes away, and the no-audio
deadline. Time is moved by hand (the `lifecycle_clock` fixture); `end_overdue_streams` is what the server runs
every STREAM_DEADLINE_CHECK_SECONDS."""

import pytest

from streams import media, services, signals
from streams.events import EndReason
from streams.models import ActiveStream

pytestmark = pytest.mark.django_db

GRACE = 8
LEAVE_GRACE = 3
NO_AUDIO = 20


@pytest.fixture(autouse=True)
def deadlines(settings):
    settings.STREAM_RECONNECT_GRACE_SECONDS = GRACE
    settings.STREAM_LEAVE_GRACE_SECONDS = LEAVE_GRACE
    settings.STREAM_NO_AUDIO_SECONDS = NO_AUDIO


@pytest.fixture
def ended_reasons(monkeypatch) -> list[EndReason]:
    """The reason of every stream_ended event sent."""
    reasons: list[EndReason] = []
    monkeypatch.setattr(services.events, "stream_ended", lambda owner_id, reason: reasons.append(reason))
    return reasons


def live(user) -> bool:
    return ActiveStream.objects.filter(owner=user).exists()


def with_audio(user) -> ActiveStream:
    stream = services.start_stream(user)
    report(signals.publisher_connected, stream)
    return stream


def report(signal, stream: ActiveStream) -> None:
    signal.send(sender=signals.MEDIA, session_id=str(stream.session_id))


def live_with_a_page_that_closes(user) -> None:
    with_audio(user)
    services.presence_connected(user, "tab-1")
    services.presence_disconnected(user, "tab-1")


def test_a_closed_page_ends_the_stream_when_the_grace_period_is_over(alice, lifecycle_clock, ended_reasons):
    live_with_a_page_that_closes(alice)
    lifecycle_clock.advance(GRACE - 0.1)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(0.2)
    assert len(services.end_overdue_streams()) == 1
    assert not live(alice) and ended_reasons == [EndReason.CONNECTION_LOST]


def test_a_reload_within_the_grace_period_keeps_the_stream(alice, lifecycle_clock):
    live_with_a_page_that_closes(alice)
    lifecycle_clock.advance(GRACE - 1)
    services.presence_connected(alice, "tab-1-reloaded")
    lifecycle_clock.advance(GRACE * 10)
    assert services.end_overdue_streams() == [] and live(alice)


def test_one_of_two_tabs_closing_is_not_leaving(alice, lifecycle_clock):
    with_audio(alice)
    services.presence_connected(alice, "tab-1")
    services.presence_connected(alice, "tab-2")
    services.presence_disconnected(alice, "tab-1")
    lifecycle_clock.advance(GRACE * 2)
    assert services.end_overdue_streams() == [] and live(alice)


def test_leaving_again_after_a_reconnect_gets_a_full_grace_period(alice, lifecycle_clock):
    live_with_a_page_that_closes(alice)
    lifecycle_clock.advance(GRACE / 2)
    services.presence_connected(alice, "tab-1-reloaded")
    services.presence_disconnected(alice, "tab-1-reloaded")
    lifecycle_clock.advance(GRACE - 1)  # the first period is over, the second is not
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(1.1)
    assert len(services.end_overdue_streams()) == 1 and not live(alice)


def test_a_page_that_closed_itself_ends_the_stream_after_the_short_leave_grace(alice, lifecycle_clock, ended_reasons):
    with_audio(alice)
    services.presence_connected(alice, "tab-1")
    services.presence_disconnected(alice, "tab-1", page_left=True)
    lifecycle_clock.advance(LEAVE_GRACE - 0.1)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(0.2)
    assert len(services.end_overdue_streams()) == 1
    assert not live(alice) and ended_reasons == [EndReason.TAB_CLOSED]


def test_a_page_reloaded_within_the_leave_grace_keeps_the_stream(alice, lifecycle_clock):
    with_audio(alice)
    services.presence_connected(alice, "tab-1")
    services.presence_disconnected(alice, "tab-1", page_left=True)
    lifecycle_clock.advance(0.5)
    services.presence_connected(alice, "tab-1-reloaded")
    lifecycle_clock.advance(GRACE * 2)
    assert services.end_overdue_streams() == [] and live(alice)


def test_a_dropped_network_after_a_reload_gets_the_full_grace(alice, lifecycle_clock, ended_reasons):
    with_audio(alice)
    services.presence_connected(alice, "tab-1")
    services.presence_disconnected(alice, "tab-1", page_left=True)
    services.presence_connected(alice, "tab-1-reloaded")
    services.presence_disconnected(alice, "tab-1-reloaded")
    lifecycle_clock.advance(LEAVE_GRACE + 1)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(GRACE)
    assert len(services.end_overdue_streams()) == 1 and ended_reasons == [EndReason.CONNECTION_LOST]


def test_a_lost_media_connection_ends_the_stream_unless_a_new_one_brings_audio_in_time(
    alice, bob, lifecycle_clock, ended_reasons
):
    kept = with_audio(bob)
    report(signals.publisher_gone, kept)
    lifecycle_clock.advance(GRACE - 1)
    report(signals.publisher_connected, kept)  # the reloaded page's new connection sends audio
    lost = with_audio(alice)
    report(signals.publisher_gone, lost)
    lifecycle_clock.advance(GRACE + 0.1)
    assert [stream.owner_id for stream in services.end_overdue_streams()] == [alice.pk]
    assert live(bob) and ended_reasons == [EndReason.CONNECTION_LOST]


def test_a_stale_loss_never_ends_a_newer_stream(alice, lifecycle_clock):
    old = with_audio(alice)
    report(signals.publisher_gone, old)
    services.end_stream(alice, reason=EndReason.STOPPED)
    newer = with_audio(alice)
    report(signals.publisher_gone, old)  # a late report about the old session
    lifecycle_clock.advance(GRACE * 2)
    assert services.end_overdue_streams() == []
    assert ActiveStream.objects.filter(session_id=newer.session_id).exists()


def test_a_stream_without_audio_in_time_ends_by_itself(alice, bob, lifecycle_clock, ended_reasons):
    services.start_stream(alice)  # never publishes
    with_audio(bob)
    lifecycle_clock.advance(NO_AUDIO - 0.1)
    assert services.end_overdue_streams() == []
    lifecycle_clock.advance(0.2)
    assert [stream.owner_id for stream in services.end_overdue_streams()] == [alice.pk]
    assert ended_reasons == [EndReason.NO_AUDIO] and live(bob)


def test_an_ended_silent_stream_frees_its_denoise_slot(alice, bob, lifecycle_clock, settings, api_client):
    settings.MAX_DENOISED_STREAMS = 1
    services.start_stream(alice, denoise=True)
    assert api_client(bob).post("/api/stream/start/", {"denoise": True}, format="json").status_code == 503
    lifecycle_clock.advance(NO_AUDIO + 1)
    services.end_overdue_streams()
    assert api_client(bob).post("/api/stream/start/", {"denoise": True}, format="json").status_code == 201


def test_two_concurrent_endings_end_the_stream_once(alice, ended_reasons):
    services.start_stream(alice)
    first = services.end_stream(alice, reason=EndReason.STOPPED)
    second = services.end_stream(alice, reason=EndReason.TAB_CLOSED)
    assert first is not None and second is None
    assert ended_reasons == [EndReason.STOPPED]


def test_a_first_publish_that_cannot_be_denoised_ends_the_stream(alice, monkeypatch, ended_reasons):
    def denoiser_fails(*args, **kwargs):
        raise media.DenoiseUnavailable()

    monkeypatch.setattr(media, "publish", denoiser_fails)
    services.start_stream(alice, denoise=True)
    with pytest.raises(media.DenoiseUnavailable):
        services.publish_offer(alice, "v=0")
    assert not live(alice) and ended_reasons == [EndReason.NO_AUDIO]


def test_the_server_stopping_ends_the_streams_it_carries(alice, bob, ended_reasons):
    carried = with_audio(alice)
    with_audio(bob)  # carried by another server process
    signals.media_stopping.send(sender=signals.MEDIA, session_ids=[str(carried.session_id)])
    assert not live(alice) and live(bob)
    assert ended_reasons == [EndReason.SERVER_RESTART]


def test_listener_counts_come_from_the_media_adapter(alice):
    stream = with_audio(alice)
    signals.listener_count_changed.send(sender=signals.MEDIA, session_id=str(stream.session_id), count=2)
    assert services.stream_status(alice)["listeners"] == 2


def test_a_stream_whose_media_another_server_process_holds_is_left_to_that_process(alice, bob, lifecycle_clock):
    elsewhere = with_audio(alice)
    ActiveStream.objects.filter(pk=elsewhere.pk).update(media_host="another-process")
    here = with_audio(bob)
    ActiveStream.objects.filter(pk=here.pk).update(media_host=media.host_id())
    for stream in (elsewhere, here):
        report(signals.publisher_gone, stream)
    lifecycle_clock.advance(GRACE + 1)
    assert [stream.owner_id for stream in services.end_overdue_streams()] == [bob.pk]
    assert live(alice)


def test_an_answered_offer_marks_this_process_as_the_streams_media_host(alice, monkeypatch):
    monkeypatch.setattr(media, "publish", lambda *args, **kwargs: "v=0 answer")
    stream = services.start_stream(alice)
    assert services.publish_offer(alice, "v=0 offer")[1] == "v=0 answer"
    assert ActiveStream.objects.get(pk=stream.pk).media_host == media.host_id()


def test_streams_left_live_by_the_last_run_end_as_a_server_restart(alice, ended_reasons):
    with_audio(alice)
    assert len(services.recover_after_restart()) == 1
    assert not live(alice) and ended_reasons == [EndReason.SERVER_RESTART]


def test_a_restarting_host_recovers_only_the_streams_it_held(settings, alice, bob, ended_reasons):
    settings.MEDIA_HOST_ID = "host-a:8000"
    held_by_a = with_audio(alice)
    ActiveStream.objects.filter(pk=held_by_a.pk).update(media_host=media.host_id())
    settings.MEDIA_HOST_ID = "host-b:8000"
    held_by_b = with_audio(bob)
    ActiveStream.objects.filter(pk=held_by_b.pk).update(media_host=media.host_id())
    settings.MEDIA_HOST_ID = "host-a:8000"
    assert [stream.owner_id for stream in services.recover_after_restart()] == [alice.pk]
    assert not live(alice) and live(bob) and ended_reasons == [EndReason.SERVER_RESTART]


def test_a_stream_ends_by_itself_at_the_maximum_length(settings, alice, lifecycle_clock, ended_reasons):
    settings.MAX_STREAM_SECONDS = 3600
    report(signals.publisher_connected, services.start_stream(alice, denoise=False))
    lifecycle_clock.advance(3599)
    assert services.end_overdue_streams() == [] and live(alice)
    lifecycle_clock.advance(2)
    assert len(services.end_overdue_streams()) == 1
    assert not live(alice) and ended_reasons == [EndReason.MAX_LENGTH]


def test_a_server_whose_aiortc_lacks_the_receive_hook_refuses_to_start(monkeypatch):
    from aiortc.rtcrtpreceiver import RTCRtpReceiver
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    def handle_packet_without_the_buffer(self, packet):
        return None

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", handle_packet_without_the_buffer)
    with pytest.raises(ImproperlyConfigured, match="receive jitter buffer"):
        apps.get_app_config("streams").ready()
