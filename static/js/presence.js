// Which friends are live, kept current by the presence socket, or by polling while the socket is down. A page
// opens one presence socket, shared by everything on it that watches (the live notifier on every page, the page's
// own script), so a page counts once towards the server's limit on open sockets.

import { api } from "./api.js";
import { ReconnectingSocket } from "./socket.js";

const POLL_INTERVAL_MS = 5000;

const watchers = new Set();
let connection = null;

function openConnection() {
  let pollTimer = null;
  const tellWatchers = (notify) => { for (const watcher of watchers) notify(watcher); };

  async function poll() {
    try {
      const { friends } = await api("/api/friends/");
      const live = friends.filter((friend) => friend.is_streaming).map((friend) => friend.username);
      tellWatchers((watcher) => watcher.replaceAll(live));
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
    onMessage: (message) => tellWatchers((watcher) => watcher.receive(message)),
  });

  return { close() { stopPolling(); socket.close(); } };
}

// `initiallyLive`: usernames the page was rendered with, so only real changes are reported; without it, who is
// live is learnt from the server's first report, whose entries come with `{ atStart: true }`.
// `onLiveChange(username, isLive, { atStart })` runs for each change; `onRecordingSaved(username, recording)` for
// new recordings, `onRecordingUpdated(username, recording)` for renamed ones, `onRecordingDeleted(username, id)`
// for deleted ones; `onRequestsChanged(receivedCount)` when requests to this person come or go;
// `onFriendsChanged(username, areFriends, isStreaming)` when someone becomes or stops being their friend.
export function watchPresence({
  initiallyLive = null,
  onLiveChange = () => {},
  onRecordingSaved = () => {},
  onRecordingUpdated = () => {},
  onRecordingDeleted = () => {},
  onRequestsChanged = () => {},
  onFriendsChanged = () => {},
}) {
  let live = initiallyLive === null ? null : new Set(initiallyLive);

  function setLive(username, isLive, atStart = false) {
    if (live.has(username) === isLive) return;
    if (isLive) live.add(username); else live.delete(username);
    onLiveChange(username, isLive, { atStart });
  }

  const watcher = {
    replaceAll(usernames) {
      const atStart = live === null;
      live ??= new Set();
      const now = new Set(usernames);
      for (const username of [...live]) if (!now.has(username)) setLive(username, false);
      for (const username of now) setLive(username, true, atStart);
    },
    receive(message) {
      if (message.type === "all_statuses") {
        watcher.replaceAll(message.streaming_users);
      } else if (message.type === "streaming_status_update") {
        live ??= new Set();
        setLive(message.username, message.is_streaming);
      } else if (message.type === "recording_saved") {
        onRecordingSaved(message.username, message.recording);
      } else if (message.type === "recording_updated") {
        onRecordingUpdated(message.username, message.recording);
      } else if (message.type === "recording_deleted") {
        onRecordingDeleted(message.username, message.id);
      } else if (message.type === "requests_changed") {
        onRequestsChanged(message.received);
      } else if (message.type === "friends_changed") {
        onFriendsChanged(message.username, message.are_friends, message.is_streaming);
      }
    },
  };
  watchers.add(watcher);
  connection ??= openConnection();

  return {
    isLive: (username) => live?.has(username) ?? false,
    close() {
      watchers.delete(watcher);
      if (watchers.size === 0) {
        connection.close();
        connection = null;
      }
    },
  };
}

// The sidebar's friends list: a LIVE badge next to each friend who is live, and friends added or removed as
// friendships change.
export function friendList(root = document) {
  const list = root.querySelector("#friend-list");
  const emptyNote = root.querySelector("[data-no-friends]");
  const slotsFor = (username) =>
    [...root.querySelectorAll("[data-status-for]")].filter((slot) => slot.dataset.statusFor === username);
  const setBadge = (username, isLive) => {
    for (const slot of slotsFor(username)) slot.replaceChildren(...(isLive ? [liveBadge()] : []));
  };
  return {
    initiallyLive: [...root.querySelectorAll("[data-status-for]")]
      .filter((slot) => slot.querySelector(".badge.live")).map((slot) => slot.dataset.statusFor),
    update: setBadge,
    setFriend(username, areFriends, isStreaming) {
      if (!list) return;
      const existing = [...list.children].find((item) => item.dataset.username === username);
      if (!areFriends) existing?.remove();
      else if (!existing) list.append(friendItem(username));
      if (areFriends) setBadge(username, isStreaming);
      const sorted = [...list.children].sort((a, b) => a.dataset.username.localeCompare(b.dataset.username));
      list.append(...sorted);
      list.hidden = list.children.length === 0;
      if (emptyNote) emptyNote.hidden = !list.hidden;
    },
  };
}

function liveBadge() {
  const badge = document.createElement("span");
  badge.className = "badge live";
  badge.textContent = "LIVE";
  return badge;
}

// The same markup as templates/friends/sidebar.html renders for each friend.
function friendItem(username) {
  const item = document.createElement("li");
  item.dataset.username = username;
  const link = document.createElement("a");
  link.href = `/user/${encodeURIComponent(username)}/`;
  link.textContent = username;
  const slot = document.createElement("span");
  slot.className = "status-slot";
  slot.dataset.statusFor = username;
  item.append(link, slot);
  return item;
}
