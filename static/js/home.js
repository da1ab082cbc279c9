// Home page: LIVE badges in the friends sidebar follow the presence socket.

import { announce } from "./announce.js";
import { friendBadges, watchPresence } from "./presence.js";

const badges = friendBadges();
watchPresence({
  initiallyLive: badges.initiallyLive,
  onLiveChange(username, isLive) {
    badges.update(username, isLive);
    announce(isLive ? `${username} is live now.` : `${username} stopped streaming.`);
  },
});
