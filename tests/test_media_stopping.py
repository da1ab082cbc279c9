"""A server process that is told to stop ends its streams and always stops its media engine, whatever context the
signal lands in: an engine left running keeps the process from exiting."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid

import pytest

from streams import media, signals

# Stands for what a view's `async_to_sync` call leaves in the loop's context (its thread's executor).
VIEW_CONTEXT = contextvars.ContextVar("view_context", default="none")


SESSION_IDS = [str(uuid.uuid4()), str(uuid.uuid4())]


class EngineThatRecordsShutdown:
    def __init__(self) -> None:
        self.shut_down = False

    def session_ids(self) -> list[str]:
        return SESSION_IDS

    async def shutdown(self) -> list:
        self.shut_down = True
        return []


@pytest.mark.django_db(transaction=True)
async def test_stopping_ends_the_streams_through_the_lifecycle_then_stops_the_engine(caplog):
    engine = EngineThatRecordsShutdown()
    ended = []

    def record(session_ids, **_):
        ended.append((list(session_ids), engine.shut_down))

    signals.media_stopping.connect(record)
    try:
        await media.stop_media(engine)  # type: ignore[arg-type]
    finally:
        signals.media_stopping.disconnect(record)
    assert ended == [(SESSION_IDS, False)]
    assert engine.shut_down
    assert "failed" not in caplog.text  # the lifecycle's own receiver ended them without an error


async def test_the_engine_stops_even_when_ending_the_streams_fails(monkeypatch, caplog):
    engine = EngineThatRecordsShutdown()

    def unreachable_database(**_):
        raise RuntimeError("CurrentThreadExecutor already quit or is broken")

    monkeypatch.setattr(signals.media_stopping, "send_robust", unreachable_database)
    with caplog.at_level(logging.ERROR, logger="streams.media"):
        await media.stop_media(engine)  # type: ignore[arg-type]
    assert engine.shut_down
    assert "could not end this process's streams" in caplog.text


async def test_work_started_for_the_process_does_not_inherit_the_context_it_was_started_from():
    VIEW_CONTEXT.set("a finished view")
    seen = []

    async def look() -> None:
        seen.append(VIEW_CONTEXT.get())

    await media._fresh_task(look())
    await asyncio.ensure_future(look())  # what a plain task would see
    assert seen == ["none", "a finished view"]
