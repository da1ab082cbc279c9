"""Encode-once fan-out: every listener gets the same packets; a stalled listener costs nobody anything."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from audio_engine.codec import OpusPacketEncoder
from audio_engine.fanout import DropCount, EncodedPacketFanout


def encoded_packets(count: int):
    encoder = OpusPacketEncoder()
    noise = (0.1 * np.random.default_rng(0).standard_normal(960 * count)).astype(np.float32)
    return encoder.encode(noise)


async def test_every_listener_gets_the_same_encoded_packets():
    fanout = EncodedPacketFanout(max_queued_packets=10)
    first, second = fanout.add_listener(), fanout.add_listener()
    packets = encoded_packets(3)
    for packet in packets:
        fanout.publish(packet)
    assert [await first.recv() for _ in packets] == packets
    assert [await second.recv() for _ in packets] == packets


async def test_stalled_listener_drops_its_oldest_packets_without_delaying_others():
    fanout = EncodedPacketFanout(max_queued_packets=5)
    stalled, active = fanout.add_listener(), fanout.add_listener()
    heard: list = []

    async def listen() -> None:
        while True:
            heard.append(await active.recv())

    reader = asyncio.create_task(listen())
    packets = encoded_packets(50)
    for packet in packets:
        fanout.publish(packet)
        await asyncio.sleep(0)
    assert heard == packets  # the active listener got everything, as it was published
    assert stalled.dropped_packets == 45
    assert [await stalled.recv() for _ in range(5)] == packets[-5:]  # the newest 5 remain
    reader.cancel()


async def test_packets_dropped_by_full_listener_queues_are_counted_across_streams():
    engine_drops = DropCount()  # one engine's count, shared by all its streams' fan-outs
    first, second = (EncodedPacketFanout(max_queued_packets=3, drops=engine_drops) for _ in range(2))
    stalled, keeping_up, also_stalled = first.add_listener(), second.add_listener(), second.add_listener()
    packets = encoded_packets(8)
    for packet in packets:
        first.publish(packet)
        second.publish(packet)
        await keeping_up.recv()
    assert keeping_up.dropped_packets == 0
    assert stalled.dropped_packets == also_stalled.dropped_packets == len(packets) - 3
    assert engine_drops.packets == 2 * (len(packets) - 3)
    stalled.stop()  # a listener that leaves takes nothing back from the count
    first.publish(packets[0])
    assert engine_drops.packets == 2 * (len(packets) - 3)


async def test_ending_the_stream_ends_waiting_listeners():
    fanout = EncodedPacketFanout()
    listener = fanout.add_listener()
    waiting = asyncio.create_task(listener.recv())
    await asyncio.sleep(0)
    fanout.close()
    with pytest.raises(MediaStreamError):
        await waiting
    assert fanout.listener_count == 0


async def test_stopped_listener_leaves_the_fanout():
    fanout = EncodedPacketFanout()
    listener = fanout.add_listener()
    listener.stop()
    assert fanout.listener_count == 0
