"""Stock Firefox (Debian's firefox-esr) driven over WebDriver BiDi, the W3C protocol Firefox speaks itself.

Playwright drives only its own patched Firefox builds, Selenium needs geckodriver (not packaged by Debian) and
Puppeteer a newer Node.js than Debian's; BiDi needs none of them: Firefox started with `--remote-debugging-port`
serves it on a WebSocket. This module
is the small part of it the tests use: one browser per module, a user context (own cookies) per person, tabs,
navigation, running a function in the page, and the page's uncaught errors.

Headless Firefox plays audio only through a sound server: `pulseaudio_null_sink()` starts a private PulseAudio
with a null sink, without which its AudioContexts never run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

START_LIMIT_S = 30
COMMAND_LIMIT_S = 30

# What the tests need of the profile: the fake microphone (a 1 kHz tone) without a permission prompt, media
# that may play without a click, and none of the first-run and background traffic of a new profile.
TEST_PREFERENCES = {
    "remote.active-protocols": 1,  # WebDriver BiDi only
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.autoplay.default": 0,
    "media.autoplay.block-webaudio": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.tabs.warnOnClose": False,
    "dom.disable_beforeunload": True,
}


class BidiError(RuntimeError):
    """Firefox answered a command with an error, or a page function threw."""


@contextmanager
def pulseaudio_null_sink(runtime_dir: Path) -> Iterator[dict[str, str]]:
    """A private PulseAudio server whose only output is a null sink; yields the environment that points to it."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    socket_path = runtime_dir / "native"
    env = {**os.environ, "HOME": str(runtime_dir), "XDG_RUNTIME_DIR": str(runtime_dir)}
    if shutil.which("pulseaudio") is None:
        raise RuntimeError("pulseaudio is not installed (scripts/test.sh installs Debian's pulseaudio)")
    server = subprocess.Popen(
        [
            "pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--system=false",
            "-L", "module-null-sink",
            "-L", f"module-native-protocol-unix socket={socket_path} auth-anonymous=1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_LIMIT_S
        while not socket_path.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PulseAudio did not start (is the pulseaudio package installed?)")
            time.sleep(0.05)
        yield {"PULSE_SERVER": f"unix:{socket_path}"}
    finally:
        server.terminate()
        server.wait(timeout=10)


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict | None = None


class Firefox:
    """One Firefox process and its BiDi session."""

    def __init__(self, executable: str, profile_dir: Path, env: dict[str, str]) -> None:
        profile_dir.mkdir(parents=True, exist_ok=True)
        preferences = (f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in TEST_PREFERENCES.items())
        (profile_dir / "user.js").write_text("".join(preferences))
        self.log_path = profile_dir.parent / f"{profile_dir.name}.log"
        with self.log_path.open("w") as log:
            self._process = subprocess.Popen(
                [executable, "--headless", "--no-remote", "--profile", str(profile_dir), "--remote-debugging-port",
                 "0", "about:blank"],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._next_id = 0
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._pages: dict[str, FirefoxPage] = {}
        self._ws = self._connect(profile_dir / "WebDriverBiDiServer.json")
        self._reader = threading.Thread(target=self._read, name="firefox-bidi", daemon=True)
        self._reader.start()
        self.command("session.new", capabilities={})
        self.command("session.subscribe", events=["log.entryAdded"])

    def _connect(self, server_file: Path) -> ClientConnection:
        deadline = time.monotonic() + START_LIMIT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Firefox exited with {self._process.returncode}:\n{self.log_path.read_text()}")
            with suppress(OSError, ValueError, KeyError):
                port = json.loads(server_file.read_text())["ws_port"]
                return connect(f"ws://127.0.0.1:{port}/session", max_size=None, open_timeout=5)
            time.sleep(0.1)
        raise RuntimeError(f"Firefox offered no WebDriver BiDi within {START_LIMIT_S} s:\n{self.log_path.read_text()}")

    def _read(self) -> None:
        with suppress(Exception):  # the connection closes with the browser
            for message in self._ws:
                data = json.loads(message)
                if "id" in data:
                    pending = self._pending.get(data["id"])
                    if pending is not None:
                        pending.reply = data
                        pending.done.set()
                elif data.get("method") == "log.entryAdded":
                    self._on_log_entry(data["params"])

    def _on_log_entry(self, entry: dict) -> None:
        page = self._pages.get(entry.get("source", {}).get("context", ""))
        if page is not None and (entry.get("type") == "javascript" or entry.get("level") == "error"):
            page.errors.append(entry.get("text", ""))

    def command(self, method: str, **params: Any) -> dict:
        with self._lock:
            self._next_id += 1
            command_id = self._next_id
            pending = self._pending[command_id] = _Pending()
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        try:
            if not pending.done.wait(COMMAND_LIMIT_S):
                raise BidiError(f"{method}: no answer within {COMMAND_LIMIT_S} s")
        finally:
            self._pending.pop(command_id, None)
        reply = pending.reply
        if reply.get("type") == "error":
            raise BidiError(f"{method}: {reply['error']}: {reply.get('message', '')}")
        return reply["result"]

    def new_page(self, base_url: str) -> FirefoxPage:
        """A tab in a new user context: its own cookies, as if another person's browser."""
        user_context = self.command("browser.createUserContext")["userContext"]
        context = self.command("browsingContext.create", type="tab", userContext=user_context)["context"]
        page = FirefoxPage(self, context, base_url)
        self._pages[context] = page
        return page

    def script_errors_from(self, origin: str) -> list[str]:
        """Script errors Firefox printed for pages of `origin` (read once the browser has closed)."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines()
                if line.startswith("JavaScript error: ") and origin in line]

    def close(self) -> None:
        with suppress(Exception):
            self.command("browser.close")
        with suppress(Exception):
            self._ws.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class FirefoxPage:
    """One tab. `errors` collects its uncaught exceptions and console errors."""

    def __init__(self, browser: Firefox, context: str, base_url: str) -> None:
        self.browser = browser
        self.context = context
        self.base_url = base_url
        self.errors: list[str] = []
        self.closed = False

    def goto(self, path: str) -> None:
        self.browser.command("browsingContext.navigate", context=self.context, url=self.base_url + path,
                             wait="complete")

    def evaluate(self, function: str, *args: Any) -> Any:
        """Call a JavaScript function (source text, may be async) with JSON arguments; returns its JSON result.

        It runs as if the person had just clicked (user activation), as a click handler would."""
        wrapped = (
            f"async (argumentsJson) => {{ const value = await ({function})(...JSON.parse(argumentsJson));"
            " return JSON.stringify(value === undefined ? null : value); }"
        )
        result = self.browser.command(
            "script.callFunction",
            functionDeclaration=wrapped,
            arguments=[{"type": "string", "value": json.dumps(args)}],
            target={"context": self.context},
            awaitPromise=True,
            userActivation=True,
        )
        if result["type"] == "exception":
            raise BidiError(result["exceptionDetails"]["text"])
        return json.loads(result["result"]["value"])

    def wait_for(self, predicate: str, *args: Any, timeout_s: float = 10.0, interval_s: float = 0.1) -> Any:
        """Poll `predicate` (may be async) until it returns something truthy; returns that."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = self.evaluate(predicate, *args)
            except BidiError as error:  # e.g. the page was navigating: its old document is gone
                value = error
            else:
                if value:
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout_s} s (last value {value!r}): {predicate}")
            time.sleep(interval_s)

    def wait_for_path(self, path: str, timeout_s: float = 10.0) -> None:
        self.wait_for("(path) => location.pathname === path && document.readyState === 'complete'", path,
                      timeout_s=timeout_s)

    def add_init_script(self, source: str) -> None:
        """Run `source` in every document this tab loads from now on, before the page's own scripts."""
        self.browser.command("script.addPreloadScript", functionDeclaration=f"() => {{ {source} }}",
                             contexts=[self.context])

    def click(self, selector: str) -> None:
        self.evaluate("(selector) => { document.querySelector(selector).click(); }", selector)

    def close(self) -> None:
        """Close the tab as a person would: the page's pagehide and unload handlers run."""
        self.browser.command("browsingContext.close", context=self.context, promptUnload=False)
        self.closed = True


def firefox_executable() -> str | None:
    return os.environ.get("FIREFOX_PATH") or shutil.which("firefox-esr") or shutil.which("firefox")
