// A JSON WebSocket that reconnects with growing delays (1 s, 2 s, 4 s … up to 30 s) until closed on purpose.

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

export class ReconnectingSocket {
  constructor(path, { onMessage, onOpen = () => {}, onDown = () => {} }) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onDown = onDown;
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
    this.socket.addEventListener("close", () => {
      if (this.closedOnPurpose) return;
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
