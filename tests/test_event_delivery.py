"""Events go out after the change is stored; start and stop refuse, changing nothing, while Redis is down."""

import shutil
import subprocess
import time

import pytest
from channels.layers import channel_layers

from streams import services
from streams.models import ActiveStream
from tests.live_server import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.api]


@pytest.fixture
def redis_layer(settings, tmp_path):
    """A channel layer on a private redis-server, and a way to stop that server."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [f"redis://127.0.0.1:{port}/0"]}}
    }
    channel_layers.backends = {}
    deadline = time.monotonic() + 5
    while True:
        try:
            services.events.require_reachable()
            break
        except services.events.ChannelLayerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

    def stop() -> None:
        server.terminate()
        server.wait(5)

    yield stop
    if server.poll() is None:
        stop()
    channel_layers.backends = {}


def test_start_while_redis_is_down_is_a_clear_503_and_nothing_goes_live(api_client, alice, redis_layer):
    redis_layer()
    response = api_client(alice).post("/api/stream/start/", {}, format="json")
    assert response.status_code == 503
    assert "nothing was changed" in response.json()["error"]
    assert not ActiveStream.objects.exists()


def test_stop_while_redis_is_down_is_a_clear_503_and_the_stream_stays_live(api_client, alice, redis_layer):
    client = api_client(alice)
    assert client.post("/api/stream/start/", {}, format="json").status_code == 201
    redis_layer()
    response = client.post("/api/stream/stop/", {}, format="json")
    assert response.status_code == 503
    assert "nothing was changed" in response.json()["error"]
    assert ActiveStream.objects.filter(owner=alice).exists()


class LayerThatFailsToSend:
    """Answers the reachability check, then fails every send (Redis going away between the two)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def group_send(self, group: str, message: dict) -> None:
        self.attempts += 1
        raise ConnectionError("Redis went away")


def test_a_failed_send_never_turns_a_done_change_into_an_error(
    api_client, cast, monkeypatch, django_capture_on_commit_callbacks
):
    layer = LayerThatFailsToSend()
    monkeypatch.setattr(services.events, "get_channel_layer", lambda: layer)
    client = api_client(cast["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/stream/start/", {}, format="json").status_code == 201
    assert ActiveStream.objects.filter(owner=cast["owner"]).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/api/stream/stop/", {}, format="json").status_code == 200
    assert not ActiveStream.objects.exists()
    assert layer.attempts > 0  # the events were tried, and their failure was only logged
