"""A stream's life as the pages show it, in real Chromium: reloading, leaving, closing, a second tab, logging
out, being unfriended and the server going away; every page says what the server knows."""

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from tests.live_server import DaphneServer, free_port, prepare_database, running_daphne, seed_code, server_environment

pytestmark = pytest.mark.browser

# alice streams; bob and erin are her friends (erin is unfriended by one test).
CAST = seed_code(("alice", "bob", "erin"), friends=(("alice", "bob"), ("alice", "erin")))
LEAVE_GRACE_S = 3.0  # the server's STREAM_LEAVE_GRACE_SECONDS default
RECONNECTING = re.compile("Reconnecting…")
STOP_LIMIT_S = 60  # a SIGTERM'd server ends its streams and saves their recordings first


@dataclass
class RestartableServer:
    """One Daphne on a fixed port that a test may stop and start again; pages reconnect to the same address."""

    url: str
    port: int
    env: dict[str, str]
    log: Path
    recordings_dir: Path
    running: DaphneServer | None = None

    def stop(self, how: signal.Signals) -> None:
        process = self.running.process
        process.send_signal(how)
        process.wait(timeout=STOP_LIMIT_S)

    def start(self) -> None:
        self._context = running_daphne(self.env, self.log, port=self.port)
        self.running = self._context.__enter__()

    def close(self) -> None:
        self._context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def quietcast_server(tmp_path_factory) -> Iterator[RestartableServer]:
    """Replaces the package's server for this module: the restart tests need to stop and start it."""
    workdir = tmp_path_factory.mktemp("lifecycle-server")
    env = server_environment(workdir, DENOISE_WORKERS="1")
    prepare_database(env, CAST)
    port = free_port()
    server = RestartableServer(
        url=f"http://127.0.0.1:{port}",
        port=port,
        env=env,
        log=workdir / "daphne.log",
        recordings_dir=workdir / "recordings",
    )
    server.start()
    yield server
    server.close()


def stream_status(page: Page, username: str = "alice") -> dict:
    return page.request.get(f"/api/stream/status/{username}/").json()


def recording_ids(page: Page, username: str = "alice") -> set[int]:
    recordings = page.request.get(f"/api/users/{username}/recordings/").json()["recordings"]
    return {recording["id"] for recording in recordings}


def api_post(page: Page, path: str, body: dict) -> int:
    token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    return page.request.post(path, data=body, headers={"X-CSRFToken": token}).status


def go_live(alice: Page, *, denoise: bool = True) -> None:
    alice.goto("/user/alice/")
    alice.get_by_label("Enable Denoise").set_checked(denoise)
    alice.get_by_role("button", name="Start Streaming").click()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    # Once the server hears the microphone: the denoise workers may still be starting on a busy machine.
    expect(alice.locator("[data-stream-state]")).to_contain_text("Your friends can listen now", timeout=15_000)


def stop_live(alice: Page) -> None:
    alice.get_by_role("button", name="Stop Streaming").click()
    expect(alice.get_by_role("button", name="Start Streaming")).to_be_visible()


def expect_not_live_page(page: Page) -> None:
    """The broadcaster's page back at rest: Start Streaming, no timer, no audience, a silent meter."""
    expect(page.get_by_role("button", name="Start Streaming")).to_be_enabled()
    expect(page.get_by_label("Enable Denoise")).to_be_enabled()
    expect(page.locator("[data-stream-panel]")).not_to_have_class(re.compile(r"\bis-live\b"))
    expect(page.locator("[data-stream-timer]")).to_have_text("00:00")
    expect(page.locator("[data-listener-count]")).to_have_text("0 listeners")
    expect(page.locator("[data-input-level]")).to_have_js_property("value", 0)


def listen_to_alice(friend: Page) -> None:
    friend.goto("/user/alice/")
    friend.get_by_role("button", name="Start Listening").click()
    expect(friend.locator("[data-stream-state]")).to_have_text("Listening to alice.")
    expect_sound(friend)


def expect_sound(friend: Page) -> None:
    friend.wait_for_function(
        """() => {
            const audio = document.querySelector("[data-live-audio]");
            return audio.srcObject && !audio.paused && document.querySelector("[data-output-level]").value > 0.1;
        }""",
        timeout=15_000,
    )


def test_reloading_in_any_way_keeps_the_stream_and_leaves_no_fragment_recording(log_in):
    alice = log_in("alice")
    before = recording_ids(alice)
    go_live(alice)
    session = stream_status(alice)["session_id"]
    # The reload button, F5 and Ctrl+R are the browser's own reload (headless Chromium takes no keyboard
    # shortcuts, page.reload() is that reload); location.reload() is the page's.
    reloads = {
        "the browser's reload": lambda: alice.reload(),
        "location.reload()": lambda: alice.evaluate("location.reload()"),
    }
    for how, reload in reloads.items():
        with alice.expect_event("load"):
            reload()
        expect(alice.locator("[data-stream-state]")).to_have_text(
            "You are live. Your microphone is connected again.", timeout=15_000
        )
        alice.wait_for_timeout(LEAVE_GRACE_S * 1000 + 1500)
        status = stream_status(alice)
        assert (status["is_streaming"], status["session_id"]) == (True, session), f"after {how}"
        expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
        expect(alice.locator("[data-stream-error]")).to_be_hidden()
    assert recording_ids(alice) == before, "a reload left a fragment recording"

    stop_live(alice)
    assert len(recording_ids(alice) - before) == 1


def test_closing_the_tab_ends_the_stream_promptly(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    before = recording_ids(bob)
    go_live(alice, denoise=False)
    alice.wait_for_timeout(2000)  # some audio reaches the recording
    bob.goto("/")
    badge = bob.locator('[data-status-for="alice"] .badge.live')
    expect(badge).to_be_visible()
    alice.close(run_before_unload=True)
    expect(badge).to_have_count(0, timeout=(LEAVE_GRACE_S + 2) * 1000)
    assert stream_status(bob)["is_streaming"] is False
    assert len(recording_ids(bob) - before) == 1


def test_leaving_for_another_page_while_live_asks_first(log_in):
    alice = log_in("alice")
    go_live(alice)
    questions = []

    def answer(accept: bool):
        def handle(dialog):
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    alice.once("dialog", answer(False))
    alice.get_by_role("navigation").get_by_role("link", name="Find friends").click()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    assert questions == ["You are live — leaving this page ends your stream. Leave anyway?"]
    assert alice.url.endswith("/user/alice/")
    assert stream_status(alice)["is_streaming"] is True

    alice.once("dialog", answer(True))
    alice.get_by_role("navigation").get_by_role("link", name="Home").click()
    # Only the home page itself: "/user/alice/" also ends in a slash, and the page navigates only once its stop
    # request has been answered.
    alice.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    assert len(questions) == 2
    assert stream_status(alice)["is_streaming"] is False


def test_logging_out_while_live_asks_first_then_friends_see_the_stream_end_at_once(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    go_live(alice)
    bob.goto("/")
    badge = bob.locator('[data-status-for="alice"] .badge.live')
    expect(badge).to_be_visible()
    questions = []
    alice.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    alice.get_by_role("button", name="Log out").click()
    expect(badge).to_have_count(0, timeout=1000)
    assert questions == ["You are live — leaving this page ends your stream. Leave anyway?"]
    assert stream_status(bob)["is_streaming"] is False


def test_the_broadcasters_page_says_why_the_stream_ended_and_resets(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    before = recording_ids(alice)
    go_live(alice)
    listen_to_alice(bob)
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener")
    expect(alice.locator("[data-input-level]")).not_to_have_js_property("value", 0)

    # Logging out in another tab ends the stream on the server; the live page hears why.
    other_tab = alice.context.new_page()
    other_tab.goto("/")
    other_tab.get_by_role("button", name="Log out").click()
    expect(alice.locator("[data-stream-state]")).to_have_text(
        "Your stream ended because you logged out. The recording is saved below.", timeout=3000
    )
    expect_not_live_page(alice)
    alice.wait_for_timeout(1500)  # the timer stays stopped
    expect(alice.locator("[data-stream-timer]")).to_have_text("00:00")
    (new_recording,) = recording_ids(bob) - before
    expect(alice.locator(f'[data-recording-id="{new_recording}"]')).to_be_visible()
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended")


COUNT_MICROPHONE_REQUESTS = """
    window.microphoneRequests = 0;
    const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (...args) => {
        window.microphoneRequests += 1;
        return getUserMedia(...args);
    };
"""


def test_a_second_tab_shows_the_stream_without_touching_the_microphone(log_in):
    alice = log_in("alice")
    alice.goto("/user/alice/")
    second = alice.context.new_page()
    second.add_init_script(COUNT_MICROPHONE_REQUESTS)
    second.goto("/user/alice/")  # open before going live: it hears of the start on its socket
    # Four pages and the server share the machine: without denoising, a busy machine cannot show its own notice
    # ("Denoising paused") where this test looks for the absence of errors.
    alice.get_by_label("Enable Denoise").set_checked(False)
    alice.get_by_role("button", name="Start Streaming").click()
    expect(second.locator("[data-stream-state]")).to_contain_text("You are live in another tab")
    expect(second.get_by_role("button", name="Stop Streaming")).to_be_visible()
    expect(second.locator("[data-stream-timer]")).not_to_have_text("00:00", timeout=3000)

    third = alice.context.new_page()
    third.add_init_script(COUNT_MICROPHONE_REQUESTS)
    third.goto("/user/alice/")  # opened while live
    expect(third.locator("[data-stream-state]")).to_contain_text("You are live in another tab")
    third.wait_for_timeout(1000)
    assert (second.evaluate("window.microphoneRequests"), third.evaluate("window.microphoneRequests")) == (0, 0)
    expect(second.locator("[data-input-level]")).to_have_js_property("value", 0)

    # A duplicated tab inherits the sending tab's session storage, yet must not take the stream over.
    duplicate = alice.context.new_page()
    duplicate.add_init_script(COUNT_MICROPHONE_REQUESTS)
    session = stream_status(alice)["session_id"]
    duplicate.add_init_script(f"sessionStorage.setItem('quietcast.sending-session', '{session}');")
    duplicate.goto("/user/alice/")
    expect(duplicate.locator("[data-stream-state]")).to_contain_text("You are live in another tab", timeout=5000)
    assert duplicate.evaluate("window.microphoneRequests") == 0

    # Closing the other tabs leaves the stream to the tab that sends it.
    for other in (third, duplicate, second):
        other.close(run_before_unload=True)
    alice.wait_for_timeout(LEAVE_GRACE_S * 1000 + 1500)
    assert stream_status(alice)["is_streaming"] is True
    expect(alice.locator("[data-stream-state]")).to_contain_text("Your friends can listen now")
    expect(alice.locator("[data-stream-error]")).to_be_hidden()
    stop_live(alice)


def test_an_unfriended_listener_is_told_so(log_in):
    alice, erin = log_in("alice"), log_in("erin")
    go_live(alice)
    listen_to_alice(erin)
    assert api_post(alice, "/api/friends/remove/", {"username": "erin"}) == 200
    state = erin.locator("[data-stream-state]")
    expect(state).to_contain_text("You are no longer friends with alice", timeout=3000)
    expect(erin.get_by_role("button", name="Start Listening")).to_be_disabled()
    erin.wait_for_timeout(1000)
    expect(state).not_to_contain_text("stream has ended")
    stop_live(alice)


def test_a_stream_that_ends_while_the_page_looks_up_its_start_is_shown_as_ended(log_in):
    alice, bob = log_in("alice"), log_in("bob")
    bob.goto("/user/alice/")
    held: list[Route] = []
    bob.route("**/api/stream/status/alice/", lambda route: held.append(route))
    assert api_post(alice, "/api/stream/start/", {"denoise": False}) == 201
    expect(bob.get_by_role("button", name="Start Listening")).to_be_enabled()
    assert api_post(alice, "/api/stream/stop/", {}) == 200
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended")
    # Any status lookup the page made meanwhile answers late, and must not bring the stream back.
    for route in held:
        with bob.expect_response("**/api/stream/status/alice/"):
            route.continue_()
    bob.evaluate("() => new Promise((handled) => setTimeout(handled))")
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended")
    expect(bob.get_by_role("button", name="Start Listening")).to_be_disabled()
    expect(bob.locator("[data-stream-timer]")).to_have_text("00:00")


def test_a_server_restart_that_ends_the_stream_is_reported_on_both_pages(log_in, quietcast_server):
    alice, bob = log_in("alice"), log_in("bob")
    before = recording_ids(alice)
    go_live(alice, denoise=False)
    listen_to_alice(bob)
    quietcast_server.stop(signal.SIGTERM)
    quietcast_server.start()
    expect(alice.locator("[data-stream-state]")).to_have_text(
        re.compile("^Your stream ended (because the Quietcast server restarted|while Quietcast could not be reached)"),
        timeout=20_000,
    )
    expect_not_live_page(alice)
    (new_recording,) = recording_ids(alice) - before
    expect(alice.locator(f'[data-recording-id="{new_recording}"]')).to_be_visible()
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended", timeout=20_000)
    expect(bob.get_by_role("button", name="Start Listening")).to_be_disabled()


def test_when_the_server_comes_back_and_the_stream_is_still_live_both_pages_carry_on(log_in, quietcast_server):
    alice, bob = log_in("alice"), log_in("bob")
    go_live(alice, denoise=False)
    listen_to_alice(bob)
    # Killed, and started again without `manage.py recover_streams`: as after an outage that ended nothing, the
    # stream is still live when the server is back, waiting for its audio.
    quietcast_server.stop(signal.SIGKILL)
    expect(alice.locator("[data-stream-state]")).to_have_text(RECONNECTING)
    expect(bob.locator("[data-stream-state]")).to_have_text(RECONNECTING)
    quietcast_server.start()
    expect(alice.locator("[data-stream-state]")).to_have_text(
        "You are live. Your microphone is connected again.", timeout=30_000
    )
    expect(bob.locator("[data-stream-state]")).to_have_text("Listening to alice.", timeout=30_000)
    expect_sound(bob)
    expect(alice.locator("[data-listener-count]")).to_have_text("1 listener")
    stop_live(alice)
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended")
