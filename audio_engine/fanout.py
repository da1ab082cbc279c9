"""Fan-out of one stream's encoded audio to all its listeners.

The stream is Opus-encoded once (framing.OpusPacketEncoder); every listener's RTCRtpSender gets the same
av.Packet objects from its ListenerTrack and only packetizes/encrypts them. Per listener the engine does a
deque append and, if the sender is waiting, one future wake-up: near-zero cost.

Each listener has a bounded queue that drops its oldest packets: a slow or dead listener never delays others,
the recorder or the loop, and never grows memory. Drops are counted, only when they happen, per listener and in
a DropCount that many fan-outs may share (the engine's, for monitoring). Tracks are event-driven (no pacing of
their own): packets are produced in real time by the publisher.
"""

from __future__ import annotations

import asyncio
from collections import deque

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

DEFAULT_LISTENER_QUEUE_PACKETS = 10  # 200 ms


class DropCount:
    """Packets dropped from full listener queues, over every fan-out that shares it."""

    def __init__(self) -> None:
        self.packets = 0


class ListenerTrack(MediaStreamTrack):
    """An audio track whose recv() returns the stream's pre-encoded Opus packets."""

    kind = "audio"

    def __init__(self, fanout: EncodedPacketFanout, max_queued_packets: int) -> None:
        super().__init__()
        self._fanout = fanout
        self._queue: deque[av.Packet] = deque(maxlen=max_queued_packets)
        self._waiter: asyncio.Future[None] | None = None
        self.dropped_packets = 0

    def push(self, packet: av.Packet) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped_packets += 1
            self._fanout.drops.packets += 1
        self._queue.append(packet)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """The stream ended: wake the sender so that recv() raises MediaStreamError."""
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def stop(self) -> None:
        self._fanout.remove_listener(self)
        self.end()


class EncodedPacketFanout:
    def __init__(
        self, max_queued_packets: int = DEFAULT_LISTENER_QUEUE_PACKETS, drops: DropCount | None = None
    ) -> None:
        self._max_queued_packets = max_queued_packets
        self.drops = drops if drops is not None else DropCount()
        self._listeners: set[ListenerTrack] = set()

    @property
    def listener_count(self) -> int:
        return len(self._listeners)

    def add_listener(self) -> ListenerTrack:
        track = self.new_track()
        self.attach(track)
        return track

    def new_track(self) -> ListenerTrack:
        """A listener's track that receives nothing until `attach`ed (e.g. once its connection is admitted)."""
        return ListenerTrack(self, self._max_queued_packets)

    def attach(self, track: ListenerTrack) -> None:
        if track.readyState == "live":
            self._listeners.add(track)

    def remove_listener(self, track: ListenerTrack) -> None:
        self._listeners.discard(track)

    def publish(self, packet: av.Packet) -> None:
        for listener in self._listeners:
            listener.push(packet)

    def close(self) -> None:
        listeners, self._listeners = self._listeners, set()
        for listener in listeners:
            listener.end()
