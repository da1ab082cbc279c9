// The broadcaster's own page: Start/Stop Streaming, the denoise choice, microphone level and errors.

import { api, beaconForm } from "./api.js";
import { LevelMeter } from "./level-meter.js";
import { StreamPanel } from "./stream-panel.js";
import { negotiate, newPeerConnection } from "./webrtc.js";

// The server removes noise, so the browser's own suppression is turned off: doing it twice muffles speech.
// A reloaded page re-offers its microphone while the server still holds the old page's connection; the server
// lets go of it within its media timeout (10 s by default).
const RECONNECT_PATIENCE_MS = 15_000;
const RECONNECT_RETRY_MS = 1_000;
const MICROPHONE_CONSTRAINTS = { audio: { echoCancellation: true, noiseSuppression: false, autoGainControl: true } };

export function microphoneProblem(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Quietcast is not allowed to use your microphone. Allow microphone access for this site "
        + "in your browser's settings (usually the icon next to the address), then press Start Streaming again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No microphone was found. Plug one in or switch it on, then press Start Streaming again.";
    case "NotReadableError":
    case "AbortError":
      return "Your microphone could not be started. Another program may be using it; close that program "
        + "and try again.";
    default:
      return `Your microphone could not be used (${error?.message || "unknown problem"}).`;
  }
}

async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    // Browsers only offer microphones to https pages and to localhost.
    throw Object.assign(new Error("insecure page"), {
      plainWords: "Your browser only allows the microphone on secure pages. Open Quietcast over https, "
        + "or on this computer as http://localhost.",
    });
  }
  try {
    return await navigator.mediaDevices.getUserMedia(MICROPHONE_CONSTRAINTS);
  } catch (error) {
    throw Object.assign(error, { plainWords: microphoneProblem(error) });
  }
}

export class Broadcaster {
  constructor(panel, { onStopped = () => {} } = {}) {
    this.button = panel.querySelector("[data-broadcast-toggle]");
    this.denoise = panel.querySelector("[data-denoise-toggle]");
    this.meter = new LevelMeter(panel.querySelector("[data-input-level]"));
    this.onStopped = onStopped;
    this.microphone = null;
    this.peer = null;
    this.reloading = false;
    this.panel = new StreamPanel(panel, { onEnded: () => this.endedElsewhere() });
    this.button.addEventListener("click", () => (this.panel.isLive ? this.stop() : this.start()));
    this.watchForLeaving();
    this.render();
    // Reloaded while live: the stream is still running on the server; reconnect this page's microphone to it.
    if (this.panel.isLive) this.connectAudio({ reconnecting: true });
  }

  render() {
    const live = this.panel.isLive;
    this.button.textContent = live ? "Stop Streaming" : "Start Streaming";
    this.button.classList.toggle("danger", live);
    this.button.classList.toggle("primary", !live);
    // The choice is made when going live; the server cannot switch denoising mid-stream.
    this.denoise.disabled = live;
  }

  async start() {
    this.button.disabled = true;
    this.panel.showError("");
    this.panel.say("Asking for your microphone…");
    try {
      this.microphone = await openMicrophone();
    } catch (error) {
      this.panel.say("You are not live.");
      this.panel.showError(error.plainWords);
      this.button.disabled = false;
      return;
    }
    try {
      await api("/api/stream/start/", { method: "POST", body: { denoise: this.denoise.checked } });
    } catch (error) {
      this.releaseMicrophone();
      this.panel.say("You are not live.");
      this.panel.showError(error.message);
      this.button.disabled = false;
      return;
    }
    this.panel.setLive(true);
    this.render();
    this.button.disabled = false;
    this.panel.say(`You are live${this.denoise.checked ? " with denoise on" : ""}. Your friends can listen now.`,
      { loud: true });
    await this.connectAudio({ reconnecting: false });
  }

  async connectAudio({ reconnecting, retryUntil = Date.now() + RECONNECT_PATIENCE_MS }) {
    try {
      this.microphone ??= await openMicrophone();
      this.meter.attach(this.microphone);
      this.peer = await newPeerConnection();
      for (const track of this.microphone.getAudioTracks()) this.peer.addTrack(track, this.microphone);
      this.peer.addEventListener("connectionstatechange", () => {
        if (this.peer?.connectionState === "failed") {
          this.panel.showError("The audio connection to the server was lost. Stop and start again to reconnect.");
        }
      });
      await negotiate(this.peer, "/api/stream/offer/");
      if (reconnecting) this.panel.say("You are live. Your microphone is connected again.", { loud: true });
    } catch (error) {
      // After a reload the server may not yet have noticed that the old page's connection is gone (409):
      // it does within its media timeout, so keep offering until then.
      if (reconnecting && error.status === 409 && Date.now() < retryUntil && this.panel.isLive) {
        this.peer?.close();
        this.peer = null;
        this.panel.say("Reconnecting your microphone…");
        setTimeout(() => this.connectAudio({ reconnecting, retryUntil }), RECONNECT_RETRY_MS);
        return;
      }
      this.panel.showError(error.plainWords ?? `Your audio could not be sent to the server: ${error.message}`);
    }
  }

  async stop() {
    this.button.disabled = true;
    const duration = this.panel.elapsedSeconds();
    try {
      await api("/api/stream/stop/", { method: "POST", body: { duration } });
    } catch (error) {
      // 409 means it had already ended (the server ends abandoned streams); the page just catches up.
      if (error.status !== 409) {
        this.panel.showError(error.message);
        this.button.disabled = false;
        return;
      }
    }
    this.finish("You stopped streaming. The recording is saved below.");
    this.onStopped();
  }

  endedElsewhere() {
    if (this.panel.isLive) this.finish("Your stream has ended.");
  }

  finish(message) {
    this.releaseMicrophone();
    this.panel.setLive(false);
    this.render();
    this.button.disabled = false;
    this.panel.say(message, { loud: true });
  }

  releaseMicrophone() {
    this.meter.detach();
    this.peer?.close();
    this.peer = null;
    for (const track of this.microphone?.getTracks() ?? []) track.stop();
    this.microphone = null;
  }

  // Closing the tab ends the stream at once. A reload does not: the page comes back and carries on, and should
  // it not come back, the server ends the stream after a short grace period anyway.
  watchForLeaving() {
    window.navigation?.addEventListener("navigate", (event) => {
      if (event.navigationType === "reload") this.reloading = true;
    });
    window.addEventListener("keydown", (event) => {
      if (event.key === "F5" || ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "r")) {
        this.reloading = true;
      }
    });
    // Built now, so that the beacon leaves before any other script runs as the page goes (see beaconForm). It
    // carries no duration: the server counts the recording's length from the audio it received.
    const stopForm = beaconForm();
    window.addEventListener("pagehide", () => {
      if (this.panel.isLive && !this.reloading) navigator.sendBeacon("/api/stream/stop/", stopForm);
      // Closing the connection ourselves tells the server at once, so a reloaded page can take over the stream.
      this.peer?.close();
    });
  }
}
