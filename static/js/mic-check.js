// The mic check on My page: choose the microphone (remembered, and used when going live), watch its level,
// record a 5-second sample and play it back as recorded and as the server denoises it (POST /api/denoise/).

import { csrfToken } from "./api.js";
import { LevelMeter } from "./level-meter.js";
import { microphoneProblem } from "./broadcast.js";
import { chosenMicrophone, rememberMicrophone, withChosenMicrophone } from "./microphone-choice.js";

const SAMPLE_MS = 5000;
const POLL_MS = 1000;
// As when going live: the server removes the noise, so the browser's own suppression stays off.
const AUDIO = { echoCancellation: true, noiseSuppression: false, autoGainControl: true };

async function denoisedOnServer(sample) {
  const form = new FormData();
  form.append("audio", sample, "mic-check.webm");
  let response = await fetch("/api/denoise/", {
    method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() },
  });
  while (response.status === 202) { // a busy server hands out a job to poll
    const job = await response.json();
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    response = await fetch(job.url, { credentials: "same-origin" });
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => null);
    throw new Error(problem?.error ?? `The server answered ${response.status}.`);
  }
  return response.blob();
}

function recorderType() {
  const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"];
  return types.find((type) => window.MediaRecorder?.isTypeSupported(type)) ?? "";
}

class MicCheck {
  constructor(card) {
    this.card = card;
    this.choice = card.querySelector("[data-microphone-choice]");
    this.openButton = card.querySelector("[data-mic-open]");
    this.recordButton = card.querySelector("[data-mic-record]");
    this.status = card.querySelector("[data-mic-status]");
    this.error = card.querySelector("[data-mic-error]");
    this.results = card.querySelector("[data-mic-results]");
    this.raw = card.querySelector("[data-mic-raw]");
    this.denoised = card.querySelector("[data-mic-denoised]");
    this.meter = new LevelMeter(card.querySelector("[data-mic-level]"));
    this.stream = null;
    this.urls = [];
    this.openButton.addEventListener("click", () => this.open());
    this.recordButton.addEventListener("click", () => this.record());
    this.choice.addEventListener("change", () => {
      rememberMicrophone(this.choice.value);
      this.open();
    });
    this.listDevices(); // without permission the labels are empty, but a remembered choice shows
  }

  say(text) { this.status.textContent = text; }

  fail(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async listDevices() {
    const devices = (await navigator.mediaDevices?.enumerateDevices?.()) ?? [];
    const inputs = devices.filter((device) => device.kind === "audioinput" && device.deviceId !== "default");
    this.choice.replaceChildren(new Option("Default microphone", ""));
    inputs.forEach((device, index) => {
      this.choice.append(new Option(device.label || `Microphone ${index + 1}`, device.deviceId));
    });
    const chosen = chosenMicrophone();
    this.choice.value = inputs.some((device) => device.deviceId === chosen) ? chosen : "";
  }

  async open() {
    this.fail("");
    this.close();
    try {
      if (!navigator.mediaDevices?.getUserMedia) {
        throw Object.assign(new Error("insecure page"), { name: "SecurityError" });
      }
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: withChosenMicrophone(AUDIO) });
    } catch (error) {
      this.fail(microphoneProblem(error).replace("press Start Streaming", "press Check microphone"));
      return;
    }
    this.meter.attach(this.stream);
    await this.listDevices();
    this.recordButton.disabled = false;
    this.openButton.textContent = "Check again";
    this.say(`Listening to ${this.stream.getAudioTracks()[0]?.label || "your microphone"}. Speak to see its level.`);
  }

  close() {
    this.meter.detach();
    this.stream?.getTracks().forEach((track) => track.stop());
    this.stream = null;
    this.recordButton.disabled = true;
  }

  async record() {
    if (!this.stream) return;
    this.fail("");
    this.recordButton.disabled = true;
    const type = recorderType();
    const recorder = new MediaRecorder(this.stream, type ? { mimeType: type } : {});
    const chunks = [];
    recorder.addEventListener("dataavailable", (event) => chunks.push(event.data));
    const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve));
    recorder.start();
    this.say("Recording a 5-second sample: say a few words as you would live.");
    setTimeout(() => recorder.stop(), SAMPLE_MS);
    await stopped;
    const sample = new Blob(chunks, { type: recorder.mimeType || type });
    this.urls.forEach((url) => URL.revokeObjectURL(url));
    this.urls = [URL.createObjectURL(sample)];
    this.raw.src = this.urls[0];
    this.denoised.removeAttribute("src");
    this.results.hidden = false;
    this.say("Removing the noise on the server…");
    try {
      const denoised = await denoisedOnServer(sample);
      this.urls.push(URL.createObjectURL(denoised));
      this.denoised.src = this.urls[1];
      this.say("Done. Play both to hear what Quietcast removes.");
    } catch (error) {
      this.fail(`The sample could not be denoised: ${error.message}`);
      this.say("");
    } finally {
      this.recordButton.disabled = !this.stream;
    }
  }
}

const card = document.querySelector("[data-mic-check]");
if (card) new MicCheck(card);
