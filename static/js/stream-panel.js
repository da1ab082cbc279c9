// The "Live" card shared by the broadcaster's and the listener's page: live state in words, the mm:ss timer,
// the listener count, and the `/ws/stream/<username>/` socket that reports the stream's life as the server sees
// it: its status on every (re)connect, its start, its listeners and its end with a reason, and whether the
// broadcaster muted it (a MUTED badge on everyone's card; the owner's card also names who listens).

import { announce } from "./announce.js";
import { formatDuration } from "./format.js";
import { ReconnectingSocket } from "./socket.js";

export class StreamPanel {
  // `onStatus(status, { afterOutage })`: the server's view on each connect; `afterOutage` when the socket had
  // been lost since the last one. `onStarted(message)`, `onEnded(reason)`: the stream's start and end.
  // `onDown()`: the server cannot be reached (the socket retries). `onRefused(code)`: the server will not let
  // this page watch any more (e.g. no longer friends). `onDenoiseMode(denoised)`: the server paused (busy) or
  // resumed noise removal for the stream. `onDenoiseSwitched(denoise)`: the owner switched noise removal while
  // live (from this page or another). `onMuted(muted)`: the broadcaster muted or unmuted the stream.
  // `onAudioStarted(message)`: the server received the stream's first audio (the owner's pages only).
  constructor(panel, {
    onStatus = () => {}, onStarted = () => {}, onEnded = () => {}, onDown = () => {}, onRefused = () => {},
    onDenoiseMode = () => {}, onDenoiseSwitched = () => {}, onMuted = () => {}, onAudioStarted = () => {},
  } = {}) {
    this.panel = panel;
    this.username = panel.dataset.username;
    this.stateText = panel.querySelector("[data-stream-state]");
    this.timer = panel.querySelector("[data-stream-timer]");
    this.listeners = panel.querySelector("[data-listener-count]");
    this.listenerNames = panel.querySelector("[data-listener-names]");
    this.mutedBadge = panel.querySelector("[data-muted-badge]");
    this.muted = this.mutedBadge ? !this.mutedBadge.hidden : false;
    this.error = panel.querySelector("[data-stream-error]");
    this.isLive = panel.dataset.live === "true";
    this.timerInterval = null;
    this.startedAtMark = null;
    this.outage = false;
    if (this.isLive) this.startTimer(initialElapsedSeconds(panel));
    this.socket = new ReconnectingSocket(`/ws/stream/${encodeURIComponent(this.username)}/`, {
      onMessage: (message) => {
        if (message.type === "stream_status") {
          const afterOutage = this.outage;
          this.outage = false;
          this.setListeners(message.listeners ?? 0, message.listener_names);
          this.setMuted(Boolean(message.is_streaming && message.muted));
          onStatus(message, { afterOutage });
        } else if (message.type === "stream_started") {
          this.setMuted(false);
          onStarted(message);
        } else if (message.type === "listener_joined" || message.type === "listener_left") {
          this.setListeners(message.count, message.names);
        } else if (message.type === "mute_changed") {
          this.setMuted(message.muted, { loud: true });
          onMuted(message.muted);
        } else if (message.type === "audio_started") {
          onAudioStarted(message);
        } else if (message.type === "stream_ended") {
          onEnded(message.reason);
        } else if (message.type === "denoise_mode_changed") {
          onDenoiseMode(message.denoised);
        } else if (message.type === "denoise_switched") {
          onDenoiseSwitched(message.denoise);
        }
      },
      onDown: () => {
        this.outage = true;
        onDown();
      },
      onRefused,
    });
  }

  say(text, { loud = false } = {}) {
    this.stateText.textContent = text;
    if (loud) announce(text);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  setLive(isLive, elapsedSeconds = 0) {
    this.isLive = isLive;
    this.panel.dataset.live = String(isLive);
    this.panel.classList.toggle("is-live", isLive);
    if (isLive) this.startTimer(elapsedSeconds);
    else this.stopTimer();
    if (!isLive) {
      this.setListeners(0, []);
      this.setMuted(false);
    }
  }

  // `names` (who listens, each once) come to the owner's pages only; friends' pages get the count.
  setListeners(count, names) {
    if (!this.listeners) return;
    this.listeners.textContent = count === 1 ? "1 listener" : `${count} listeners`;
    if (!this.listenerNames || !Array.isArray(names)) return;
    this.listenerNames.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      item.textContent = name;
      return item;
    }));
  }

  setMuted(muted, { loud = false } = {}) {
    const changed = muted !== this.muted;
    this.muted = muted;
    if (this.mutedBadge) this.mutedBadge.hidden = !muted;
    // The owner's own page says it in its state line.
    if (!loud || !changed || this.panel.dataset.role === "owner") return;
    announce(muted ? `${this.username} muted their microphone.` : `${this.username} unmuted their microphone.`);
  }

  startTimer(elapsedSeconds) {
    this.stopTimer();
    // performance.now() is monotonic: changing the computer's clock mid-stream does not move the timer.
    this.startedAtMark = performance.now() - elapsedSeconds * 1000;
    const tick = () => { this.timer.textContent = formatDuration(this.elapsedSeconds()); };
    tick();
    this.timerInterval = setInterval(tick, 250);
  }

  stopTimer() {
    clearInterval(this.timerInterval);
    this.timerInterval = null;
    this.startedAtMark = null;
    this.timer.textContent = formatDuration(0);
  }

  elapsedSeconds() {
    return this.startedAtMark === null ? 0 : (performance.now() - this.startedAtMark) / 1000;
  }
}

// Seconds the stream had been live when the server rendered the page, plus the time the page took to load.
// Both instants come from the server's clock, so a wrong clock on this device does not skew the timer.
function initialElapsedSeconds(panel) {
  const startedAt = Date.parse(panel.dataset.startedAt);
  const renderedAt = Date.parse(panel.dataset.renderedAt);
  if (Number.isNaN(startedAt) || Number.isNaN(renderedAt)) return 0;
  const sinceNavigation = performance.now() / 1000;
  return Math.max(0, (renderedAt - startedAt) / 1000 + sinceNavigation);
}

// Seconds since `startedAt` (ISO) by this device's clock, for streams that start while the page is open.
export function secondsSince(startedAt) {
  return Math.max(0, (Date.now() - Date.parse(startedAt)) / 1000);
}
