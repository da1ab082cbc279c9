"""Where a new denoised stream's media goes: the rule, on plain values (streams.services gathers them).

Each media host takes denoised streams up to MAX_DENOISED_STREAMS of its own, and beside other denoised streams
only while its denoise workers measure headroom for one more: a host with none takes one whatever its load (its
worker passes the stream through whole if the machine cannot keep up), so a busy site never refuses denoising
outright. The process that received the start takes the stream when it has room, so its offers need no hop;
otherwise the least-loaded live host with room does.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

# Unregistered here; quietcast.metrics adds them to the process's registry.
PLACEMENTS = Counter(
    "quietcast_placements",
    "New streams placed, by where their media went: here (the process that took the start), elsewhere (another "
    "live host with room), refused (no host in the site has room for one more denoised stream).",
    ["outcome"],
    registry=None,
)
PLACEMENT_SECONDS = Histogram(
    "quietcast_placement_seconds",
    "Time to choose a new stream's media host (counting streams per host, reading the live hosts).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=None,
)


@dataclass(frozen=True)
class HostLoad:
    host_id: str
    denoised_streams: int  # live denoised streams whose media it holds
    denoise_headroom: int | None  # more its workers measure they can take; None: not known yet


def has_room(host: HostLoad, limit: int) -> bool:
    """Whether `host` takes one more denoised stream under a per-host `limit` (0: none)."""
    if limit and host.denoised_streams >= limit:
        return False
    return not (host.denoised_streams and host.denoise_headroom == 0)


def choose_host(here: HostLoad, others: Iterable[HostLoad], limit: int) -> str | None:
    """The host for a new denoised stream: `here` when it has room, else the live host with room carrying the
    fewest denoised streams (then the most headroom); None when no host has room."""
    if has_room(here, limit):
        return here.host_id
    with_room = [host for host in others if host.host_id != here.host_id and has_room(host, limit)]
    if not with_room:
        return None
    return min(with_room, key=lambda host: (host.denoised_streams, -(host.denoise_headroom or 0), host.host_id)).host_id
