// Home page: the friends sidebar follows the presence socket (LIVE badges, friends added and removed). Going live
// is announced by the live notifier on every page (notify.js); stopping is announced here.

import { announce } from "./announce.js";
import { friendList, watchPresence } from "./presence.js";

const friends = friendList();
watchPresence({
  initiallyLive: friends.initiallyLive,
  onLiveChange(username, isLive) {
    friends.update(username, isLive);
    if (!isLive) announce(`${username} stopped streaming.`);
  },
  onFriendsChanged: (username, areFriends, isStreaming) => friends.setFriend(username, areFriends, isStreaming),
});
