// Which friends are live, kept current by the presence socket, or by polling while the socket is down.

import { api } from "./api.js";
import { ReconnectingSocket } from "./socket.js";

const POLL_INTERVAL_MS = 5000;

// `initiallyLive`: usernames the page was rendered with, so only real changes are reported.
// `onLiveChange(username, isLive)` runs for each change; `onRecordingSaved(username, recording)` for new recordings,
// `onRecordingUpdated(username, recording)` for renamed ones, `onRecordingDeleted(username, id)` for deleted ones.
export function watchPresence({
  initiallyLive = [],
  onLiveChange = () => {},
  onRecordingSaved = () => {},
  onRecordingUpdated = () => {},
  onRecordingDeleted = () => {},
}) {
  const live = new Set(initiallyLive);
  let pollTimer = null;

  function setLive(username, isLive) {
    if (live.has(username) === isLive) return;
    if (isLive) live.add(username); else live.delete(username);
    onLiveChange(username, isLive);
  }

  function replaceAll(usernames) {
    const now = new Set(usernames);
    for (const username of [...live]) if (!now.has(username)) setLive(username, false);
    for (const username of now) setLive(username, true);
  }

  async function poll() {
    try {
      const { friends } = await api("/api/friends/");
      replaceAll(friends.filter((friend) => friend.is_streaming).map((friend) => friend.username));
    } catch { /* still offline: the next poll or the reconnected socket catches up */ }
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  const socket = new ReconnectingSocket("/ws/presence/", {
    onOpen: stopPolling,
    onDown() {
      if (pollTimer === null) {
        poll();
        pollTimer = setInterval(poll, POLL_INTERVAL_MS);
      }
    },
    onMessage(message) {
      if (message.type === "all_statuses") replaceAll(message.streaming_users);
      else if (message.type === "streaming_status_update") setLive(message.username, message.is_streaming);
      else if (message.type === "recording_saved") onRecordingSaved(message.username, message.recording);
      else if (message.type === "recording_updated") onRecordingUpdated(message.username, message.recording);
      else if (message.type === "recording_deleted") onRecordingDeleted(message.username, message.id);
    },
  });

  return {
    isLive: (username) => live.has(username),
    close() { stopPolling(); socket.close(); },
  };
}

// The sidebar's `data-status-for` slots: a LIVE badge next to each friend who is live.
export function friendBadges(root = document) {
  const slots = [...root.querySelectorAll("[data-status-for]")];
  return {
    initiallyLive: slots.filter((slot) => slot.querySelector(".badge.live")).map((slot) => slot.dataset.statusFor),
    update(username, isLive) {
      for (const slot of slots.filter((candidate) => candidate.dataset.statusFor === username)) {
        slot.innerHTML = isLive ? '<span class="badge live">LIVE</span>' : "";
      }
    },
  };
}
