"""The whole product in a real browser: going live, a friend's LIVE badge, listening, recordings, access."""

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.audio_checks import KEEP_PEER_CONNECTIONS, wait_until_audio_arrives, wait_until_output_level

pytestmark = pytest.mark.browser

TIMER = re.compile(r"^(\d\d):(\d\d)$")


def timer_seconds(page: Page) -> int:
    minutes, seconds = TIMER.match(page.locator("[data-stream-timer]").inner_text()).groups()
    return int(minutes) * 60 + int(seconds)


def stream_status(page: Page, username: str) -> dict:
    return page.request.get(f"/api/stream/status/{username}/").json()


def go_live(alice: Page) -> None:
    alice.goto("/user/alice/")
    expect(alice.get_by_label("Enable Denoise")).to_be_checked()
    alice.get_by_role("button", name="Start Streaming").click()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    expect(alice.get_by_label("Enable Denoise")).to_be_enabled()  # it switches the live stream


def stop_live(alice: Page) -> None:
    alice.get_by_role("button", name="Stop Streaming").click()
    expect(alice.get_by_role("button", name="Start Streaming")).to_be_visible()
    expect(alice.get_by_label("Enable Denoise")).to_be_enabled()


def test_denoise_is_switched_while_live_and_a_refusal_is_said_plainly(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    go_live(alice)
    bob.goto("/user/alice/")
    bob.get_by_role("button", name="Start Listening").click()
    wait_until_audio_arrives(bob.evaluate)
    denoise = alice.get_by_label("Enable Denoise")

    denoise.uncheck()
    expect(alice.locator("[data-stream-state]")).to_contain_text("Denoise is off")
    assert stream_status(alice, "alice")["denoise"] is False
    denoise.check()
    expect(alice.locator("[data-stream-state]")).to_contain_text("Denoise is on")
    assert stream_status(alice, "alice")["denoise"] is True
    wait_until_audio_arrives(bob.evaluate)  # the friend's audio went on through both switches

    # The server refusing (at capacity): the box goes back, and the page says why.
    refusal = "Noise removal is at capacity on this server; your stream goes on without it. Try again later."
    denoise.uncheck()
    expect(alice.locator("[data-stream-state]")).to_contain_text("Denoise is off")
    alice.route("**/api/stream/denoise/", lambda route: route.fulfill(status=503, json={"error": refusal}))
    denoise.click()  # not check(): the page may put the box back before Playwright looks at it
    expect(alice.locator("[data-stream-error]")).to_have_text(f"Denoise was not switched on: {refusal}")
    expect(denoise).not_to_be_checked()
    expect(denoise).to_be_enabled()
    stop_live(alice)


def test_friends_see_the_live_badge_within_a_second_and_strangers_see_nothing(log_in, screenshots_dir):
    alice, bob, carol = log_in("alice"), log_in("bob"), log_in("carol")
    badge = bob.locator('[data-status-for="alice"] .badge.live')
    expect(badge).to_have_count(0)
    carol.goto("/user/alice/")

    go_live(alice)
    expect(badge).to_be_visible(timeout=1000)
    assert stream_status(alice, "alice")["denoise"] is True
    expect(alice.locator("[data-stream-timer]")).not_to_have_text("00:00", timeout=2500)
    expect(alice.get_by_text("Microphone level")).to_be_visible()
    bob.screenshot(path=screenshots_dir / "home.png", full_page=True)

    expect(carol.get_by_text("You and alice are not friends")).to_be_visible()
    expect(carol.get_by_role("button", name="Add friend")).to_be_visible()
    expect(carol.locator("[data-stream-panel], [data-recordings], audio")).to_have_count(0)
    assert carol.request.get("/api/stream/status/alice/").status == 403

    stop_live(alice)
    expect(badge).to_have_count(0, timeout=1000)
    assert stream_status(alice, "alice")["is_streaming"] is False


def test_badges_still_update_by_polling_while_the_presence_socket_is_down(log_in):
    alice = log_in("alice")
    bob = log_in("bob")
    bob.route_web_socket(re.compile(r".*/ws/presence/$"), lambda socket: socket.close())
    bob.goto("/")
    badge = bob.locator('[data-status-for="alice"] .badge.live')
    expect(badge).to_have_count(0)
    go_live(alice)
    expect(badge).to_be_visible(timeout=7000)  # the next poll of /api/friends/ (every 5 s)
    stop_live(alice)
    expect(badge).to_have_count(0, timeout=7000)


def test_reloading_while_live_keeps_the_stream_and_the_timer(log_in):
    alice = log_in("alice")
    before_start = time.monotonic()
    go_live(alice)
    live_by = time.monotonic()
    alice.wait_for_timeout(3000)
    alice.reload()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    # The timer counts from the stream's start (somewhere between the click and the page showing it live), not
    # from the reload; the page shows it as soon as it arrives. One second of slack for the whole seconds shown.
    read_from = time.monotonic()
    shown = timer_seconds(alice)
    assert read_from - live_by - 1 <= shown <= time.monotonic() - before_start
    alice.wait_for_timeout(1100)
    assert timer_seconds(alice) > shown
    assert stream_status(alice, "alice")["is_streaming"] is True
    # The reloaded page sends its microphone again, into the same stream.
    alice.wait_for_timeout(2000)
    expect(alice.locator("[data-stream-error]")).to_be_hidden()
    assert stream_status(alice, "alice")["is_streaming"] is True
    stop_live(alice)


def test_a_denied_microphone_is_explained_and_nothing_goes_live(log_in):
    alice = log_in("alice")
    # What a browser does once the person has said no: getUserMedia rejects with NotAllowedError.
    alice.add_init_script(
        "navigator.mediaDevices.getUserMedia = () => "
        "Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));"
    )
    alice.goto("/user/alice/")
    alice.get_by_role("button", name="Start Streaming").click()
    alert = alice.get_by_role("alert").filter(has_text="not allowed to use your microphone")
    expect(alert).to_be_visible()
    expect(alice.get_by_role("button", name="Start Streaming")).to_be_enabled()
    assert stream_status(alice, "alice")["is_streaming"] is False


def test_a_friend_plays_and_seeks_a_recording_and_a_stranger_cannot(log_in, quietcast_server):
    bob, carol = log_in("bob"), log_in("carol")
    audio_responses = []
    bob.on("response", lambda response: audio_responses.append(response) if "/audio/" in response.url else None)
    bob.goto("/user/alice/")
    item = bob.locator(".recording", has_text=quietcast_server.played_recording_title)
    expect(item.locator(".badge.denoised")).to_be_visible()
    expect(item.locator("[data-field=duration]")).to_have_text(TIMER)
    expect(item.get_by_role("button", name=re.compile("Rename|Delete"))).to_have_count(0)
    expect(item.get_by_role("link", name="Download WAV")).to_have_attribute("href", re.compile(r"/audio/\?download=1$"))

    player = item.locator("audio")
    player.evaluate("audio => { audio.muted = true; return audio.play(); }")
    player.evaluate("audio => { audio.currentTime = audio.duration - 2; }")
    bob.wait_for_function(
        "audio => audio.currentTime > audio.duration - 2 && !audio.seeking", arg=player.element_handle()
    )
    # Chromium's player asks for byte ranges and the server answers them.
    assert any(response.status == 206 for response in audio_responses)
    audio_url = player.get_attribute("src")
    part = bob.request.get(audio_url, headers={"Range": "bytes=1000-1999"})
    size = (quietcast_server.recordings_dir / "seed" / "morning.wav").stat().st_size
    assert (part.status, part.headers["content-range"], len(part.body())) == (206, f"bytes 1000-1999/{size}", 1000)

    assert carol.request.get(audio_url).status == 404
    assert carol.request.get("/api/users/alice/recordings/").status == 403
    carol.goto("/user/alice/")
    expect(carol.locator(".recording")).to_have_count(0)


def test_the_owner_renames_and_deletes_a_recording(log_in, quietcast_server):
    alice = log_in("alice")
    alice.goto("/user/alice/")
    item = alice.locator(".recording", has_text=quietcast_server.edited_recording_title)
    item.get_by_role("button", name="Rename").click()
    expect(item.get_by_label("Title")).to_be_focused()
    item.get_by_label("Title").fill("")
    item.get_by_label("Title").fill("   ")
    item.get_by_role("button", name="Save").click()
    expect(item.get_by_role("alert")).to_have_text("A recording needs a title.")
    item.get_by_label("Title").fill("Evening walk")
    item.get_by_label("Description").fill("By the river.")
    item.get_by_role("button", name="Save").click()
    renamed = alice.locator(".recording", has_text="Evening walk")
    expect(renamed.locator("[data-field=description]")).to_have_text("By the river.")
    alice.reload()
    expect(renamed).to_be_visible()

    alice.once("dialog", lambda dialog: dialog.accept())
    renamed.get_by_role("button", name="Delete").click()
    expect(renamed).to_have_count(0)
    assert not (quietcast_server.recordings_dir / "seed" / "note.wav").exists()


def test_a_friend_hears_the_stream_and_gets_the_recording(log_in, screenshots_dir):
    alice, bob = log_in("alice"), log_in("bob")
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    bob.goto("/user/alice/")
    listen = bob.get_by_role("button", name="Start Listening")
    expect(listen).to_be_disabled()

    go_live(alice)
    expect(listen).to_be_enabled(timeout=1000)
    listen.click()
    expect(bob.get_by_role("button", name="Stop Listening")).to_be_visible()
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener", timeout=5000)
    expect(alice.locator("[data-stream-error]")).to_be_hidden()

    # Real audio arrives: inbound RTP bytes and the received audio's energy grow, and the player's level moves.
    wait_until_audio_arrives(bob.evaluate)
    wait_until_output_level(bob.evaluate)
    # The live level strip follows the received stream.
    bob.wait_for_function("() => Number(document.querySelector('[data-level-strip]').dataset.level) > 0.2")
    bob.screenshot(path=screenshots_dir / "friend-listening.png", full_page=True)
    alice.screenshot(path=screenshots_dir / "my-page-live.png", full_page=True)

    stop_live(alice)
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended", timeout=2000)
    expect(bob.get_by_role("button", name="Start Listening")).to_be_disabled()
    new_recording = bob.locator(".recording").first
    # Titled by the broadcaster's own clock, in words ("Tuesday evening live"), timed in the viewer's format.
    expect(new_recording.locator("[data-field=title]")).to_have_text(
        re.compile(r"^(Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day (morning|afternoon|evening|night) live$"), timeout=5000
    )
    expect(new_recording.locator("time")).to_have_text(re.compile(r"^[A-Z][a-z]{2}, [A-Z][a-z]{2} \d{1,2}, \d{4}, "))
    expect(new_recording.locator("canvas.waveform")).to_be_visible()
    expect(new_recording.locator(".badge.denoised")).to_be_visible()
