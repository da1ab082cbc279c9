// The broadcaster's own page: Start/Stop Streaming, the denoise choice, microphone level and errors.

import { api } from "./api.js";
import { LevelMeter } from "./level-meter.js";
import { withChosenMicrophone } from "./microphone-choice.js";
import { secondsSince, StreamPanel } from "./stream-panel.js";
import { negotiate, newPeerConnection } from "./webrtc.js";

// The server removes noise, so the browser's own suppression is turned off: doing it twice muffles speech.
// A reloaded page (or one whose server came back) re-offers its microphone while the server may still hold the old
// connection; the server lets go of it within its media timeout (10 s by default).
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
    return await navigator.mediaDevices.getUserMedia({ audio: withChosenMicrophone(MICROPHONE_CONSTRAINTS.audio) });
  } catch (error) {
    throw Object.assign(error, { plainWords: microphoneProblem(error) });
  }
}

// Which stream this browser tab sends its microphone to. Session storage belongs to one tab and survives its
// reloads, so a reloaded page knows to reconnect, and a second tab knows that the stream is not its own.
const SENDING_TAB_KEY = "quietcast.sending-session";
// How long a page that finds itself the sender waits for the lock below: a reloaded page's predecessor lets go of
// it as it unloads.
const SENDING_LOCK_WAIT_MS = 2000;

function tabSession() {
  try { return sessionStorage.getItem(SENDING_TAB_KEY); } catch { return null; }
}

function claimTab(sessionId) {
  try { sessionStorage.setItem(SENDING_TAB_KEY, sessionId); } catch { /* storage off: reload will not resume */ }
}

function forgetTab() {
  try { sessionStorage.removeItem(SENDING_TAB_KEY); } catch { /* nothing stored */ }
}

// The page sending a stream's audio holds this lock until the stream ends or the page goes away, so a duplicated
// tab (which inherits session storage) cannot take over. Resolves to the function that lets go, or null.
function takeSendingLock(sessionId) {
  if (!navigator.locks) return Promise.resolve(() => {}); // only on insecure pages, which have no microphone
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  return new Promise((resolve) => {
    const options = { signal: AbortSignal.timeout(SENDING_LOCK_WAIT_MS) };
    navigator.locks.request(`quietcast-sending-${sessionId}`, options, () => {
      resolve(release);
      return held;
    }).catch(() => resolve(null));
  });
}

// Why the server ended the stream, in the broadcaster's words (see `stream_ended` reasons).
const ENDED_BECAUSE = {
  stopped: "You stopped streaming. The recording is saved below.",
  tab_closed: "Your stream ended because the page sending it was closed. The recording is saved below.",
  logged_out: "Your stream ended because you logged out. The recording is saved below.",
  connection_lost: "Your stream ended because your microphone's connection was lost for too long. "
    + "The recording is saved below.",
  no_audio: "Your stream ended because no sound from your microphone ever reached Quietcast. The connection "
    + "between your browser and the server may be blocked (a firewall, VPN or strict network): try another "
    + "network, or ask whoever runs Quietcast to set up a TURN relay.",
  server_restart: "Your stream ended because the Quietcast server restarted. The recording is saved below.",
  server_lost: "Your stream ended because the Quietcast server carrying it stopped. You can go live again now.",
  max_length: "Your stream reached the longest a stream may run here, so it ended. The recording is saved below.",
  account_deleted: "Your stream ended because your account was deleted.",
};

const DENOISE_PAUSED = "Denoising paused: the server is busy. Friends hear you without noise removal until it "
  + "has room again.";

// While live but before the server has received any sound ("Connecting…"); after STILL_CONNECTING_MS it says more.
const CONNECTING = "Connecting… your microphone's sound is on its way to Quietcast. Friends hear you once it arrives.";
const STILL_CONNECTING = "Still connecting… no sound has reached Quietcast yet. If none does, the stream ends by "
  + "itself and this page says why.";
const STILL_CONNECTING_MS = 5000;

// Text fields where the M key is typing, not the mute shortcut.
function typesText(element) {
  if (!(element instanceof Element)) return false;
  if (element.isContentEditable || element.matches("textarea, select")) return true;
  return element.matches("input") && !["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"]
    .includes(element.type);
}

export function endedMessage(reason) {
  return ENDED_BECAUSE[reason] ?? "Your stream has ended.";
}

export const LEAVING_WARNING = "You are live — leaving this page ends your stream. Leave anyway?";

export class Broadcaster {
  constructor(card, { onEnded = () => {} } = {}) {
    this.card = card;
    this.button = card.querySelector("[data-broadcast-toggle]");
    this.denoise = card.querySelector("[data-denoise-toggle]");
    this.muteButton = card.querySelector("[data-mute-toggle]");
    this.muted = this.muteButton.getAttribute("aria-pressed") === "true";
    this.switchingMute = false;
    // Whether the server has received this stream's sound; until then the page says "Connecting…".
    this.audioFlowing = card.dataset.live === "true" && card.dataset.audioStarted === "true";
    this.stillConnectingTimer = null;
    this.meter = new LevelMeter(card.querySelector("[data-input-level]"));
    this.onEnded = onEnded;
    this.microphone = null;
    this.peer = null;
    this.sessionId = card.dataset.sessionId || null;
    this.sending = null; // lets go of the sending lock while this page sends the stream's audio
    this.starting = false;
    this.startedMeanwhile = null;
    this.stopping = false;
    this.connecting = false;
    this.leaving = false;
    this.panel = new StreamPanel(card, {
      onStatus: (status, { afterOutage }) => this.showStatus(status, afterOutage),
      onStarted: (message) => this.startedSomewhere(message),
      onEnded: (reason) => this.endedOnServer(reason),
      onDenoiseMode: (denoised) => this.panel.showError(denoised ? "" : DENOISE_PAUSED),
      onDenoiseSwitched: (denoise) => { if (!this.switchingDenoise) this.denoise.checked = denoise; },
      onMuted: (muted) => { if (!this.switchingMute) this.followMute(muted); },
      onAudioStarted: ({ session_id: sessionId }) => { if (sessionId === this.sessionId) this.audioArrived(); },
      onDown: () => {
        if (this.panel.isLive) this.panel.say("Reconnecting… Quietcast cannot be reached right now.");
      },
    });
    this.button.addEventListener("click", () => (this.panel.isLive ? this.stop() : this.start()));
    this.switchingDenoise = false;
    this.denoise.addEventListener("change", () => { if (this.panel.isLive) this.switchDenoise(this.denoise.checked); });
    this.muteButton.addEventListener("click", () => this.switchMute(!this.muted));
    document.addEventListener("keydown", (event) => {
      if (event.key !== "m" && event.key !== "M") return;
      if (event.repeat || event.ctrlKey || event.metaKey || event.altKey || typesText(event.target)) return;
      if (!this.panel.isLive || this.switchingMute) return;
      event.preventDefault();
      this.switchMute(!this.muted);
    });
    this.askBeforeLeaving();
    window.addEventListener("pagehide", () => {
      // Closing the connection ourselves tells the server at once, so a reloaded page can take over the stream.
      // Whether the page comes back is the server's to decide: it ends the stream shortly if it does not.
      this.peer?.close();
    });
    // Back from the browser's page cache: its microphone connection and sockets were closed on the way out.
    window.addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });
    this.render();
    if (this.panel.isLive && this.sessionId !== null && tabSession() === this.sessionId) this.resumeSending();
    else if (this.panel.isLive) this.showLiveElsewhere();
  }

  // True in the tab whose microphone feeds the live stream (also after it reloads).
  get sendsAudio() {
    return this.panel.isLive && this.sending !== null;
  }

  // This tab sent the stream before it reloaded: take the stream's audio up again.
  async resumeSending() {
    const sessionId = this.sessionId;
    this.panel.say("You are live. Reconnecting your microphone…");
    const release = await takeSendingLock(sessionId);
    if (!release || !this.panel.isLive || this.sessionId !== sessionId) {
      release?.();
      if (!release) forgetTab(); // a duplicated tab: another one sends this stream
      if (this.panel.isLive) this.showLiveElsewhere();
      return;
    }
    this.sending = release;
    this.connectAudio({ reconnecting: true });
  }

  render() {
    const live = this.panel.isLive;
    this.button.textContent = live ? "Stop Streaming" : "Start Streaming";
    this.button.classList.toggle("danger", live);
    this.button.classList.toggle("primary", !live);
    // Before going live the box is the choice for the start; while live it switches the stream at once.
    this.denoise.disabled = this.switchingDenoise;
    this.muteButton.disabled = !live || this.switchingMute;
    this.muteButton.textContent = this.muted ? "Unmute" : "Mute";
    this.muteButton.setAttribute("aria-pressed", String(this.muted));
    this.card.classList.toggle("is-connecting", live && !this.audioFlowing);
  }

  // Mute or unmute: the microphone track goes quiet at once (nothing leaves this device while muted), and the
  // server, which decides what friends hear and what is recorded, sends silence in its place.
  async switchMute(muted) {
    this.switchingMute = true;
    this.panel.showError("");
    const before = this.muted;
    this.followMute(muted);
    try {
      const answer = await api("/api/stream/mute/", { method: "POST", body: { muted } });
      this.followMute(answer.muted);
      this.panel.say(answer.muted ? "You are muted. Your friends hear silence; press M or Unmute to be heard again."
        : "You are unmuted. Your friends hear you again.", { loud: true });
    } catch (error) {
      this.followMute(before);
      this.panel.showError(`You were not ${muted ? "muted" : "unmuted"}: ${error.plainWords ?? error.message}`);
    } finally {
      this.switchingMute = false;
      this.render();
    }
  }

  // The stream's mute as this page should show and apply it (its own switch, or one from another page).
  followMute(muted) {
    this.muted = muted;
    for (const track of this.microphone?.getAudioTracks() ?? []) track.enabled = !muted;
    this.render();
  }

  // The server received the stream's first sound: from "Connecting…" to live.
  audioArrived() {
    clearTimeout(this.stillConnectingTimer);
    if (this.audioFlowing) return;
    this.audioFlowing = true;
    this.render();
    if (this.sendsAudio) {
      this.panel.say(`You are live${this.denoise.checked ? " with denoise on" : ""}. Your friends can listen now.`,
        { loud: true });
    }
  }

  awaitAudio() {
    this.audioFlowing = false;
    this.render();
    this.panel.say(CONNECTING, { loud: true });
    clearTimeout(this.stillConnectingTimer);
    this.stillConnectingTimer = setTimeout(() => this.checkAudio(), STILL_CONNECTING_MS);
  }

  // Still no word that the sound arrived: ask the server (in case the event went missing), and say so plainly.
  async checkAudio() {
    const sessionId = this.sessionId;
    const status = await api(`/api/stream/status/${encodeURIComponent(this.panel.username)}/`).catch(() => null);
    if (!this.panel.isLive || this.audioFlowing || this.sessionId !== sessionId) return;
    if (status?.audio_started && status.session_id === sessionId) {
      this.audioArrived();
      return;
    }
    if (this.sendsAudio) this.panel.say(STILL_CONNECTING);
    this.stillConnectingTimer = setTimeout(() => this.checkAudio(), STILL_CONNECTING_MS);
  }

  // While live: ask the server to switch noise removal; the box shows what is in force, whatever the answer.
  async switchDenoise(on) {
    this.switchingDenoise = true;
    this.render();
    this.panel.showError("");
    try {
      const switched = await api("/api/stream/denoise/", { method: "POST", body: { denoise: on } });
      this.denoise.checked = switched.denoise;
      this.panel.say(switched.denoise ? "Denoise is on. Your friends hear you without background noise."
        : "Denoise is off. Your friends hear your microphone as it is.", { loud: true });
    } catch (error) {
      this.denoise.checked = !on;
      this.panel.showError(`Denoise was not switched ${on ? "on" : "off"}: ${error.plainWords ?? error.message}`);
    } finally {
      this.switchingDenoise = false;
      this.render();
    }
  }

  async start() {
    this.button.disabled = true;
    this.starting = true;
    this.panel.showError("");
    this.panel.say("Asking for your microphone…");
    let started;
    try {
      this.microphone = await openMicrophone();
      // The time zone titles the recording by the broadcaster's own clock ("Tuesday evening live").
      const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone ?? "";
      started = await api("/api/stream/start/", {
        method: "POST", body: { denoise: this.denoise.checked, time_zone: timeZone },
      });
    } catch (error) {
      this.releaseMicrophone();
      this.starting = false;
      this.button.disabled = false;
      this.panel.say("You are not live.");
      this.panel.showError(error.plainWords ?? error.message);
      // Another tab went live at the same moment: show its stream.
      const startedMeanwhile = this.startedMeanwhile;
      this.startedMeanwhile = null;
      if (startedMeanwhile) this.startedSomewhere(startedMeanwhile);
      return;
    }
    this.sessionId = started.session_id;
    claimTab(this.sessionId);
    this.sending = await takeSendingLock(this.sessionId); // a new stream's lock is free at once
    this.starting = false;
    this.startedMeanwhile = null;
    this.muted = false;
    this.panel.setLive(true);
    this.button.disabled = false;
    this.awaitAudio();
    await this.connectAudio({ reconnecting: false });
  }

  async connectAudio({ reconnecting, retryUntil = Date.now() + RECONNECT_PATIENCE_MS }) {
    if (this.connecting) return;
    this.connecting = true;
    let retry = false;
    try {
      this.microphone ??= await openMicrophone();
      this.followMute(this.muted);
      this.meter.attach(this.microphone);
      const peer = this.peer = await newPeerConnection();
      for (const track of this.microphone.getAudioTracks()) peer.addTrack(track, this.microphone);
      peer.addEventListener("connectionstatechange", () => {
        if (peer === this.peer && peer.connectionState === "failed" && this.sendsAudio) this.reconnectAudio();
      });
      await negotiate(peer, "/api/stream/offer/");
      if (reconnecting && this.sendsAudio) {
        this.panel.showError("");
        this.panel.say(this.audioFlowing ? "You are live. Your microphone is connected again." : CONNECTING,
          { loud: true });
      }
    } catch (error) {
      if (!this.sendsAudio) { // the stream ended meanwhile; the page already says so
        this.releaseMicrophone();
        return;
      }
      // The server may not yet have let go of this tab's previous connection (409), or may be restarting (0, 5xx):
      // keep offering for a while.
      const passing = error.status === 409 || error.status === 0 || error.status >= 500;
      if (reconnecting && passing && Date.now() < retryUntil) {
        this.peer?.close();
        this.peer = null;
        this.panel.say("Reconnecting your microphone…");
        retry = true;
      } else {
        this.panel.showError(error.plainWords ?? `Your audio could not be sent to the server: ${error.message}`);
      }
    } finally {
      this.connecting = false;
    }
    if (!retry) return;
    setTimeout(() => { if (this.sendsAudio) this.connectAudio({ reconnecting, retryUntil }); }, RECONNECT_RETRY_MS);
  }

  // A fresh offer for the same stream, e.g. after the server restarted while the stream stayed live.
  reconnectAudio() {
    if (this.connecting) return;
    this.peer?.close();
    this.peer = null;
    this.connectAudio({ reconnecting: true });
  }

  async stop() {
    this.button.disabled = true;
    this.stopping = true;
    try {
      await api("/api/stream/stop/", { method: "POST", body: { duration: this.panel.elapsedSeconds() } });
    } catch (error) {
      // 409 means it had already ended (the server ends abandoned streams); the page just catches up.
      if (error.status !== 409) {
        this.stopping = false;
        this.panel.showError(error.message);
        this.button.disabled = false;
        return;
      }
    }
    this.stopping = false;
    this.finish(endedMessage("stopped"));
  }

  // The server's view, each time the stream socket (re)connects.
  showStatus(status, afterOutage) {
    if (this.starting) return; // the start's own answer decides
    if (!status.is_streaming) {
      if (this.panel.isLive && !this.stopping) {
        this.finish(afterOutage ? "Your stream ended while Quietcast could not be reached. "
          + "Any recording is saved below." : endedMessage());
      } else if (afterOutage) {
        this.panel.say("You are not live.");
      }
      return;
    }
    if (!this.panel.isLive || status.session_id !== this.sessionId) {
      this.startedSomewhere(status);
      return;
    }
    if (typeof status.denoise === "boolean" && !this.switchingDenoise) this.denoise.checked = status.denoise;
    if (!this.switchingMute) this.followMute(Boolean(status.muted));
    if (status.audio_started) this.audioArrived();
    if (!afterOutage) return;
    if (this.sendsAudio) {
      this.panel.say("You are live. Reconnecting your microphone…");
      this.reconnectAudio();
    } else {
      this.showLiveElsewhere();
    }
  }

  // A stream started: this tab's own (already shown), or one started in another tab.
  startedSomewhere(stream) {
    const { session_id: sessionId, started_at: startedAt, denoise } = stream;
    if (this.starting) {
      this.startedMeanwhile = stream;
      return;
    }
    if (this.panel.isLive && sessionId === this.sessionId) return;
    this.releaseMicrophone();
    this.stopSending();
    this.sessionId = sessionId;
    this.muted = Boolean(stream.muted);
    this.audioFlowing = Boolean(stream.audio_started); // else the server says when it arrives (audio_started)
    this.panel.setLive(true, startedAt ? secondsSince(startedAt) : 0);
    if (typeof denoise === "boolean") this.denoise.checked = denoise;
    this.render();
    this.showLiveElsewhere();
  }

  showLiveElsewhere() {
    this.panel.say("You are live in another tab or on another device. Stop Streaming here ends that stream.",
      { loud: true });
  }

  endedOnServer(reason) {
    // This tab's own Stop finishes when its request returns.
    if (this.panel.isLive && !this.stopping) this.finish(endedMessage(reason));
  }

  finish(message) {
    clearTimeout(this.stillConnectingTimer);
    this.releaseMicrophone();
    this.stopSending();
    this.sessionId = null;
    this.muted = false;
    this.panel.setLive(false);
    this.render();
    this.button.disabled = false;
    this.panel.say(message, { loud: true });
    this.onEnded();
  }

  stopSending() {
    if (this.sending === null) return;
    this.sending();
    this.sending = null;
    forgetTab();
  }

  releaseMicrophone() {
    this.meter.detach();
    this.peer?.close();
    this.peer = null;
    for (const track of this.microphone?.getTracks() ?? []) track.stop();
    this.microphone = null;
  }

  // Leaving for another Quietcast page ends the stream, so ask first. Reloading is not asked about: the reloaded
  // page carries on. Closing the tab is not either: the server ends the stream shortly after the page goes.
  askBeforeLeaving() {
    document.addEventListener("click", (event) => {
      const link = event.target.closest("a[href]");
      if (!link || event.defaultPrevented || !this.sendsAudio || this.leaving) return;
      // Opening a link in a new tab or window, or downloading, leaves this page where it is.
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
      if ((link.target && link.target !== "_self") || link.hasAttribute("download")) return;
      const destination = new URL(link.href, location.href);
      if (destination.origin !== location.origin) return;
      if (destination.pathname === location.pathname && destination.search === location.search) return;
      event.preventDefault();
      if (!window.confirm(LEAVING_WARNING)) return;
      this.leaving = true;
      this.endBecauseLeaving().finally(() => location.assign(destination.href));
    });
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (event.defaultPrevented || !this.sendsAudio || this.leaving) return;
      event.preventDefault();
      if (!window.confirm(LEAVING_WARNING)) return;
      this.leaving = true;
      // Signing out ends the stream on the server (it knows why); any other form leaves the page, so end it first.
      if (form.matches("[data-logout]")) form.submit();
      else this.endBecauseLeaving().finally(() => form.submit());
    });
  }

  endBecauseLeaving() {
    return api("/api/stream/stop/", {
      method: "POST", body: { duration: this.panel.elapsedSeconds(), reason: "tab_closed" },
    }).catch(() => {});
  }
}
