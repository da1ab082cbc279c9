"""The engine says who listens, with real aiortc peers: the keys the listeners' offers carried, each once."""

from __future__ import annotations

import asyncio

import pytest

from .helpers import start_listener, start_publisher, tone_of, wait_until

pytestmark = pytest.mark.slow


async def test_each_connected_listener_is_reported_by_key_and_one_person_twice_is_named_once(
    engine, events, tmp_path
):
    pc, _track = await start_publisher(
        engine, "w1", tone_of(440, 30), denoise=False, autoplay=True, recording_path=tmp_path / "w1.wav"
    )
    bob = await start_listener(engine, "w1", listener_key="7")
    await wait_until(lambda: events.listener_keys[-1:] == [("w1", ("7",))])
    erin = await start_listener(engine, "w1", listener_key="9")
    bob_again = await start_listener(engine, "w1", listener_key="7")
    await wait_until(lambda: events.listener_counts[-1:] == [("w1", 3)])
    assert events.listener_keys[-1] == ("w1", ("7", "9"))

    await erin.pc.close()
    await wait_until(lambda: events.listener_counts[-1:] == [("w1", 2)], timeout_s=15)
    assert events.listener_keys[-1] == ("w1", ("7",))
    await engine.disconnect_listeners("w1", "7")
    assert events.listener_counts[-1] == ("w1", 0) and events.listener_keys[-1] == ("w1", ())

    await engine.end("w1")
    await pc.close()
    for listener in (bob, bob_again):
        await asyncio.wait_for(listener.task, 5)
        await listener.pc.close()
