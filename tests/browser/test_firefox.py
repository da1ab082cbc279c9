"""Firefox on either end of a stream: broadcasting to Chromium and Firefox friends, listening to a Chromium
broadcast, the recording, closing the tab, and a console free of errors.

Firefox hides its addresses behind mDNS names and ends its candidate list, which the server must cope with
(audio_engine/sdp.py). Its fake microphone is a 1 kHz tone, which the denoiser rightly removes as noise: the
content checks broadcast with denoise off, and one test checks the denoised path carries packets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.audio_checks import (
    INBOUND_AUDIO,
    KEEP_PEER_CONNECTIONS,
    wait_until,
    wait_until_audio_arrives,
    wait_until_output_level,
)
from tests.browser.firefox import Firefox, FirefoxPage, firefox_executable, pulseaudio_null_sink
from tests.live_server import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.firefox]

LEAVE_GRACE_S = 3.0  # the server's STREAM_LEAVE_GRACE_SECONDS default
RECORDED_AT_LEAST_S = 4  # how long a friend hears the broadcast before it stops, so its recording holds as much
# A dropped connection gets far longer than its 8 s default here, so that a closed tab ending its stream, however
# slowly a busy machine lets Firefox close it, cannot be mistaken for one that merely lost its connection.
SERVER_SETTINGS = {"STREAM_RECONNECT_GRACE_SECONDS": "30"}
STREAM_STATUS = "async (username) => (await fetch(`/api/stream/status/${username}/`)).json()"
# RTP packets keep arriving (a second's worth after the first ones), whatever they decode to.
PACKETS_KEEP_ARRIVING = """async () => {
    let packets = 0;
    for (const peer of window.testPeerConnections) {
        for (const report of (await peer.getStats()).values()) {
            if (report.type === "inbound-rtp" && report.kind === "audio") packets += report.packetsReceived;
        }
    }
    if (!window.firstPackets) {
        window.firstPackets = packets;
        return false;
    }
    return packets > window.firstPackets + 50;
}"""

# The broadcaster's Opus rate: the encoder's target (Chromium reports it, Firefox does not) and the payload bit
# rate sent so far (20 ms packets).
OUTBOUND_OPUS_RATE = """async () => {
    for (const peer of window.testPeerConnections) {
        for (const report of (await peer.getStats()).values()) {
            if (report.type === "outbound-rtp" && report.kind === "audio" && report.packetsSent > 0) {
                const sent = report.bytesSent * 8 / (report.packetsSent * 0.02);
                return { target: report.targetBitrate ?? null, sent };
            }
        }
    }
    return null;
}"""
# What the server asks broadcasters for (OPUS_MAX_AVERAGE_BITRATE's default); browsers send voice at ~32 kbit/s.
ASKED_OPUS_BITRATE = 64_000


@pytest.fixture(scope="module")
def firefox(tmp_path_factory, quietcast_server) -> Iterator[Firefox]:
    """One Firefox for the module. Its own console output must show no script error from Quietcast's pages,
    including those raised while pages were closing (which the tests' pages no longer report)."""
    executable = firefox_executable()
    if executable is None:
        pytest.fail("Firefox is not installed (scripts/test.sh installs Debian's firefox-esr)")
    workdir = tmp_path_factory.mktemp("firefox")
    with pulseaudio_null_sink(workdir / "pulse") as sound_env:
        browser = Firefox(executable, workdir / "profile", sound_env)
        yield browser
        browser.close()
    errors = browser.script_errors_from(quietcast_server.url)
    assert not errors, "JavaScript errors in Firefox's console:\n" + "\n".join(errors)


@pytest.fixture
def firefox_log_in(firefox: Firefox, quietcast_server) -> Iterator[Callable[[str], FirefoxPage]]:
    """`firefox_log_in("alice")` → a Firefox tab of alice's own, logged in through the login form.

    Any uncaught JavaScript error or console error on these pages, until they close, fails the test."""
    pages: list[FirefoxPage] = []

    def open_page_as(username: str) -> FirefoxPage:
        page = firefox.new_page(quietcast_server.url)
        pages.append(page)
        page.goto("/login/")
        page.evaluate(
            """(username, password) => {
                document.querySelector("#id_username").value = username;
                document.querySelector("#id_password").value = password;
                document.querySelector("form[action='/login/']").requestSubmit();
            }""",
            username,
            PASSWORD,
        )
        page.wait_for_path("/")
        return page

    yield open_page_as
    for page in pages:
        if not page.closed:
            page.close()
    errors = [error for page in pages for error in page.errors]
    assert not errors, "JavaScript errors in Firefox:\n" + "\n".join(errors)


def firefox_goes_live(alice: FirefoxPage, *, denoise: bool) -> None:
    alice.add_init_script(KEEP_PEER_CONNECTIONS)
    alice.goto("/user/alice/")
    alice.evaluate("(denoise) => { document.querySelector('[data-denoise-toggle]').checked = denoise; }", denoise)
    alice.click("[data-broadcast-toggle]")
    alice.wait_for("() => document.querySelector('[data-broadcast-toggle]').textContent === 'Stop Streaming'")


def firefox_stops(alice: FirefoxPage) -> None:
    alice.click("[data-broadcast-toggle]")
    alice.wait_for("() => document.querySelector('[data-broadcast-toggle]').textContent === 'Start Streaming'")


def firefox_listens(bob: FirefoxPage) -> None:
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    bob.goto("/user/alice/")
    bob.wait_for("() => !document.querySelector('[data-listen-toggle]').disabled")
    bob.click("[data-listen-toggle]")
    bob.wait_for("() => document.querySelector('[data-listen-toggle]').textContent === 'Stop Listening'")


def chromium_listens(bob: Page) -> None:
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    bob.goto("/user/alice/")
    bob.get_by_role("button", name="Start Listening").click()
    expect(bob.get_by_role("button", name="Stop Listening")).to_be_visible()


# What the broadcaster's page says while a busy server sends friends the stream without noise removal.
DENOISE_PAUSED = "Denoising paused: the server is busy. Friends hear you without noise removal until it has room again."


def broadcast_error(alice: FirefoxPage) -> str:
    """The error the broadcaster's page shows; empty when it shows none."""
    return alice.evaluate(
        "() => { const error = document.querySelector('[data-stream-error]');"
        " return error.hidden ? '' : error.textContent; }"
    )


def test_a_firefox_broadcast_is_heard_by_a_chromium_and_a_firefox_friend_and_saved(firefox_log_in, log_in):
    alice = firefox_log_in("alice")
    firefox_goes_live(alice, denoise=False)
    bob_in_chromium = log_in("bob")
    chromium_listens(bob_in_chromium)
    bob_in_firefox = firefox_log_in("bob")
    firefox_listens(bob_in_firefox)
    alice.wait_for("() => document.querySelector('[data-listener-count]').textContent === '2 listeners'")

    wait_until_audio_arrives(bob_in_chromium.evaluate)
    wait_until_output_level(bob_in_chromium.evaluate)
    wait_until_audio_arrives(bob_in_firefox.evaluate)
    wait_until_output_level(bob_in_firefox.evaluate)
    assert broadcast_error(alice) == ""
    # Firefox was asked for more than its usual voice rate, and sends it.
    assert alice.evaluate(OUTBOUND_OPUS_RATE)["sent"] > 0.75 * ASKED_OPUS_BITRATE
    # Every packet a friend got went through the server after the recording began, so once bob has that much audio
    # the recording must hold at least that much, however fast the machine ran the steps above.
    packets_wanted = RECORDED_AT_LEAST_S * 50  # 20 ms each
    wait_until(bob_in_chromium.evaluate, f"async () => (await ({INBOUND_AUDIO})()).packets >= {packets_wanted}",
               what=f"{RECORDED_AT_LEAST_S} s of audio at bob")

    firefox_stops(alice)
    # The recording is saved, listed on alice's page, and plays in Firefox.
    alice.wait_for("() => document.querySelector('.recording [data-field=title]')?.textContent.endsWith(' live')")
    alice.evaluate("() => { const player = document.querySelector('.recording audio'); player.muted = true; "
                   "return player.play(); }")
    played = alice.wait_for(
        "() => { const player = document.querySelector('.recording audio');"
        " return player.currentTime > 0.5 && !player.error && {duration: player.duration}; }"
    )
    assert played["duration"] >= RECORDED_AT_LEAST_S - 0.1


def test_a_denoised_firefox_broadcast_reaches_its_friend(firefox_log_in, log_in):
    alice = firefox_log_in("alice")
    firefox_goes_live(alice, denoise=True)
    bob = log_in("bob")
    chromium_listens(bob)
    # The tone is (rightly) taken out as noise, so only the packets are checked here.
    wait_until(bob.evaluate, PACKETS_KEEP_ARRIVING, what="RTP packets of the denoised stream")
    # A machine this busy (two browsers beside the server) may rightly pause denoising for a while: the page says
    # so and friends go on hearing the stream. Any other error is a fault of the broadcast.
    assert broadcast_error(alice) in ("", DENOISE_PAUSED)
    recordings_before = alice.evaluate("() => document.querySelectorAll('.recording').length")
    firefox_stops(alice)
    alice.wait_for(
        "(before) => document.querySelectorAll('.recording').length === before + 1"
        " && !document.querySelector('.recording .badge.denoised').hidden",
        recordings_before,
    )


def test_a_chromium_broadcast_is_heard_by_a_firefox_friend(firefox_log_in, log_in):
    alice = log_in("alice")
    alice.add_init_script(KEEP_PEER_CONNECTIONS)
    alice.goto("/user/alice/")
    alice.get_by_role("button", name="Start Streaming").click()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    bob = firefox_log_in("bob")
    firefox_listens(bob)
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener", timeout=5000)

    wait_until_audio_arrives(bob.evaluate)
    wait_until_output_level(bob.evaluate)
    # The server asked the broadcaster's browser for more than its usual voice rate.
    assert alice.evaluate(OUTBOUND_OPUS_RATE)["target"] == ASKED_OPUS_BITRATE
    alice.get_by_role("button", name="Stop Streaming").click()
    bob.wait_for("() => document.querySelector('[data-stream-state]').textContent.includes('stream has ended')")


def test_closing_the_firefox_tab_while_live_ends_the_stream(firefox_log_in):
    bob = firefox_log_in("bob")
    # The page sends nothing as it goes (it cannot tell closing from reloading): its presence socket closes as
    # "going away" and the server ends the stream after the short leave grace, well before the 30 s a dropped
    # network gets here. Twice, as Firefox stops a closing tab's scripts at unpredictable points.
    for _ in range(2):
        alice = firefox_log_in("alice")
        firefox_goes_live(alice, denoise=False)
        assert bob.evaluate(STREAM_STATUS, "alice")["is_streaming"] is True
        alice.close()
        bob.wait_for(
            f"async () => !(await ({STREAM_STATUS})('alice')).is_streaming", timeout_s=LEAVE_GRACE_S + 10
        )
