"""Browsers' real offers (captured from firefox-esr 153 and Chromium) are answered at once, with candidates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from audio_engine import EngineConfig, MediaEngine
from audio_engine.sdp import answer_asking_for_opus_bitrate, offer_for_aiortc

from .helpers import FIXTURE_DIR, RecordedEvents

OFFERS = FIXTURE_DIR / "sdp"
# An offer is answered in a few milliseconds; waiting on multicast DNS took about a second.
ANSWER_LIMIT_S = 0.5


def offer(name: str) -> str:
    return (OFFERS / f"{name}-offer.sdp").read_bytes().decode()


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_firefox_offers_hide_their_addresses_and_end_their_candidate_list():
    for name in ("firefox-publisher", "firefox-listener"):
        sdp = offer(name)
        assert candidates(sdp) and all(".local " in line for line in candidates(sdp))
        assert "a=end-of-candidates" in sdp.splitlines()


def test_mdns_candidates_and_the_end_of_candidates_are_dropped_and_nothing_else():
    original = offer("firefox-publisher")
    prepared = offer_for_aiortc(original)
    assert candidates(prepared) == []
    assert "a=end-of-candidates" not in prepared.splitlines()
    assert prepared.splitlines() == [
        line for line in original.splitlines() if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    ]
    assert prepared.endswith("\r\n")


def test_offers_with_addresses_are_left_as_they_are():
    for name in ("chromium-publisher", "chromium-listener"):
        assert candidates(offer(name))
        assert offer_for_aiortc(offer(name)) == offer(name)


def test_only_the_mdns_candidates_go_when_an_offer_has_both():
    firefox = offer("firefox-publisher").splitlines()
    address_candidate = "a=candidate:4 1 UDP 2122187007 192.0.2.7 40000 typ host"
    mixed = "\r\n".join(line for pair in ((line, address_candidate) if line.startswith("a=candidate:0 1 ")
                                         else (line,) for line in firefox) for line in pair) + "\r\n"
    assert candidates(offer_for_aiortc(mixed)) == [address_candidate]


async def test_as_given_by_firefox_aiortc_answers_late_and_without_candidates():
    """Why the offer is prepared: this is what the server answered Firefox before, and ICE never started."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        started = time.monotonic()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer("firefox-publisher"), type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        assert time.monotonic() - started > ANSWER_LIMIT_S
        assert candidates(pc.localDescription.sdp) == []
    finally:
        await pc.close()


@pytest.mark.parametrize("browser", ["firefox", "chromium"])
async def test_the_engine_answers_a_browsers_broadcast_and_listen_offers_at_once_with_candidates(
    browser: str, engine: MediaEngine, tmp_path: Path
):
    await engine.start()  # the denoise workers, which take every stream, start once per server
    started = time.monotonic()
    published = await engine.publish("s1", offer(f"{browser}-publisher"), denoise=False,
                                     recording_path=tmp_path / "s1.wav")
    published_s = time.monotonic() - started
    started = time.monotonic()
    listened = await engine.listen("s1", offer(f"{browser}-listener"))
    listened_s = time.monotonic() - started

    assert candidates(published) and candidates(listened)
    assert "c=IN IP4 0.0.0.0" not in published.splitlines()
    assert "c=IN IP4 0.0.0.0" not in listened.splitlines()
    assert published_s < ANSWER_LIMIT_S and listened_s < ANSWER_LIMIT_S


def opus_fmtp(sdp: str) -> str:
    """The fmtp line of the answer's Opus payload type."""
    (payload_type,) = [line.split()[0][len("a=rtpmap:"):] for line in sdp.splitlines() if " opus/48000" in line]
    (fmtp,) = [line for line in sdp.splitlines() if line.startswith(f"a=fmtp:{payload_type} ")]
    return fmtp


@pytest.mark.parametrize("browser", ["firefox", "chromium"])
async def test_broadcasters_are_asked_for_mono_opus_at_the_configured_rate_and_listeners_are_not(
    browser: str, engine: MediaEngine, tmp_path: Path
):
    published = await engine.publish("s1", offer(f"{browser}-publisher"), denoise=False,
                                     recording_path=tmp_path / "s1.wav")
    listened = await engine.listen("s1", offer(f"{browser}-listener"))
    assert opus_fmtp(published).split(" ", 1)[1].split(";") == ["maxaveragebitrate=64000", "stereo=0"]
    assert "maxaveragebitrate" not in listened


async def test_without_a_configured_rate_the_browser_chooses(tmp_path: Path):
    engine = MediaEngine(EngineConfig(denoise_workers=1, broadcaster_opus_bitrate=None), RecordedEvents())
    try:
        published = await engine.publish("s1", offer("chromium-publisher"), denoise=False,
                                         recording_path=tmp_path / "s1.wav")
    finally:
        await engine.shutdown()
    assert "maxaveragebitrate" not in published


def test_an_opus_fmtp_already_in_the_answer_keeps_its_parameters():
    answer = "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n" \
             "a=fmtp:111 minptime=10;maxaveragebitrate=20000\r\n"
    shaped = answer_asking_for_opus_bitrate(answer, 96_000)
    assert opus_fmtp(shaped) == "a=fmtp:111 minptime=10;maxaveragebitrate=96000;stereo=0"
    assert shaped.count("a=fmtp:") == 1
