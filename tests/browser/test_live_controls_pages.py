"""Going live with confidence, in real Chromium: "Connecting…" until the server hears the microphone, mute and
unmute (button and the M key) as friends see and hear it, and the broadcaster seeing who listens."""

import re

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.audio_checks import (
    AUDIBLE_ENERGY,
    KEEP_PEER_CONNECTIONS,
    inbound_audio,
    wait_until_audio_arrives,
)
from tests.browser.test_live_pages import go_live, stop_live, stream_status

pytestmark = pytest.mark.browser

# Lets a test see the microphone tracks the page opened.
KEEP_MICROPHONE_TRACKS = """
    window.testMicrophoneTracks = [];
    const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
        const stream = await open(constraints);
        window.testMicrophoneTracks.push(...stream.getAudioTracks());
        return stream;
    };
"""
# RTP packets the page's peer connections have sent (the broadcaster's microphone connection).
OUTBOUND_PACKETS = """async () => {
    let packets = 0;
    for (const peer of window.testPeerConnections) {
        if (peer.connectionState === "closed") continue;
        for (const report of (await peer.getStats()).values()) {
            if (report.type === "outbound-rtp" && report.kind === "audio") packets += report.packetsSent ?? 0;
        }
    }
    return packets;
}"""
MICROPHONE_ENABLED = "() => window.testMicrophoneTracks.filter((t) => t.readyState === 'live').map((t) => t.enabled)"


def state(page: Page):
    return page.locator("[data-stream-state]")


def test_the_page_says_connecting_until_the_server_receives_audio_then_live(log_in):
    alice = log_in("alice")
    held: list[Route] = []
    # The microphone's offer waits here, as it does behind a slow network: the stream is started, no audio yet.
    alice.route("**/api/stream/offer/", lambda route: held.append(route))
    alice.goto("/user/alice/")
    alice.get_by_role("button", name="Start Streaming").click()
    expect(state(alice)).to_contain_text("Connecting…")
    expect(alice.locator(".badge.connecting")).to_be_visible()
    expect(alice.locator(".badge.live")).to_be_hidden()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    status = stream_status(alice, "alice")
    assert status["is_streaming"] is True and status["audio_started"] is False

    alice.wait_for_timeout(500)
    expect(state(alice)).to_contain_text("Connecting…")  # still: nothing has reached the server
    assert len(held) == 1
    held[0].continue_()
    expect(state(alice)).to_contain_text("You are live with denoise on", timeout=10_000)
    expect(alice.locator(".badge.live")).to_be_visible()
    expect(alice.locator(".badge.connecting")).to_be_hidden()
    assert stream_status(alice, "alice")["audio_started"] is True
    stop_live(alice)


def test_a_stream_whose_audio_never_arrives_ends_and_the_page_says_why_plainly(log_in):
    alice = log_in("alice")
    # The microphone's offer never gets through, as behind a network that blocks it.
    alice.route("**/api/stream/offer/", lambda route: None)
    alice.goto("/user/alice/")
    alice.get_by_role("button", name="Start Streaming").click()
    expect(state(alice)).to_contain_text("Connecting…")
    expect(state(alice)).to_contain_text("Still connecting… no sound has reached Quietcast yet", timeout=8000)
    # The server ends it after STREAM_NO_AUDIO_SECONDS (20 by default).
    expect(state(alice)).to_contain_text(
        "no sound from your microphone ever reached Quietcast", timeout=30_000
    )
    expect(state(alice)).to_contain_text("try another network")
    expect(alice.get_by_role("button", name="Start Streaming")).to_be_enabled()
    assert stream_status(alice, "alice")["is_streaming"] is False


def energy_growth(page: Page, seconds: float) -> tuple[float, int]:
    """How much received audio energy and how many RTP packets arrive in `seconds`."""
    before = inbound_audio(page.evaluate)
    page.wait_for_timeout(seconds * 1000)
    after = inbound_audio(page.evaluate)
    return after["energy"] - before["energy"], after["packets"] - before["packets"]


def test_mute_friends_see_muted_and_hear_silence_then_unmute_and_the_broadcaster_sees_who_listens(
    log_in, screenshots_dir
):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    alice.add_init_script(KEEP_MICROPHONE_TRACKS)
    alice.add_init_script(KEEP_PEER_CONNECTIONS)
    go_live(alice)
    expect(state(alice)).to_contain_text("You are live", timeout=10_000)
    bob.goto("/user/alice/")
    bob.get_by_role("button", name="Start Listening").click()
    wait_until_audio_arrives(bob.evaluate)

    # The broadcaster sees the friend's name; the friend sees only how many listen.
    names = alice.locator("[data-listener-names] li")
    expect(names).to_have_text(["bob"], timeout=5000)
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener")
    expect(bob.locator("[data-listener-count]")).to_have_text("1 listener")
    expect(bob.locator("[data-listener-names]")).to_have_count(0)
    alice.screenshot(path=screenshots_dir / "listeners.png", full_page=True)

    # M mutes, from anywhere on the page but a text field.
    alice.locator("body").click(position={"x": 5, "y": 5})
    alice.keyboard.press("m")
    mute = alice.locator("[data-mute-toggle]")
    expect(mute).to_have_text("Unmute")
    expect(mute).to_have_attribute("aria-pressed", "true")
    expect(state(alice)).to_contain_text("You are muted")
    expect(bob.locator("[data-muted-badge]")).to_be_visible(timeout=2000)
    expect(bob.locator("[data-muted-badge]")).to_have_text(re.compile("muted", re.IGNORECASE))
    assert stream_status(alice, "alice")["muted"] is True and stream_status(bob, "alice")["muted"] is True
    # The microphone's track is off in the broadcaster's browser: nothing leaves the device.
    assert alice.evaluate(MICROPHONE_ENABLED) == [False]

    # The friend hears silence while the stream goes on: a packet every 20 ms, their sound without energy.
    bob.wait_for_timeout(2000)  # what was already on its way (the receiver buffers more on a busy machine)
    sent_before = alice.evaluate(OUTBOUND_PACKETS)
    energy, packets = energy_growth(bob, 2.0)
    assert packets >= 80 and energy < AUDIBLE_ENERGY, (energy, packets)
    # The muted microphone's connection keeps sending (silence), so the server never takes it for lost.
    assert alice.evaluate(OUTBOUND_PACKETS) - sent_before >= 80
    expect(bob.get_by_role("button", name="Stop Listening")).to_be_visible()

    # Typing an M in a field is typing, not unmuting.
    item = alice.locator(".recording").first
    item.get_by_role("button", name="Rename").click()
    title = item.get_by_label("Title")
    typed = title.input_value() + "m"
    title.press("End")
    title.press("m")
    expect(title).to_have_value(typed)
    expect(mute).to_have_text("Unmute")
    item.get_by_role("button", name="Cancel").click()

    mute.click()
    expect(mute).to_have_text("Mute")
    expect(state(alice)).to_contain_text("You are unmuted")
    expect(bob.locator("[data-muted-badge]")).to_be_hidden(timeout=2000)
    assert alice.evaluate(MICROPHONE_ENABLED) == [True]
    wait_until_audio_arrives(bob.evaluate)  # sound again

    # The friend leaves: their name goes from the broadcaster's list.
    bob.get_by_role("button", name="Stop Listening").click()
    expect(names).to_have_count(0, timeout=5000)
    expect(alice.locator("[data-listener-count]")).to_have_text("0 listeners")
    stop_live(alice)
