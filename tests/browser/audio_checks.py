"""Whether a page really receives audio, asked the same way of Chromium (Playwright) and Firefox (BiDi).

Each check polls a page function through `evaluate` (a function that runs JavaScript function source in the page
and returns its result, awaiting a Promise). Playwright's `wait_for_function` cannot be used for these: it takes
the Promise an `async` predicate returns for a truthy value and returns at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Evaluate = Callable[[str], Any]

# Lets a test read getStats() of the page's peer connections without the page exposing them.
KEEP_PEER_CONNECTIONS = """
    window.testPeerConnections = [];
    window.RTCPeerConnection = class extends window.RTCPeerConnection {
        constructor(...args) { super(...args); window.testPeerConnections.push(this); }
    };
"""

# What the page's open peer connections have received so far: RTP packets and payload bytes, and the energy of the
# audio they decoded (the sum over time of the squared level, 0..1; it stays put while the audio is digital silence).
INBOUND_AUDIO = """async () => {
    let bytes = 0, energy = 0, packets = 0;
    for (const peer of window.testPeerConnections) {
        if (peer.connectionState === "closed") continue;
        for (const report of (await peer.getStats()).values()) {
            if (report.type === "inbound-rtp" && report.kind === "audio") {
                bytes += report.bytesReceived ?? 0;
                energy += report.totalAudioEnergy ?? 0;
                packets += report.packetsReceived ?? 0;
            }
        }
    }
    return { bytes, energy, packets };
}"""

# The test microphones' audio adds about 0.3 a second (the speech fixture in Chromium); silence adds nothing.
AUDIBLE_ENERGY = 1e-3


def wait_until(evaluate: Evaluate, predicate: str, *, timeout_s: float = 10.0, what: str) -> Any:
    """Poll `predicate` (JavaScript function source, may be async) until its result is truthy; returns it."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = evaluate(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s (last: {value!r})")
        time.sleep(0.1)


def inbound_audio(evaluate: Evaluate) -> dict:
    return evaluate(INBOUND_AUDIO)


def wait_until_audio_arrives(evaluate: Evaluate, *, timeout_s: float = 10.0) -> None:
    """RTP audio arrives and keeps arriving, and what it decodes to is not silence: the bytes received and the
    received audio's energy both grow, by a second's worth of sound, after the first packets."""
    first = wait_until(evaluate, f"async () => {{ const a = await ({INBOUND_AUDIO})(); return a.bytes > 1000 && a; }}",
                       timeout_s=timeout_s, what="inbound audio RTP")
    wait_until(
        evaluate,
        f"""async () => {{
            const now = await ({INBOUND_AUDIO})();
            return now.bytes > {first["bytes"]} + 4000 && now.energy > {first["energy"]} + {AUDIBLE_ENERGY};
        }}""",
        timeout_s=timeout_s,
        what=f"growing inbound audio bytes and energy (from {first})",
    )


def wait_until_output_level(evaluate: Evaluate, *, timeout_s: float = 10.0) -> None:
    """The live player is playing the stream, and the page's own output meter moves."""
    wait_until(
        evaluate,
        """() => {
            const audio = document.querySelector("[data-live-audio]");
            return Boolean(audio.srcObject) && !audio.paused
                && document.querySelector("[data-output-level]").value > 0.1;
        }""",
        timeout_s=timeout_s,
        what="the live player's level",
    )
