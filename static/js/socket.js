// A JSON WebSocket that reconnects with growing delays (1 s, 2 s, 4 s … up to 30 s) until closed on purpose,
// or until the server refuses this page for good (signed out, or no longer allowed to watch).

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// Close codes the server uses when reconnecting cannot help.
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_FORBIDDEN = 4403;
const FINAL_CLOSE_CODES = new Set([CLOSE_UNAUTHENTICATED, CLOSE_FORBIDDEN]);

export class ReconnectingSocket {
  // `onDown` runs each time the connection is lost (and will be retried); `onRefused(code)` once when the server
  // closed it with a final code.
  constructor(path, { onMessage, onOpen = () => {}, onDown = () => {}, onRefused = () => {} }) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onDown = onDown;
    this.onRefused = onRefused;
    this.delay = FIRST_DELAY_MS;
    this.closedOnPurpose = false;
    this.connect();
  }

  connect() {
    this.socket = new WebSocket(this.url);
    this.socket.addEventListener("open", () => {
      this.delay = FIRST_DELAY_MS;
      this.onOpen();
    });
    this.socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      this.onMessage(message);
    });
    this.socket.addEventListener("close", (event) => {
      if (this.closedOnPurpose) return;
      if (FINAL_CLOSE_CODES.has(event.code)) {
        this.closedOnPurpose = true;
        this.onRefused(event.code);
        return;
      }
      this.onDown();
      this.retryTimer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, MAX_DELAY_MS);
    });
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (this.isOpen) this.socket.send(JSON.stringify(message));
  }

  close() {
    this.closedOnPurpose = true;
    clearTimeout(this.retryTimer);
    this.socket?.close();
  }
}
