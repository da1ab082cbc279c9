"""Holds this process's media engine and connects its events to the stream lifecycle.

The engine lives on the server's event loop. Synchronous Django code (views, services) reaches it through the
blocking helpers here, which run the coroutine on that loop with `async_to_sync`; the engine's callbacks run on
the loop and hand their database work to a thread, in order, through one queue.
"""

import asyncio
import contextvars
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings

from audio_engine import EngineConfig, MediaEngine, RecordingResult

# `streams.services` is imported inside the functions that call it: it imports this module (through media).

logger = logging.getLogger(__name__)

_engine: MediaEngine | None = None
_lifecycle_queue: asyncio.Queue | None = None


def _config() -> EngineConfig:
    return EngineConfig(
        ice_servers=settings.ICE_SERVERS,
        denoise_model_path=settings.DENOISE_MODEL,
        atten_lim_db=settings.DENOISE_ATTEN_LIM_DB,
        post_filter_beta=settings.DENOISE_POST_FILTER_BETA,
        receive_prefetch=None if settings.MEDIA_RECEIVE_PREFETCH < 0 else settings.MEDIA_RECEIVE_PREFETCH,
        denoise_workers=settings.DENOISE_WORKERS,
        denoise_backend=settings.DENOISE_BACKEND,
        media_timeout_s=settings.MEDIA_TIMEOUT_SECONDS,
    )


class _LifecycleEvents:
    """Engine callbacks (on the loop, must be cheap): queue the database work for `_run_lifecycle_work`."""

    def publisher_gone(self, session_id: str) -> None:
        _queue_work(_end_if_publisher_stays_gone, session_id)

    def listener_count_changed(self, session_id: str, count: int) -> None:
        from streams import services

        _queue_work(sync_to_async(services.set_listener_count), session_id, count)

    def denoise_mode_changed(self, session_id: str, denoised: bool) -> None:
        logger.info("session %s: %s", session_id, "denoised again" if denoised else "denoising paused (busy)")


def _queue_work(coroutine_function: Callable, *args: Any) -> None:
    if _lifecycle_queue is not None:
        _lifecycle_queue.put_nowait((coroutine_function, args))


async def _run_lifecycle_work() -> None:
    # One consumer keeps listener counts in order and lets a slow database write never block the engine.
    while True:
        coroutine_function, args = await _lifecycle_queue.get()
        try:
            await coroutine_function(*args)
        except Exception:
            logger.exception("stream lifecycle work failed: %s%s", coroutine_function, args)


# How many times each session's publisher has gone: a grace timer acts only if no later one has started.
_publisher_losses: dict[str, int] = {}


async def _end_if_publisher_stays_gone(session_id: str) -> None:
    """A dropped broadcaster gets the same grace as a closed presence socket: a reloaded page re-publishes."""
    from streams import services

    loss = _publisher_losses[session_id] = _publisher_losses.get(session_id, 0) + 1

    async def later() -> None:
        await asyncio.sleep(settings.STREAM_RECONNECT_GRACE_SECONDS)
        if _publisher_losses.get(session_id) != loss:
            return  # the publisher came back and went again: the newer timer decides
        _publisher_losses.pop(session_id, None)
        if _engine is not None and _engine.has_live_publisher(session_id):
            return
        await sync_to_async(services.end_stream_session)(session_id, reason="broadcaster connection lost")

    _background(later())


_background_tasks: set[asyncio.Task] = set()


def _background(coroutine) -> None:
    # A fresh context: the engine is often created inside a view's `async_to_sync` call, and a task inheriting
    # that context would hand its `sync_to_async` work to the view's thread executor, which is gone afterwards.
    task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
    _background_tasks.add(task)
    task.add_done_callback(_background_tasks.discard)


def engine() -> MediaEngine:
    """This process's engine, created on first use. Must be called on the server's event loop."""
    global _engine, _lifecycle_queue
    if _engine is None:
        _engine = MediaEngine(_config(), _LifecycleEvents())
        _lifecycle_queue = asyncio.Queue()
        _background(_run_lifecycle_work())
        _end_streams_on_server_shutdown()
    return _engine


async def publish(session_id: str, offer_sdp: str, *, denoise: bool, recording_path: Path) -> str:
    return await engine().publish(session_id, offer_sdp, denoise=denoise, recording_path=recording_path)


# A friend sees LIVE as soon as the stream starts, a moment before the broadcaster's own WebRTC offer arrives.
PUBLISHER_WAIT_S = 5.0


async def listen(session_id: str, offer_sdp: str, *, listener_key: str) -> str:
    media_engine = engine()
    deadline = asyncio.get_running_loop().time() + PUBLISHER_WAIT_S
    while not media_engine.is_publishing(session_id) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    return await media_engine.listen(session_id, offer_sdp, listener_key=listener_key)


def disconnect_listener(session_id: str, listener_key: str) -> None:
    """Blocking: close every listener connection tagged `listener_key` in the session, if this process has it."""
    if _engine is not None and _engine.is_publishing(session_id):
        async_to_sync(_engine.disconnect_listeners)(session_id, listener_key)


def denoise_headroom() -> int | None:
    """Blocking: how many more denoised streams this process's denoise workers can take now (measured); None
    before they have started."""
    if _engine is None:
        return None

    async def measured() -> int | None:
        return _engine.denoise_headroom()

    return async_to_sync(measured)()


def end_session(session_id: str) -> RecordingResult | None:
    """Blocking: close a session's media and return its recording. None when this process has no such session."""
    if _engine is None or not _engine.is_publishing(session_id):
        return None
    return async_to_sync(_engine.end)(session_id)


def _end_streams_on_server_shutdown() -> None:
    """Under Daphne, end every live stream through the lifecycle before the process exits (SIGTERM, Ctrl-C)."""
    try:
        from twisted.internet import reactor
        from twisted.internet.defer import Deferred
    except ImportError:
        return
    if not reactor.running:
        return

    async def end_all() -> None:
        from streams import services

        for session_id in _engine.session_ids():
            await sync_to_async(services.end_stream_session)(session_id, reason="server shutting down")
        await _engine.shutdown()

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(end_all())))
