// The room's WebSocket (docs/WEBSOCKET.md), DOM-free: one socket at a time,
// reconnects with jittered exponential backoff, frames parsed before they
// reach the page. The WebSocket constructor, timers and randomness are
// injectable so node --test can drive it.

export const RECONNECT_MIN_MS = 500;
export const RECONNECT_MAX_MS = 10000;

/** The backoff before reconnect attempt n (0-based): half fixed, half random, capped. */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt);
  // Jitter spreads out reconnects when a server restart drops everyone.
  return base / 2 + random() * (base / 2);
}

/** A server frame {event, data}, or null for anything else. data is always an object. */
export function parseFrame(raw) {
  let frame;
  try {
    frame = JSON.parse(raw);
  } catch {
    return null; // not ours to interpret
  }
  if (!frame || typeof frame !== "object" || typeof frame.event !== "string") return null;
  const data = frame.data !== null && typeof frame.data === "object" ? frame.data : {};
  return { event: frame.event, data };
}

/**
 * Live keeps the room's socket open while the page wants it: onOpen(socket)
 * after each upgrade, onFrame({event, data}) per server frame, onClose(socket)
 * when one drops (then it reconnects by itself until stop()).
 */
export class Live {
  constructor({ url, onOpen, onFrame, onClose, WebSocketImpl = globalThis.WebSocket, timers = globalThis, random = Math.random }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onFrame = onFrame;
    this.onClose = onClose;
    this.WebSocketImpl = WebSocketImpl;
    this.timers = timers;
    this.random = random;
    this.socket = null;
    this.attempt = 0;
    this.retryHandle = 0;
    this.stopped = false;
  }

  get open() {
    return this.socket !== null && this.socket.readyState === 1; // WebSocket.OPEN
  }

  connect() {
    this.timers.clearTimeout(this.retryHandle);
    if (this.stopped || this.socket) return;
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url());
    } catch {
      // A browser or an extension that forbids sockets: the page sends by POST.
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.onOpen(socket);
    });
    socket.addEventListener("message", (e) => {
      if (this.socket !== socket) return;
      const frame = parseFrame(e.data);
      if (frame) this.onFrame(frame);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) {
        this.onClose(socket, { current: false });
        return;
      }
      this.socket = null;
      if (this.stopped) return;
      this.onClose(socket, { current: true });
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.timers.clearTimeout(this.retryHandle);
    const delay = backoffDelay(this.attempt, this.random);
    this.attempt++;
    this.retryHandle = this.timers.setTimeout(() => this.connect(), delay);
  }

  /** Reconnect right away (network back, tab visible again) if no socket is up. */
  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.connect();
  }

  /**
   * A socket that may be dead without knowing it (the network went away
   * and came back): close it and open a fresh one at once.
   */
  renew() {
    if (this.stopped) return;
    const socket = this.socket;
    if (socket) {
      this.socket = null;
      try {
        socket.close(1000);
      } catch {
        // already closing
      }
      this.onClose(socket, { current: true });
    }
    this.attempt = 0;
    this.connect();
  }

  /** Sends one client frame; false when there is no open socket. */
  send(frame) {
    if (!this.open) return false;
    try {
      this.socket.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  stop() {
    this.stopped = true;
    this.timers.clearTimeout(this.retryHandle);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000);
  }
}
