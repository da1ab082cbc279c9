// A person's page, for them or a friend: the Live card and the Recordings card.

import { Broadcaster } from "./broadcast.js";
import { LevelStrip } from "./level-strip.js";
import { Listener } from "./listen.js";
import { watchPresence } from "./presence.js";
import { RecordingList } from "./recordings.js";

const streamCard = document.querySelector("[data-stream-panel]");
const recordingsCard = document.querySelector("[data-recordings]");
const owner = streamCard.dataset.username;
const recordings = new RecordingList(recordingsCard);

// The Live card follows its own stream socket, which reports the stream's start and end as the server sees them.
if (streamCard.dataset.role === "owner") {
  new Broadcaster(streamCard, { onEnded: () => recordings.refresh().catch(() => {}) });
} else {
  // `?listen=1`: the Listen button of a live notification brought the person here.
  const query = new URLSearchParams(location.search);
  const listenNow = query.has("listen");
  if (listenNow) history.replaceState(null, "", location.pathname);
  new Listener(streamCard, { listenNow });
  new LevelStrip(streamCard.querySelector("[data-level-strip]"), streamCard.querySelector("[data-live-audio]"));
}

// Also keeps the broadcaster's presence open: a live stream with no open page is ended by the server.
watchPresence({
  onRecordingSaved(username, recording) {
    if (username === owner) recordings.add(recording);
  },
  onRecordingUpdated(username, recording) {
    if (username === owner) recordings.update(recording);
  },
  onRecordingDeleted(username, id) {
    if (username === owner) recordings.forget(id);
  },
});
