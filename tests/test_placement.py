"""Where a new denoised stream's media goes: the rule on plain loads, and start_stream reading the real registry
(redis-server, REDIS_TEST_URL) with a clock moved by hand."""

import uuid

import pytest

from streams import hosts, media, placement, services
from streams.events import EndReason
from streams.models import ActiveStream
from streams.placement import HostLoad, choose_host
from tests.live_server import redis_test_database

HERE = "here:8000"


def test_the_process_that_took_the_start_keeps_the_stream_while_it_has_room():
    here = HostLoad(HERE, denoised_streams=1, denoise_headroom=3)
    assert choose_host(here, [HostLoad("idle:8000", 0, 9)], limit=2) == HERE


def test_a_full_process_sends_the_stream_to_the_least_loaded_live_host_with_room():
    here = HostLoad(HERE, denoised_streams=2, denoise_headroom=3)
    others = [HostLoad("busy:8000", 1, 5), HostLoad("quiet:8000", 0, 1), HostLoad("full:8000", 2, 9)]
    assert choose_host(here, others, limit=2) == "quiet:8000"


def test_between_equally_loaded_hosts_the_one_with_more_headroom_wins():
    here = HostLoad(HERE, denoised_streams=2, denoise_headroom=0)
    assert choose_host(here, [HostLoad("a:8000", 1, 1), HostLoad("b:8000", 1, 4)], limit=0) == "b:8000"


def test_a_host_whose_workers_measure_no_headroom_takes_no_second_denoised_stream_but_always_a_first():
    assert not placement.has_room(HostLoad("a", denoised_streams=1, denoise_headroom=0), limit=0)
    assert placement.has_room(HostLoad("a", denoised_streams=0, denoise_headroom=0), limit=0)
    assert placement.has_room(HostLoad("a", denoised_streams=3, denoise_headroom=None), limit=0)  # not measured yet


def test_no_host_with_room_means_no_place():
    here = HostLoad(HERE, denoised_streams=1, denoise_headroom=2)
    assert choose_host(here, [HostLoad("full:8000", 1, 2), HostLoad(HERE, 0, 9)], limit=1) is None


# --- start_stream with the real registry ---------------------------------------------------------------------------

DEAD = 10


@pytest.fixture
def site(settings):
    """This process, `here`, full at one denoised stream; another live host can be announced in Redis."""
    settings.REDIS_URL = redis_test_database(4)
    settings.MEDIA_HOST_DEAD_SECONDS = DEAD
    settings.MAX_DENOISED_STREAMS = 1
    settings.MEDIA_HOST_ID = f"here-{uuid.uuid4().hex}:8000"
    return settings


def test_max_denoised_streams_counts_only_the_streams_this_process_holds(settings, alice, bob, monkeypatch):
    settings.MAX_DENOISED_STREAMS = 1
    settings.REDIS_URL = ""
    monkeypatch.setattr(media, "denoise_headroom", lambda: 5)
    elsewhere = services.start_stream(bob, denoise=True)
    ActiveStream.objects.filter(pk=elsewhere.pk).update(media_host="elsewhere:8000")
    assert services.start_stream(alice, denoise=True).media_host == media.host_id()


@pytest.mark.redis
def test_a_denoised_start_on_a_full_process_goes_to_a_live_host_with_room_and_is_refused_once_none_is_left(
    site, lifecycle_clock, alice, bob, carol, monkeypatch
):
    monkeypatch.setattr(media, "denoise_headroom", lambda: 5)
    other = f"other-{uuid.uuid4().hex}:8000"
    hosts.announce(other, denoise_headroom=4)
    assert services.start_stream(alice, denoise=True).media_host == site.MEDIA_HOST_ID
    assert services.start_stream(bob, denoise=True).media_host == other  # here is full
    assert services.start_stream(carol, denoise=False).media_host == site.MEDIA_HOST_ID  # no denoise: no limit
    services.end_stream(carol, reason=EndReason.STOPPED)
    with pytest.raises(services.DenoiseAtCapacity):  # both hold their one denoised stream
        services.start_stream(carol, denoise=True)

    lifecycle_clock.advance(DEAD + 1)  # the other host has not been heard from since: it takes nothing
    services.end_stream(bob, reason=EndReason.STOPPED)
    with pytest.raises(services.DenoiseAtCapacity):
        services.start_stream(carol, denoise=True)
