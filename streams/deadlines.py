"""Runs the stream lifecycle's deadlines on the server's event loop.

Every STREAM_DEADLINE_CHECK_SECONDS, streams that have been away past the grace period or got no audio in time
are ended (services.end_overdue_streams decides, by the database markers and the lifecycle's clock), and so are
the streams of a media host no longer heard from (services.end_streams_of_dead_hosts). The checks start with the
first request or socket a server process serves (`DeadlineChecks` wraps the ASGI application), and so do this
host's heartbeat (streams.hosts) and the media engine's denoise workers (streams.media.start_with_server).
"""

import asyncio
import contextvars
import logging
import weakref
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from streams import media, services

logger = logging.getLogger(__name__)

_checks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]" = weakref.WeakKeyDictionary()
_heartbeats: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]]" = weakref.WeakKeyDictionary()


async def check_deadlines_forever() -> None:
    while True:
        await asyncio.sleep(settings.STREAM_DEADLINE_CHECK_SECONDS)
        try:
            await database_sync_to_async(services.end_overdue_streams)()
            await database_sync_to_async(services.end_streams_of_dead_hosts)()
        except Exception:
            logger.exception("stream deadline check failed")


async def announce_this_host_forever() -> None:
    while True:
        try:
            await asyncio.to_thread(media.announce_this_host)
        except Exception:
            logger.exception("media host heartbeat failed")
        await asyncio.sleep(settings.MEDIA_HOST_HEARTBEAT_SECONDS)


def ensure_deadline_checks() -> None:
    """Start the checks on the running loop unless they already run there."""
    loop = asyncio.get_running_loop()
    task = _checks.get(loop)
    if task is None or task.done():
        # A fresh context: not the request's, whose thread executor is gone once it is answered.
        _checks[loop] = loop.create_task(check_deadlines_forever(), context=contextvars.Context())
    heartbeat = _heartbeats.get(loop)
    if heartbeat is None or heartbeat.done():
        _heartbeats[loop] = loop.create_task(announce_this_host_forever(), context=contextvars.Context())


class DeadlineChecks:
    """ASGI middleware that makes sure the deadline checks run in this process."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        ensure_deadline_checks()
        media.start_with_server()  # the denoise workers too, before anyone goes live
        await self.app(scope, receive, send)
