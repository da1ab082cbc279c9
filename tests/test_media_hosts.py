"""The media host registry: heartbeats in a real redis-server (REDIS_TEST_URL), judged by a clock moved by hand."""

import os
import uuid

import pytest

from streams import hosts

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
