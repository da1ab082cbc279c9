"""HTTPS on a LAN in one setting: `HTTPS=true make run`, in real Chromium, on a name that is not localhost.

Chromium maps quietcast.test to the loopback address (as a LAN device resolves the server's name) and accepts
the self-signed certificate the server made for itself, as a person does once on each device.
"""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from quietcast import tls
from tests.browser.audio_checks import KEEP_PEER_CONNECTIONS, wait_until_audio_arrives
from tests.browser.conftest import CAST, QuietcastServer, launch_chromium
from tests.browser.test_live_pages import go_live, stop_live
from tests.live_server import prepare_database, running_like_make_run, server_environment

pytestmark = pytest.mark.browser

LAN_NAME = "quietcast.test"

# Opens the page's own kind of WebSocket to its server and says how that went.
OPEN_PRESENCE_SOCKET = """() => new Promise((resolve) => {
    const socket = new WebSocket(`wss://${location.host}/ws/presence/`);
    socket.onopen = () => { socket.close(); resolve("open"); };
    socket.onclose = (event) => resolve(`closed with ${event.code}`);
})"""


@pytest.fixture(scope="module")
def quietcast_server(tmp_path_factory) -> Iterator[QuietcastServer]:
    """The server as `HTTPS=true make run` starts it, with nothing else set: no CSRF_TRUSTED_ORIGINS, no
    certificate given."""
    workdir = tmp_path_factory.mktemp("https-server")
    env = server_environment(workdir, HTTPS="true", CSRF_TRUSTED_ORIGINS="", TLS_CERT="", TLS_KEY="")
    prepare_database(env, CAST)
    with running_like_make_run(env, workdir / "serve.log", url_host=LAN_NAME) as server:
        certificate = workdir / "var" / "tls" / tls.CERTIFICATE_FILE
        assert certificate.exists(), "the server made no certificate of its own"
        yield QuietcastServer(url=server.url, recordings_dir=workdir / "recordings")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, f"--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1")
        yield chromium
        chromium.close()


def test_over_https_on_a_lan_name_people_log_in_open_sockets_go_live_and_listen(log_in, quietcast_server):
    assert quietcast_server.url.startswith(f"https://{LAN_NAME}:")
    # Logging in is a form POST with its CSRF token: it passes Django's check over https with no setting for it.
    alice = log_in("alice", ignore_https_errors=True)
    bob = log_in("bob", ignore_https_errors=True)
    bob.add_init_script(KEEP_PEER_CONNECTIONS)
    assert alice.evaluate("window.isSecureContext") is True  # what the microphone needs
    cookies = {cookie["name"]: cookie for cookie in alice.context.cookies()}
    assert cookies["sessionid"]["secure"] and cookies["csrftoken"]["secure"]

    # The pages' WebSockets pass the Origin check: https://quietcast.test:<port> is the site's own origin.
    assert bob.evaluate(OPEN_PRESENCE_SOCKET) == "open"
    bob.goto("/search/")

    go_live(alice)  # the fake microphone through getUserMedia, WebRTC to the server
    # Asked from the page: Playwright's own requests do not go through Chromium's name mapping.
    status = alice.evaluate("async () => (await fetch('/api/stream/status/alice/')).json()")
    assert status["is_streaming"] is True
    toast = bob.locator(".toast", has_text="alice is live now.")
    expect(toast).to_be_visible(timeout=1000)  # the live notification came over the presence socket (wss)
    toast.get_by_role("link", name="Listen").click()
    expect(bob.locator("[data-stream-state]")).to_have_text("Listening to alice.", timeout=5000)
    wait_until_audio_arrives(bob.evaluate)
    stop_live(alice)
    expect(bob.locator("[data-stream-state]")).to_contain_text("alice's stream has ended", timeout=2000)
