// On every page of a signed-in person: when a friend goes live, a toast with a Listen button, the tab title, and
// (once they allowed it) a browser notification. The Requests count in the navigation follows requests as they
// come and go.

import { announce } from "./announce.js";
import { watchPresence } from "./presence.js";

const baseTitle = document.title;
// Friends live now, in the order they went live.
const liveFriends = [];
const toasts = new Map();
let toastRegion;

function listenUrl(username) {
  return `/user/${encodeURIComponent(username)}/?listen=1`;
}

// The page already is this friend's, with its own Live card saying so.
function isPageOf(username) {
  return [...document.querySelectorAll("[data-stream-panel]")].some((card) => card.dataset.username === username);
}

function liveTitle() {
  if (liveFriends.length === 0) return baseTitle;
  const [first, ...others] = liveFriends;
  const who = others.length === 0 ? `${first} is`
    : others.length === 1 ? `${first} and ${others[0]} are` : `${first} and ${others.length} more are`;
  return `● ${who} live — ${baseTitle}`;
}

function showToast(username) {
  toastRegion ??= document.body.appendChild(Object.assign(document.createElement("div"), { className: "toasts" }));
  announce(`${username} is live now.`);
  toasts.get(username)?.remove();
  const toast = document.createElement("div");
  toast.className = "toast";
  toast.dataset.liveToast = username;
  const text = document.createElement("p");
  const name = document.createElement("strong");
  name.textContent = username;
  text.append(name, " is live now.");
  const listen = document.createElement("a");
  listen.className = "button primary";
  listen.href = listenUrl(username);
  listen.textContent = "Listen";
  listen.setAttribute("aria-label", `Listen to ${username}`);
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "link-button";
  dismiss.textContent = "Dismiss";
  dismiss.setAttribute("aria-label", `Dismiss: ${username} is live`);
  dismiss.addEventListener("click", () => removeToast(username));
  toast.append(text, listen, dismiss);
  toastRegion.append(toast);
  toasts.set(username, toast);
}

function removeToast(username) {
  toasts.get(username)?.remove();
  toasts.delete(username);
}

// Browser notifications need a secure page (https or localhost) and the person's permission, which the browser
// asks for only in answer to a click.
const canNotify = "Notification" in window && window.isSecureContext;

function notifyBrowser(username) {
  if (!canNotify || Notification.permission !== "granted") return;
  let notification;
  try {
    // One tag per friend: several open tabs show one notification, not one each.
    notification = new Notification(`${username} is live on Quietcast`, {
      body: "Click to listen.",
      tag: `quietcast-live-${username}`,
      icon: "/static/favicon.svg",
    });
  } catch {
    return; // Chrome on Android shows notifications only from a service worker: the toast has to do there
  }
  notification.addEventListener("click", () => {
    window.focus();
    location.assign(listenUrl(username));
    notification.close();
  });
}

function offerNotifications() {
  const nav = document.querySelector(".topbar nav");
  if (!canNotify || Notification.permission !== "default" || !nav) return;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link-button";
  button.dataset.notifyOptIn = "";
  button.textContent = "Notify me when friends go live";
  button.addEventListener("click", async () => {
    const answer = await Notification.requestPermission();
    if (answer !== "default") button.remove();
  });
  nav.prepend(button);
}

function showRequestCount(received) {
  const link = document.querySelector("[data-requests-link]");
  if (!link) return;
  let count = link.querySelector(".count");
  if (received > 0) {
    if (!count) {
      count = document.createElement("span");
      count.className = "count";
      link.append(" ", count);
    }
    count.textContent = String(received);
    count.setAttribute("aria-label", `${received} pending`);
  } else {
    count?.remove();
  }
}

watchPresence({
  onLiveChange(username, isLive, { atStart }) {
    const index = liveFriends.indexOf(username);
    if (isLive && index === -1) liveFriends.push(username);
    if (!isLive && index !== -1) liveFriends.splice(index, 1);
    document.title = liveTitle();
    if (!isLive) {
      removeToast(username);
    } else if (!atStart) {
      if (!isPageOf(username)) showToast(username);
      notifyBrowser(username);
    }
  },
  onRequestsChanged: showRequestCount,
});
offerNotifications();
