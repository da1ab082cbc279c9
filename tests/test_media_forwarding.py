"""Media operations forwarded over a real Redis channel layer (REDIS_TEST_URL): answers and the host's own errors
come back as they were; a dead host or one that does not answer is a MediaHostUnavailable, never a wait."""

import asyncio
import time
import uuid

import pytest
from channels.layers import channel_layers, get_channel_layer

from streams import hosts, media, media_forwarding, services
from streams.models import ActiveStream
from tests.live_server import redis_test_database

pytestmark = pytest.mark.redis

TIMEOUT_S = 0.5


@pytest.fixture
def redis_layer(settings):
    settings.REDIS_URL = redis_test_database(6)
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [settings.REDIS_URL]}}
    }
    settings.MEDIA_FORWARD_TIMEOUT_SECONDS = TIMEOUT_S
    settings.MEDIA_HOST_DEAD_SECONDS = 10
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


def unique_host(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}:8000"


def forwarded(operation: str, outcome: str) -> float:
    """How many `operation`s this process forwarded with `outcome`, as its metrics say."""
    (family,) = media_forwarding.FORWARDED.collect()
    wanted = {"operation": operation, "outcome": outcome}
    return sum(sample.value for sample in family.samples if sample.name.endswith("_total") and sample.labels == wanted)


def test_a_channel_name_is_what_channels_allows_and_distinct_per_host():
    names = {media_forwarding.channel_of(host) for host in ("web-1:8000", "web-1_8000", "wéb/1:8000")}
    assert len(names) == 3
    for name in names:
        assert get_channel_layer().match_type_and_length(name)
        get_channel_layer().require_valid_channel_name(name)


async def test_the_owning_hosts_answer_and_its_media_errors_come_back_as_themselves(redis_layer):
    owner = unique_host("owner")

    def listen(session_id: str, offer_sdp: str) -> str:
        if offer_sdp == "too many":
            raise media.TooManyConnections(2)
        return f"answer to {offer_sdp} for {session_id}"

    serving = asyncio.ensure_future(
        media_forwarding.serve(owner, {"listen": listen}, (media.TooManyConnections,))
    )
    errors = {"TooManyConnections": media.TooManyConnections}
    try:
        answer = await media_forwarding.request_async(owner, "listen", {"session_id": "s", "offer_sdp": "v=0"}, errors)
        assert answer == "answer to v=0 for s"
        with pytest.raises(media.TooManyConnections, match=r"on 2 connection\(s\)"):
            await media_forwarding.request_async(
                owner, "listen", {"session_id": "s", "offer_sdp": "too many"}, errors
            )
    finally:
        serving.cancel()


def test_an_operation_for_a_dead_host_is_refused_without_sending_it(redis_layer):
    sent_before = forwarded("listen", "unreachable")
    with pytest.raises(media.MediaHostUnavailable):
        media.listen(uuid.uuid4(), "v=0", listener_user_id=1, owner_id=2, host=unique_host("never-heard"))
    assert forwarded("listen", "unreachable") == sent_before


def test_an_operation_a_live_host_does_not_answer_is_a_503_error_after_the_timeout(redis_layer):
    silent = unique_host("silent")
    hosts.announce(silent, denoise_headroom=3)  # alive by its heartbeat, but nothing takes its requests
    unreachable_before = forwarded("set_muted", "unreachable")
    started = time.monotonic()
    with pytest.raises(media.MediaHostUnavailable):
        media.set_muted(uuid.uuid4(), True, host=silent)
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 2
    assert forwarded("set_muted", "unreachable") == unreachable_before + 1


async def test_a_request_that_waited_past_its_deadline_is_dropped_unanswered(redis_layer):
    owner = unique_host("restarted")
    ran: list[str] = []
    layer = get_channel_layer()
    reply_to = await layer.new_channel()
    await layer.send(
        media_forwarding.channel_of(owner),
        {"type": media_forwarding.REQUEST, "operation": "set_muted", "arguments": {"session_id": "old"},
         "reply_to": reply_to, "expires_at": time.time() - 1},
    )
    serving = asyncio.ensure_future(
        media_forwarding.serve(owner, {"set_muted": lambda session_id: ran.append(session_id)}, ())
    )
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(reply_to), 1)
        assert ran == []
        await media_forwarding.request_async(owner, "set_muted", {"session_id": "new"}, {})
        assert ran == ["new"]  # the host was taking requests all along
    finally:
        serving.cancel()


class LayerThatTurnsOneCancelIntoAnError:
    """Stands in for the Redis client, which can answer a cancel during its read with a connection error."""

    def __init__(self) -> None:
        self.cancels_turned = 0

    async def receive(self, channel: str) -> dict:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.cancels_turned:
                raise
            self.cancels_turned += 1
            raise ConnectionError("Connection closed by server.") from None
        raise AssertionError("unreachable")


async def test_serving_stops_when_cancelled_even_if_the_layer_answers_the_cancel_with_an_error(monkeypatch):
    layer = LayerThatTurnsOneCancelIntoAnError()
    monkeypatch.setattr(media_forwarding, "get_channel_layer", lambda: layer)
    serving = asyncio.ensure_future(media_forwarding.serve(unique_host("stopping"), {}, ()))
    await asyncio.sleep(0)  # serving now waits for its first request
    serving.cancel()
    try:
        await asyncio.wait({serving}, timeout=2)
        assert layer.cancels_turned == 1
        assert serving.cancelled()
    finally:
        serving.cancel()  # on the broken path, the second cancel reaches it


# --- through the API: a stream whose media host is gone ------------------------------------------------------------

OFFER = {"sdp": "v=0\r\n", "type": "offer"}


@pytest.mark.django_db
def test_offers_for_a_stream_on_a_dead_host_are_a_503_and_its_stop_still_ends_it(redis_layer, api_client, alice, bob):
    stream = services.start_stream(alice, denoise=False)
    ActiveStream.objects.filter(pk=stream.pk).update(media_host=unique_host("dead"))
    for who, url in ((alice, "/api/stream/offer/"), (bob, "/api/stream/listener/alice/offer/")):
        response = api_client(who).post(url, OFFER, format="json")
        assert response.status_code == 503
        assert "not answering" in response.json()["error"]
    assert api_client(alice).post("/api/stream/mute/", {"muted": True}, format="json").status_code == 503
    assert api_client(alice).post("/api/stream/stop/", {}, format="json").status_code == 200
    assert not ActiveStream.objects.filter(owner=alice).exists()
