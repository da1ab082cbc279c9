// A friend's page: their live state, Start/Stop Listening, playback and a level meter.

import { api } from "./api.js";
import { LevelMeter } from "./level-meter.js";
import { secondsSince, StreamPanel } from "./stream-panel.js";
import { negotiate, newPeerConnection } from "./webrtc.js";

export class Listener {
  constructor(panel) {
    this.button = panel.querySelector("[data-listen-toggle]");
    this.audio = panel.querySelector("[data-live-audio]");
    this.meter = new LevelMeter(panel.querySelector("[data-output-level]"));
    this.peer = null;
    this.panel = new StreamPanel(panel, {
      onEnded: () => this.setLive(false),
      onStatus: (status) => this.setLive(status.is_streaming, status.started_at),
    });
    this.owner = this.panel.username;
    this.button.addEventListener("click", () => (this.peer ? this.stopListening() : this.startListening()));
    this.render();
  }

  get listening() {
    return this.peer !== null;
  }

  render() {
    this.button.disabled = !this.panel.isLive;
    this.button.textContent = this.listening ? "Stop Listening" : "Start Listening";
    this.button.classList.toggle("danger", this.listening);
    this.button.classList.toggle("primary", !this.listening);
  }

  // Called by the presence and stream sockets; `startedAt` is known when the status came with it.
  async setLive(isLive, startedAt = null) {
    if (isLive === this.panel.isLive) return;
    if (isLive && !startedAt) {
      startedAt = (await api(`/api/stream/status/${encodeURIComponent(this.owner)}/`).catch(() => ({}))).started_at;
    }
    this.panel.setLive(isLive, startedAt ? secondsSince(startedAt) : 0);
    if (isLive) {
      this.panel.showError("");
      this.panel.say(`${this.owner} is live. Press Start Listening to hear them.`, { loud: true });
    } else {
      this.stopListening({ quietly: true });
      this.panel.say(`${this.owner}'s stream has ended. The recording will appear below.`, { loud: true });
    }
    this.render();
  }

  async startListening() {
    this.panel.showError("");
    // Start playback inside the click, so the browser's autoplay rules allow the sound that arrives later.
    const remote = new MediaStream();
    this.audio.srcObject = remote;
    this.audio.play().catch(() => {});
    this.button.disabled = true;
    this.panel.say(`Connecting to ${this.owner}…`);
    try {
      this.peer = await newPeerConnection();
      this.peer.addTransceiver("audio", { direction: "recvonly" });
      this.peer.addEventListener("track", (event) => {
        remote.addTrack(event.track);
        this.audio.play().catch(() => {});
        this.meter.attach(remote);
      });
      this.peer.addEventListener("connectionstatechange", () => {
        if (this.peer?.connectionState === "failed") {
          this.stopListening({ quietly: true });
          this.panel.showError("The connection was lost. Press Start Listening to try again.");
        }
      });
      await negotiate(this.peer, `/api/stream/listener/${encodeURIComponent(this.owner)}/offer/`);
      this.panel.say(`Listening to ${this.owner}.`, { loud: true });
    } catch (error) {
      this.stopListening({ quietly: true });
      this.panel.showError(`Could not listen: ${error.message}`);
    }
    this.render();
  }

  stopListening({ quietly = false } = {}) {
    this.meter.detach();
    this.peer?.close();
    this.peer = null;
    this.audio.pause();
    this.audio.srcObject = null;
    if (!quietly) this.panel.say(`You stopped listening. ${this.owner} is still live.`, { loud: true });
    this.render();
  }
}
