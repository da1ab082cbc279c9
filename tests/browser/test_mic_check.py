"""The mic check on My page, in real Chromium with its fake microphone (tests/fixtures/speech_noisy.wav) against
the real server and denoiser: the device list and the remembered choice (used when going live), the level, and a
5-second sample played back as recorded and as the server denoised it."""

import base64
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from tests.audio_checks import pause_level_db
from tests.fixtures.make_fixtures import FIXTURE_DIR, read_wav

pytestmark = pytest.mark.browser

# Records each getUserMedia call's audio constraints, to see which microphone going live asks for.
RECORD_MICROPHONE_REQUESTS = """
const askedFor = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
window.microphoneRequests = [];
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.microphoneRequests.push(JSON.parse(JSON.stringify(constraints)));
  return askedFor(constraints);
};
"""


# Plays a player from the start to its end through Web Audio and returns what came out: 48 kHz mono float32,
# base64-encoded (what the person hears, not the file behind it).
CAPTURE_PLAYBACK = """
async (audio) => {
  const context = new AudioContext({ sampleRate: 48000 });
  const source = context.createMediaElementSource(audio);
  const tap = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  tap.onaudioprocess = (event) => {
    if (!audio.paused) chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
  };
  source.connect(tap);
  tap.connect(context.destination);
  await context.resume();
  audio.currentTime = 0;
  const ended = new Promise((resolve) => audio.addEventListener("ended", resolve, { once: true }));
  await audio.play();
  await ended;
  await context.close();
  const samples = new Float32Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  chunks.reduce((offset, chunk) => (samples.set(chunk, offset), offset + chunk.length), 0);
  let text = "";
  const bytes = new Uint8Array(samples.buffer);
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
"""


def played(page: Page, selector: str) -> np.ndarray:
    page.wait_for_function(f"() => document.querySelector('{selector}').readyState >= 2")
    return np.frombuffer(base64.b64decode(page.locator(selector).evaluate(CAPTURE_PLAYBACK)), dtype=np.float32)


def open_mic_check(alice: Page) -> None:
    alice.goto("/user/alice/")
    alice.get_by_role("button", name="Check microphone").click()
    expect(alice.get_by_role("button", name="Record a 5-second sample")).to_be_enabled()


def test_a_sample_plays_back_as_recorded_and_denoised_by_the_server(log_in, screenshots_dir: Path):
    alice = log_in("alice")
    open_mic_check(alice)
    alice.wait_for_function("() => document.querySelector('[data-mic-level]').value > 0.1")

    with alice.expect_response("**/api/denoise/", timeout=40_000) as denoise_call:
        alice.get_by_role("button", name="Record a 5-second sample").click()
        expect(alice.get_by_text("Removing the noise on the server…")).to_be_visible(timeout=15_000)
    expect(alice.get_by_text("Done. Play both to hear what Quietcast removes.")).to_be_visible(timeout=30_000)

    assert denoise_call.value.status == 200
    raw, denoised = played(alice, "[data-mic-raw]"), played(alice, "[data-mic-denoised]")
    assert len(raw) / 48_000 == pytest.approx(5.0, abs=0.6)
    assert len(denoised) / 48_000 == pytest.approx(len(raw) / 48_000, abs=0.3)
    clean = read_wav(FIXTURE_DIR / "speech_clean.wav")
    raw_pauses, denoised_pauses = pause_level_db(raw, clean), pause_level_db(denoised, clean)
    assert raw_pauses - denoised_pauses >= 10, (raw_pauses, denoised_pauses)
    expect(alice.locator("[data-mic-results]")).to_be_visible()
    alice.locator("[data-mic-check]").screenshot(path=str(screenshots_dir / "mic-check.png"))


def test_the_chosen_microphone_is_listed_remembered_and_used_when_going_live(log_in):
    alice = log_in("alice")
    alice.add_init_script(RECORD_MICROPHONE_REQUESTS)
    open_mic_check(alice)
    choice = alice.get_by_label("Microphone", exact=True)
    labels = choice.locator("option").all_inner_texts()
    assert labels[0] == "Default microphone"
    assert len(labels) >= 2 and all(label.strip() for label in labels)
    assert not any(label.startswith("Microphone ") for label in labels[1:])  # real labels, after permission
    last = choice.locator("option").last
    chosen_label, chosen_id = last.inner_text(), last.get_attribute("value")

    choice.select_option(chosen_id)
    expect(alice.get_by_role("button", name="Record a 5-second sample")).to_be_enabled()
    alice.reload()

    expect(choice).to_have_value(chosen_id)
    assert choice.locator("option:checked").inner_text() == chosen_label
    alice.get_by_role("button", name="Start Streaming").click()
    expect(alice.get_by_role("button", name="Stop Streaming")).to_be_visible()
    assert alice.evaluate("window.microphoneRequests.at(-1).audio.deviceId") == {"ideal": chosen_id}
    alice.get_by_role("button", name="Stop Streaming").click()
    expect(alice.get_by_role("button", name="Start Streaming")).to_be_visible()
