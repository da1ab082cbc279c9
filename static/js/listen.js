// A friend's page: their live state, Start/Stop Listening, playback and a level meter.

import { api } from "./api.js";
import { LevelMeter } from "./level-meter.js";
import { CLOSE_FORBIDDEN } from "./socket.js";
import { secondsSince, StreamPanel } from "./stream-panel.js";
import { negotiate, newPeerConnection } from "./webrtc.js";

// After a lost connection, how long to wait before offering again while the stream is still live, and for how
// long to keep trying (a restarted server answers 404 until the broadcaster's page has reconnected too).
const RELISTEN_DELAY_MS = 1000;
const RELISTEN_PATIENCE_MS = 20_000;

export class Listener {
  // `listenNow`: the person came here to listen (the Listen button of a live notification): start at once.
  constructor(card, { listenNow = false } = {}) {
    this.button = card.querySelector("[data-listen-toggle]");
    this.audio = card.querySelector("[data-live-audio]");
    this.meter = new LevelMeter(card.querySelector("[data-output-level]"));
    this.peer = null;
    // Whether the person asked to listen and has not stopped: a lost connection is then made again by itself.
    this.wantsToListen = false;
    this.relistenUntil = null;
    this.refused = false;
    this.panel = new StreamPanel(card, {
      onStatus: (status, { afterOutage }) => this.showStatus(status, afterOutage),
      onStarted: (message) => this.setLive(true, message.started_at),
      onEnded: (reason) => this.setLive(false, null, reason),
      onDown: () => this.serverLost(),
      onRefused: (code) => this.refusedAccess(code),
    });
    this.owner = this.panel.username;
    this.button.addEventListener("click", () => (this.wantsToListen ? this.stopListening() : this.startListening()));
    this.render();
    if (listenNow && this.panel.isLive) this.startListening({ onArrival: true });
  }

  get listening() {
    return this.peer !== null;
  }

  render() {
    this.button.disabled = this.refused || !this.panel.isLive;
    this.button.textContent = this.wantsToListen ? "Stop Listening" : "Start Listening";
    this.button.classList.toggle("danger", this.wantsToListen);
    this.button.classList.toggle("primary", !this.wantsToListen);
  }

  showStatus(status, afterOutage) {
    const wasLive = this.panel.isLive;
    this.setLive(status.is_streaming, status.started_at);
    if (!afterOutage) return;
    if (status.is_streaming && wasLive) {
      if (this.wantsToListen) this.relisten();
      else this.panel.say(`${this.owner} is live. Press Start Listening to hear them.`);
    } else if (!status.is_streaming && !wasLive) {
      this.panel.say(`${this.owner} is not live right now.`);
    }
  }

  // The stream's state as the server reports it. Synchronous, so that events are applied in the order they came.
  setLive(isLive, startedAt = null, reason = null) {
    if (isLive === this.panel.isLive) return;
    this.panel.setLive(isLive, startedAt ? secondsSince(startedAt) : 0);
    if (isLive) {
      this.panel.showError("");
      this.panel.say(`${this.owner} is live. Press Start Listening to hear them.`, { loud: true });
      if (!startedAt) this.catchUpTimer();
    } else {
      this.stopListening({ quietly: true });
      const recording = reason === "no_audio" ? "" : " The recording will appear below.";
      this.panel.say(`${this.owner}'s stream has ended.${recording}`, { loud: true });
    }
    this.render();
  }

  // The timer starts at zero when the start time is unknown; set it right once the server says when it began.
  async catchUpTimer() {
    const status = await api(`/api/stream/status/${encodeURIComponent(this.owner)}/`).catch(() => null);
    if (this.panel.isLive && status?.is_streaming && status.started_at) {
      this.panel.startTimer(secondsSince(status.started_at));
    }
  }

  serverLost() {
    if (!this.panel.isLive) return;
    this.panel.say(`Reconnecting… Quietcast cannot be reached right now${this.wantsToListen ? "; you will hear "
      + `${this.owner} again when it is back` : ""}.`);
  }

  refusedAccess(code) {
    this.refused = true;
    this.stopListening({ quietly: true });
    this.panel.setLive(false);
    this.panel.say(code === CLOSE_FORBIDDEN
      ? `You are no longer friends with ${this.owner}, so you cannot listen to their stream.`
      : "You are signed out. Log in again to listen.", { loud: true });
    this.render();
  }

  // `onArrival`: started by the page itself rather than a click on it. Browsers allow that sound after a click on
  // a link of the same site; one that still refuses is asked for a click.
  async startListening({ onArrival = false } = {}) {
    this.wantsToListen = true;
    this.panel.showError("");
    // Start playback inside the click, so the browser's autoplay rules allow the sound that arrives later.
    const remote = new MediaStream();
    this.audio.srcObject = remote;
    this.audio.play().catch((error) => {
      if (onArrival && error.name === "NotAllowedError" && this.wantsToListen) {
        this.stopListening({ quietly: true });
        this.panel.say(`${this.owner} is live. Press Start Listening to hear them.`, { loud: true });
      }
    });
    this.render();
    this.button.disabled = true;
    this.panel.say(`Connecting to ${this.owner}…`);
    await this.connect(remote);
  }

  async connect(remote) {
    this.closePeer();
    let peer;
    try {
      peer = await newPeerConnection();
    } catch (error) {
      this.failed(error);
      return;
    }
    if (!this.wantsToListen) { // stopped meanwhile
      peer.close();
      return;
    }
    this.peer = peer;
    peer.addTransceiver("audio", { direction: "recvonly" });
    peer.addEventListener("track", (event) => {
      remote.addTrack(event.track);
      this.audio.play().catch(() => {});
      this.meter.attach(remote);
    });
    peer.addEventListener("connectionstatechange", () => {
      // The server went away or dropped this connection while the stream may still be live: connect again.
      if (peer === this.peer && peer.connectionState === "failed") this.relisten();
    });
    try {
      await negotiate(peer, `/api/stream/listener/${encodeURIComponent(this.owner)}/offer/`);
      if (peer === this.peer) {
        this.relistenUntil = null;
        this.panel.say(`Listening to ${this.owner}.`, { loud: true });
      }
    } catch (error) {
      if (peer === this.peer) this.failed(error);
    }
    this.render();
  }

  failed(error) {
    this.closePeer();
    // While reconnecting, the server may be restarting (0, 5xx) or still waiting for the broadcaster (404).
    const passing = error.status === 0 || error.status === 404 || error.status >= 500;
    if (this.wantsToListen && this.panel.isLive && passing && this.relistenUntil && Date.now() < this.relistenUntil) {
      this.relisten();
      return;
    }
    this.relistenUntil = null;
    this.wantsToListen = false;
    this.panel.showError(`Could not listen: ${error.message}`);
    this.render();
  }

  // A new listener offer for the same stream, once the stream socket says it is still live.
  relisten() {
    this.relistenUntil ??= Date.now() + RELISTEN_PATIENCE_MS;
    this.closePeer();
    this.panel.say(`Reconnecting… you will hear ${this.owner} again in a moment.`);
    clearTimeout(this.relistenTimer);
    this.relistenTimer = setTimeout(() => {
      if (this.wantsToListen && this.panel.isLive && this.panel.socket.isOpen && !this.listening) {
        const remote = new MediaStream();
        this.audio.srcObject = remote;
        this.audio.play().catch(() => {});
        this.connect(remote);
      }
    }, RELISTEN_DELAY_MS);
  }

  closePeer() {
    this.meter.detach();
    this.peer?.close();
    this.peer = null;
  }

  stopListening({ quietly = false } = {}) {
    this.wantsToListen = false;
    this.relistenUntil = null;
    clearTimeout(this.relistenTimer);
    this.closePeer();
    this.audio.pause();
    this.audio.srcObject = null;
    if (!quietly) this.panel.say(`You stopped listening. ${this.owner} is still live.`, { loud: true });
    this.render();
  }
}
