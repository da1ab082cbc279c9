"""Real Chromium against the real ASGI app.

Daphne runs in a subprocess on a free localhost port, with its own SQLite database, recordings directory and
in-memory channel layer (one process hosts HTTP, WebSockets and media, as `make run` does). The cast is the same
as everywhere else: alice, her friend bob, carol a stranger, dave a pending request. Chromium's fake microphone
plays tests/fixtures/speech_noisy.wav.
"""

import os
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.live_server import PASSWORD, prepare_database, running_daphne, seed_code, server_environment

REPO = Path(__file__).resolve().parents[2]
FAKE_MICROPHONE = REPO / "tests" / "fixtures" / "speech_noisy.wav"
CAST = seed_code(("alice", "bob", "carol", "dave"), friends=(("alice", "bob"),), pending=(("dave", "alice"),))
# Two finished recordings of alice's, inside the server's database.
SEED_RECORDINGS = """
from streams.models import StreamRecording
for title, audio_path in (("Morning walk", "seed/morning.wav"), ("Short note", "seed/note.wav")):
    StreamRecording.objects.create(owner=User.objects.get(username="alice"), title=title,
        audio_path=audio_path, duration={duration!r}, denoise_enabled=True)
"""


@dataclass(frozen=True)
class QuietcastServer:
    url: str
    recordings_dir: Path
    played_recording_title: str = "Morning walk"  # the playback tests use this one
    edited_recording_title: str = "Short note"  # the rename and delete test uses this one


def _seconds_of_audio(path: Path) -> float:
    with wave.open(str(path)) as audio:
        return audio.getnframes() / audio.getframerate()


@pytest.fixture(scope="module")
def quietcast_server(request, tmp_path_factory) -> Iterator[QuietcastServer]:
    """The server a module's pages talk to, on its defaults except the module's SERVER_SETTINGS (names → values)."""
    workdir = tmp_path_factory.mktemp("live-server")
    recordings_dir = workdir / "recordings"  # where server_environment() points RECORDINGS_DIR
    (recordings_dir / "seed").mkdir(parents=True)
    for name in ("morning.wav", "note.wav"):
        (recordings_dir / "seed" / name).write_bytes(FAKE_MICROPHONE.read_bytes())
    env = server_environment(workdir, **getattr(request.module, "SERVER_SETTINGS", {}))
    prepare_database(env, CAST + SEED_RECORDINGS.format(duration=_seconds_of_audio(FAKE_MICROPHONE)))
    with running_daphne(env, workdir / "daphne.log") as server:
        yield QuietcastServer(url=server.url, recordings_dir=recordings_dir)


# Module scope, not session: Playwright's sync API keeps an event loop running while it is open, which would
# break every asyncio test collected after this package.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def launch_chromium(playwright: Playwright, *extra_args: str) -> Browser:
    """Debian's Chromium, headless, with the fake microphone; `extra_args` for a test that needs more."""
    return playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        headless=True,
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={FAKE_MICROPHONE}",
            *extra_args,
        ],
    )


@pytest.fixture
def log_in(browser: Browser, quietcast_server: QuietcastServer) -> Iterator[Callable[..., Page]]:
    """`log_in("bob")` → a page in bob's own browser context, logged in through the login form.

    Any uncaught JavaScript error on these pages fails the test.
    """
    contexts: list[BrowserContext] = []
    script_errors: list[str] = []

    def open_page_as(username: str, **context_options) -> Page:
        context = browser.new_context(base_url=quietcast_server.url, **context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: script_errors.append(f"{username}: {error}"))
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{quietcast_server.url}/")
        return page

    yield open_page_as
    for context in contexts:
        context.close()
    assert not script_errors, "JavaScript errors on the page:\n" + "\n".join(script_errors)


@pytest.fixture(scope="module")
def screenshots_dir(tmp_path_factory) -> Path:
    """Where the tests save their screenshots: a temporary folder, or SCREENSHOTS_DIR (`SCREENSHOTS_DIR=docs
    make test` refreshes the README's pictures)."""
    if os.environ.get("SCREENSHOTS_DIR"):
        directory = Path(os.environ["SCREENSHOTS_DIR"]).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    return tmp_path_factory.mktemp("screenshots")
