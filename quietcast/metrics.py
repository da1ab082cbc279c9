"""This server process's Prometheus metrics at `/metrics` (text exposition format), for its operators only.

What the media engine carries and counted is read from it when scraped (`streams.media.engine_stats`), so
nothing is added to the per-packet paths; offers are counted and timed as the API handles them (`measured_offer`).
Every series is per process: a site of several processes is scraped at each.

Who may read it: with METRICS_TOKEN set, a request with `Authorization: Bearer <METRICS_TOKEN>`; without it,
a client on the loopback address whose request did not come through a proxy (no X-Forwarded-For: a reverse
proxy on the same machine would otherwise make every visitor look local). Everyone else gets the site's plain
404, as for a page that does not exist: the endpoint is not revealed to the public.
"""

import functools
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from audio_engine import EngineStats, HistogramSnapshot
from streams import media, media_forwarding, placement

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU seconds, memory and open files of this process

# Offers by kind: "publish" (a broadcaster's microphone) and "listen" (a listener's connection). Named for the
# offer, not for where it is answered, so that routing offers between processes can add labels to the same series.
OFFERS = Counter("quietcast_offers", "WebRTC offers handled, answered or not.", ["kind"], registry=REGISTRY)
OFFER_FAILURES = Counter(
    "quietcast_offer_failures",
    "WebRTC offers not answered, by the reason the API gave (not_live, offer_rejected, not_sending_yet, ...).",
    ["kind", "reason"],
    registry=REGISTRY,
)
OFFER_SECONDS = Histogram(
    "quietcast_offer_seconds",
    "Time from an offer reaching the stream service to its answer or refusal.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

P = ParamSpec("P")
R = TypeVar("R")


def _reason(error: Exception) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def measured_offer(kind: str, handle: Callable[P, R]) -> Callable[P, R]:
    """`handle` (answers an offer of `kind`), counted and timed; an exception counts as a failure by its type."""

    @functools.wraps(handle)
    def measured(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return handle(*args, **kwargs)
        except Exception as error:
            OFFER_FAILURES.labels(kind, _reason(error)).inc()
            raise
        finally:
            OFFERS.labels(kind).inc()
            OFFER_SECONDS.labels(kind).observe(time.perf_counter() - started)

    return measured


def _histogram(family: HistogramMetricFamily, labels: list[str], histogram: HistogramSnapshot) -> None:
    buckets = [(floatToGoString(bound), count) for bound, count in histogram.buckets]
    family.add_metric(labels, buckets, histogram.sum)


class EngineCollector(Collector):
    """The media engine's figures, read from it at each scrape."""

    def collect(self) -> Iterable[Metric]:
        stats = media.engine_stats() or EngineStats(0, 0, 0, 0, None)
        yield GaugeMetricFamily("quietcast_live_streams", "Live streams whose media this process holds.",
                                value=stats.live_streams)
        yield GaugeMetricFamily("quietcast_denoised_streams", "Live streams being denoised now.",
                                value=stats.denoised_streams)
        yield GaugeMetricFamily("quietcast_listeners", "Connected listener connections.", value=stats.listeners)
        yield CounterMetricFamily("quietcast_listener_dropped_packets",
                                  "Audio packets dropped from full listener queues (slow or stalled listeners).",
                                  value=stats.listener_dropped_packets)
        if stats.denoise_headroom is not None:
            yield GaugeMetricFamily("quietcast_denoise_headroom",
                                    "More denoised streams the denoise workers can take now (measured).",
                                    value=stats.denoise_headroom)
        fallbacks = CounterMetricFamily(
            "quietcast_pass_through_fallbacks",
            "Denoised streams switched to pass-through by the server: busy (a worker fell behind), "
            "worker_unavailable (crashed, hung or restarting), model_unavailable.",
            labels=["reason"],
        )
        for reason, count in sorted(stats.pass_through_fallbacks.items()):
            fallbacks.add_metric([reason], count)
        yield fallbacks
        workers = GaugeMetricFamily("quietcast_denoise_worker_up", "1 while a denoise worker is ready.",
                                    labels=["worker"])
        restarts = CounterMetricFamily("quietcast_denoise_worker_restarts",
                                       "Denoise workers restarted after a crash, a hang or a failed start.",
                                       labels=["worker"])
        ticks = HistogramMetricFamily("quietcast_denoise_tick_seconds",
                                      "Wall time of a denoise worker's tick (all its streams; 20 ms of audio).",
                                      labels=["worker"])
        waits = HistogramMetricFamily("quietcast_denoise_frame_wait_seconds",
                                      "Per tick, the longest a frame waited for its worker (lateness; ~20 ms when "
                                      "the worker keeps up).", labels=["worker"])
        for worker in stats.denoise_workers:
            labels = [str(worker.index)]
            workers.add_metric(labels, 1 if worker.state == "ready" else 0)
            restarts.add_metric(labels, worker.restarts)
            _histogram(ticks, labels, worker.tick_seconds)
            _histogram(waits, labels, worker.wait_seconds)
        yield from (workers, restarts, ticks, waits)


REGISTRY.register(EngineCollector())
for routing_metric in (
    media_forwarding.FORWARDED, media_forwarding.FORWARD_SECONDS, media_forwarding.SERVED,
    placement.PLACEMENTS, placement.PLACEMENT_SECONDS,
):
    REGISTRY.register(routing_metric)


def may_read_metrics(remote_address: str, authorization: str, forwarded_for: str, token: str) -> bool:
    """The access rule of /metrics (see the module's docstring)."""
    if token:
        scheme, _, presented = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())
    if forwarded_for:
        return False
    try:
        return ipaddress.ip_address(remote_address).is_loopback
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_read_metrics(request.META.get("REMOTE_ADDR", ""), request.headers.get("Authorization", ""),
                            request.headers.get("X-Forwarded-For", ""), settings.METRICS_TOKEN):
        logger.info("refused /metrics to %s (%s)", request.META.get("REMOTE_ADDR"),
                    "wrong or missing token" if settings.METRICS_TOKEN else "not a loopback client")
        raise Http404
    if request.method not in ("GET", "HEAD"):  # only after the access check: a refusal reveals nothing
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
