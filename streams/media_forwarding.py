"""Media operations on a stream held by another server process, carried over the channel layer (Redis).

Each media host takes requests on its own channel (`channel_of(host id)`), runs them on its own engine and replies
on the requester's reply channel. A request names an operation and its arguments (plain values); the reply carries
the result, or the name and message of a media error the host raised, which the requester raises again as the same
exception. A request not answered within MEDIA_FORWARD_TIMEOUT_SECONDS fails with HostUnreachable: the caller never
waits longer. A request that waited in a channel past its deadline (a host that was down when it was sent) is
dropped unanswered by the host, so a restarted host never acts on stale offers.

This module knows nothing of what the operations are: streams.media gives it the handlers and the errors.
"""

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

REQUEST = "media.request"
REPLY = "media.reply"
_FAILED = ""  # the error name of a reply whose handler failed unexpectedly

# Unregistered here (an adapter has no endpoint); quietcast.metrics adds them to the process's registry.
FORWARDED = Counter(
    "quietcast_media_forwarded",
    "Media operations sent to the host that holds the stream, by operation and outcome (answered, media_error, "
    "unreachable).",
    ["operation", "outcome"],
    registry=None,
)
FORWARD_SECONDS = Histogram(
    "quietcast_media_forward_seconds",
    "Time from sending a media operation to another host to its reply (or to giving up).",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
SERVED = Counter(
    "quietcast_media_served",
    "Media operations this host ran for another host, by operation and outcome (answered, media_error, failed, "
    "expired).",
    ["operation", "outcome"],
    registry=None,
)


class HostUnreachable(Exception):
    """The host did not answer in time, or failed to run the operation."""


def channel_of(host_id: str) -> str:
    """The channel a host takes requests on: its id in the characters channel names allow, and a digest of the
    id itself so that two ids that differ only in other characters never share one."""
    readable = re.sub(r"[^a-zA-Z0-9\-_.]", "_", host_id)[:64]
    return f"media-host.{readable}.{hashlib.sha256(host_id.encode()).hexdigest()[:12]}"


def timeout_s() -> float:
    return float(settings.MEDIA_FORWARD_TIMEOUT_SECONDS)


# --- the requesting side --------------------------------------------------------------------------------------------


def request(host_id: str, operation: str, arguments: Mapping[str, Any], errors: Mapping[str, type[Exception]]) -> Any:
    """Blocking: run `operation` on `host_id` and return its result. Raises the error the host raised (one of
    `errors`, by class name), or HostUnreachable."""
    return async_to_sync(request_async)(host_id, operation, arguments, errors)


async def request_async(
    host_id: str, operation: str, arguments: Mapping[str, Any], errors: Mapping[str, type[Exception]]
) -> Any:
    layer = get_channel_layer()
    started = time.perf_counter()
    outcome = "unreachable"
    try:
        reply_to = await layer.new_channel()
        await layer.send(
            channel_of(host_id),
            {
                "type": REQUEST,
                "operation": operation,
                "arguments": dict(arguments),
                "reply_to": reply_to,
                "expires_at": time.time() + timeout_s(),
            },
        )
        try:
            reply = await asyncio.wait_for(layer.receive(reply_to), timeout_s())
        except TimeoutError:
            raise HostUnreachable(f"media host {host_id} did not answer {operation} in {timeout_s():g} s") from None
        if "error" not in reply:
            outcome = "answered"
            return reply["result"]
        error_class = errors.get(reply["error"])
        if error_class is None:
            raise HostUnreachable(f"media host {host_id} failed to run {operation}: {reply['message']}")
        outcome = "media_error"
        raise _rebuilt(error_class, reply["message"])
    finally:
        FORWARDED.labels(operation, outcome).inc()
        FORWARD_SECONDS.labels(operation).observe(time.perf_counter() - started)


def _rebuilt(error_class: type[Exception], message: str) -> Exception:
    # The host's error with its message as it was written there; its own constructor's arguments (a reason,
    # a limit) are already in the message.
    error = error_class.__new__(error_class)
    Exception.__init__(error, message)
    return error


# --- the serving side ----------------------------------------------------------------------------------------------

Handler = Callable[..., Any]


async def serve(host_id: str, handlers: Mapping[str, Handler], errors: tuple[type[Exception], ...]) -> None:
    """Take requests for `host_id` forever; each runs at once in its own task, its blocking handler in a thread
    (handlers reach the engine on this loop as synchronous code does)."""
    layer = get_channel_layer()
    channel = channel_of(host_id)
    running: set[asyncio.Task[None]] = set()
    this_task = asyncio.current_task()
    logger.info("media host %s takes forwarded operations on %s", host_id, channel)
    while True:
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            if this_task is not None and this_task.cancelling():
                # The Redis client can turn a cancel that meets its own read into a connection error. It is
                # still a cancel: retrying would keep this host's shutdown waiting on this loop for ever.
                raise asyncio.CancelledError from None
            logger.exception("receiving forwarded media operations failed; retrying")
            await asyncio.sleep(1)
            continue
        task = asyncio.get_running_loop().create_task(_answer(layer, message, handlers, errors))
        running.add(task)
        task.add_done_callback(running.discard)


async def _answer(
    layer: Any, message: dict[str, Any], handlers: Mapping[str, Handler], errors: tuple[type[Exception], ...]
) -> None:
    operation = message.get("operation", "")
    if message.get("expires_at", 0) < time.time():
        SERVED.labels(operation, "expired").inc()
        logger.warning("dropping %s: it waited past its deadline (this host was away)", operation)
        return
    try:
        handler = handlers[operation]
        result = await sync_to_async(handler, thread_sensitive=False)(**message["arguments"])
        reply: dict[str, Any] = {"type": REPLY, "result": result}
        outcome = "answered"
    except errors as error:
        reply = {"type": REPLY, "error": type(error).__name__, "message": str(error)}
        outcome = "media_error"
    except Exception as error:
        logger.exception("forwarded %s failed", operation)
        reply = {"type": REPLY, "error": _FAILED, "message": f"{type(error).__name__}: {error}"}
        outcome = "failed"
    SERVED.labels(operation, outcome).inc()
    try:
        await layer.send(message["reply_to"], reply)
    except Exception:
        logger.exception("could not reply to a forwarded %s", operation)
