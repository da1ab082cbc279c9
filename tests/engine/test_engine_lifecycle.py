"""The engine's side of a stream's life, with real aiortc peers: listener connections that are offered,
connected, refused or never complete; ending a session while its first publish is still starting; a first
publish that fails."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from audio_engine import (
    DenoiserUnavailable,
    EngineConfig,
    MediaEngine,
    StreamNotFound,
    TooManyListenerConnections,
)

from .helpers import RecordedEvents, start_listener, start_publisher, tone_of, wait_until

pytestmark = pytest.mark.slow

CONNECT_TIMEOUT_S = 1.0


@pytest.fixture
async def capped_engine(events: RecordedEvents):
    config = EngineConfig(
        denoise_workers=1,
        receive_prefetch=1,
        listener_connect_timeout_s=CONNECT_TIMEOUT_S,
        max_connections_per_listener=2,
    )
    media_engine = MediaEngine(config, events)
    yield media_engine
    await media_engine.shutdown()


async def offer_only() -> tuple[RTCPeerConnection, str]:
    """A listener's offer whose answer will never be applied: its connection never completes."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def live_session(engine: MediaEngine, session_id: str, tmp_path) -> RTCPeerConnection:
    pc, _track = await start_publisher(
        engine, session_id, tone_of(440, 30), denoise=False, autoplay=True, recording_path=tmp_path / "s.wav"
    )
    return pc


async def test_a_listener_is_counted_only_once_connected(capped_engine, events, tmp_path):
    publisher = await live_session(capped_engine, "s", tmp_path)
    pc, offer = await offer_only()
    answer = await capped_engine.listen("s", offer, listener_key="bob")
    assert capped_engine.listener_count("s") == 0 and events.listener_counts == []
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await wait_until(lambda: capped_engine.listener_count("s") == 1)
    assert events.listener_counts == [("s", 1)]
    await pc.close()
    await publisher.close()


async def test_a_listener_connection_that_never_completes_is_closed_and_never_counted(
    capped_engine, events, tmp_path
):
    publisher = await live_session(capped_engine, "s", tmp_path)
    stalled = [await offer_only() for _ in range(2)]
    for _pc, offer in stalled:
        await capped_engine.listen("s", offer, listener_key="bob")
    pc, offer = await offer_only()
    with pytest.raises(TooManyListenerConnections):  # the stalled offers hold bob's two places
        await capped_engine.listen("s", offer, listener_key="bob")
    await asyncio.sleep(CONNECT_TIMEOUT_S + 0.5)  # the engine's own connect timeout, on the loop's clock
    await capped_engine.listen("s", offer, listener_key="bob")  # their places were freed
    assert events.listener_counts == []
    for stalled_pc, _offer in stalled:
        await stalled_pc.close()
    await pc.close()
    await publisher.close()


async def test_one_person_may_hold_only_so_many_connections_to_a_stream(capped_engine, tmp_path):
    publisher = await live_session(capped_engine, "s", tmp_path)
    phone = await start_listener(capped_engine, "s", listener_key="bob")
    laptop = await start_listener(capped_engine, "s", listener_key="bob")
    await wait_until(lambda: capped_engine.listener_count("s") == 2)
    with pytest.raises(TooManyListenerConnections):
        await start_listener(capped_engine, "s", listener_key="bob")
    zed = await start_listener(capped_engine, "s", listener_key="zed")  # the cap is per person
    await wait_until(lambda: capped_engine.listener_count("s") == 3)
    for peer in (phone, laptop, zed):
        await peer.pc.close()
    await publisher.close()


async def test_a_listener_refused_when_connecting_never_hears_the_stream(capped_engine, events, tmp_path):
    publisher = await live_session(capped_engine, "s", tmp_path)
    asked = []

    async def unfriended_meanwhile() -> bool:
        asked.append(True)
        return False

    refused = await start_listener(capped_engine, "s", listener_key="bob", admit=unfriended_meanwhile)
    await asyncio.wait_for(refused.task, 10)  # the server closed the connection
    assert asked == [True]
    assert refused.chunks == [] and events.listener_counts == []
    await refused.pc.close()
    await publisher.close()


async def test_ending_a_session_while_its_first_denoised_publish_starts_the_workers_leaves_nothing(
    engine, tmp_path
):
    recording = tmp_path / "s.wav"
    publishing = asyncio.ensure_future(
        start_publisher(engine, "s", tone_of(440, 5), denoise=True, recording_path=recording)
    )
    await wait_until(engine.session_ids)  # the offer is in: the worker pool is starting
    ended = await engine.end("s")
    with pytest.raises(StreamNotFound):
        await publishing
    assert engine.session_ids() == [] and not engine.is_publishing("s")
    assert ended is not None and ended.duration_s == 0
    assert list(tmp_path.iterdir()) == []  # no recording file, finished or partial


async def test_a_first_publish_that_cannot_be_denoised_leaves_nothing(events, tmp_path):
    broken = MediaEngine(EngineConfig(denoise_workers=1, denoise_model_path=str(tmp_path / "missing.tar.gz")), events)
    with pytest.raises(DenoiserUnavailable):
        await start_publisher(broken, "s", tone_of(440, 5), denoise=True, recording_path=tmp_path / "s.wav")
    assert broken.session_ids() == [] and list(tmp_path.iterdir()) == []
    await broken.shutdown()


def test_an_events_object_missing_a_callback_is_refused_when_the_engine_is_built(events):
    class Incomplete:
        def publisher_gone(self, session_id: str) -> None:
            pass

    with pytest.raises(TypeError, match="lacks publisher_connected, listener_count_changed, denoise_mode_changed"):
        MediaEngine(EngineConfig(denoise_workers=1), Incomplete())
    MediaEngine(EngineConfig(denoise_workers=1), events)  # the tests' complete one is accepted
