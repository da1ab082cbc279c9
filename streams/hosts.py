"""Which media hosts (server processes running a media engine) are alive, and their free denoise capacity.

With REDIS_URL each process announces itself in Redis every MEDIA_HOST_HEARTBEAT_SECONDS: a key per host
carrying the time (streams.clock) and its denoise headroom. A host whose last heartbeat is older than
MEDIA_HOST_DEAD_SECONDS is dead; the key's own expiry only clears it away. Without Redis (one process) the
only host is this one, and it is alive.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.conf import settings

from streams import clock

_KEY_PREFIX = "quietcast:media-host:"


@dataclass(frozen=True)
class MediaHost:
    host_id: str
    seen_at: datetime
    denoise_headroom: int | None


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _dead_bound() -> timedelta:
    return timedelta(seconds=settings.MEDIA_HOST_DEAD_SECONDS)


def announce(host_id: str, denoise_headroom: int | None) -> None:
    """Blocking: say that `host_id` is alive now, with this much free denoise capacity (None: not yet known)."""
    if not settings.REDIS_URL:
        return
    beat = json.dumps({"seen_at": clock.now().isoformat(), "denoise_headroom": denoise_headroom})
    # Kept a little past the bound so that a reader with a clock slightly behind still sees the last beat.
    with _client() as client:
        client.set(_KEY_PREFIX + host_id, beat, ex=max(1, int(settings.MEDIA_HOST_DEAD_SECONDS * 2)))


def _last_beats() -> list[MediaHost]:
    """Blocking: every host whose last heartbeat Redis still keeps, alive or not."""
    with _client() as client:
        keys = list(client.scan_iter(match=_KEY_PREFIX + "*"))
        beats = client.mget(keys) if keys else []
    hosts = []
    for key, raw in zip(keys, beats, strict=True):
        if raw is None:
            continue
        beat = json.loads(raw)
        hosts.append(MediaHost(key.decode().removeprefix(_KEY_PREFIX), datetime.fromisoformat(beat["seen_at"]),
                               beat["denoise_headroom"]))
    return sorted(hosts, key=lambda host: host.host_id)


def live_hosts(this_host_id: str) -> list[MediaHost]:
    """Blocking: the hosts heard from within MEDIA_HOST_DEAD_SECONDS (without Redis: just this one)."""
    now = clock.now()
    if not settings.REDIS_URL:
        return [MediaHost(this_host_id, now, None)]
    return [host for host in _last_beats() if now - host.seen_at <= _dead_bound()]


def known_dead(host_ids: set[str], this_host_id: str) -> set[str]:
    """Blocking: which of `host_ids` are known to be gone. With Redis, those whose kept heartbeat is past the
    bound; a host not heard from at all may be one just starting, so it is not listed. Without Redis there is one
    process, so every other id is one an earlier run of it had (before its PORT or MEDIA_HOST_ID changed)."""
    if not settings.REDIS_URL:
        return host_ids - {this_host_id}
    now = clock.now()
    stale = {host.host_id for host in _last_beats() if now - host.seen_at > _dead_bound()}
    return (host_ids & stale) - {this_host_id}


def is_alive(host_id: str, this_host_id: str) -> bool:
    """Blocking: whether `host_id` has been heard from within the bound (this process always is)."""
    return host_id == this_host_id or any(host.host_id == host_id for host in live_hosts(this_host_id))
