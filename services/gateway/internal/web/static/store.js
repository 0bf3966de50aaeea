// The room's messages, DOM-free: ordered by seq, de-duplicated by id, with
// the contiguous mark that tells a gap, the outbox of own messages not
// stored yet and the held copies that may be our own. It tells a view what
// to show through four calls and never touches the DOM itself (room.js is
// the view; ui/test/store.test.js another).
//
// One shown message is an entry {msg, own, state, ...}. Messages from the
// server have msg.id and msg.seq. A message composed here is shown at once,
// before the server has it: it carries clientId and state ("sending",
// "sent" or "failed"), and has no id or seq until the server's answer (ack,
// POST reply) says which message it is.

/**
 * @typedef {object} View
 * @property {(entry: object, before: object|null) => void} insert  a new entry, shown before `before` (null: last)
 * @property {(entry: object, before: object|null) => void} move    an entry that got its seq moves
 * @property {(entry: object) => void} remove                       an entry goes (a copy of another)
 * @property {(entry: object) => void} update                       its sender, time or state changed
 */

/** A message from the server: an object with a non-empty id. */
export function isMessage(m) {
  return m !== null && typeof m === "object" && typeof m.id === "string" && m.id !== "";
}

/** The API marks the caller's own messages with their member marker. */
export function hasOwnToken(msg) {
  return typeof msg.token === "string" && msg.token !== "";
}

function seqOf(msg) {
  return Number.isFinite(msg.seq) ? msg.seq : Number.MAX_SAFE_INTEGER;
}

export class MessageStore {
  /** @param {{username: string, view: View}} opts */
  constructor({ username, view }) {
    this.username = username;
    this.view = view;
    this.entries = []; // ordered by seq; messages not stored yet come last, in the order written
    this.byId = new Map(); // id -> entry
    this.seqs = new Set();
    this.syncedSeq = 0; // every message with seq <= syncedSeq is known to be here
    this.loaded = false; // the first full load succeeded
    this.outbox = new Map(); // clientId -> own entry not known to be stored yet
    // Messages that may be our own (our name, or our token) which arrived
    // while a send is unanswered: the chat.message of a send usually comes
    // just before its ack. They wait here, unshown, for the answer that says
    // which of ours they are, so the same message never shows twice.
    this.held = new Map(); // id -> msg
    this.peerSeq = 0; // the other member has seen every message up to this seq
  }

  /** A message is ours when it carries our token or, like the original, our name. */
  isOwn(msg) {
    return hasOwnToken(msg) || msg.sender === this.username;
  }

  /** What an own message shows: sending, failed, sent, or read once the peer has seen it. */
  stateOf(entry) {
    if (entry.state === "sending" || entry.state === "failed") return entry.state;
    return Number.isFinite(entry.msg.seq) && entry.msg.seq <= this.peerSeq ? "read" : "sent";
  }

  get empty() {
    return this.entries.length === 0;
  }

  /** A seq beyond the next expected one: something was missed. */
  isGap(seq) {
    return this.loaded && Number.isFinite(seq) && seq > this.syncedSeq + 1;
  }

  /** Records a seq as known, advancing the contiguous mark. */
  noteSeq(seq) {
    if (!Number.isFinite(seq)) return;
    this.seqs.add(seq);
    while (this.seqs.has(this.syncedSeq + 1)) this.syncedSeq++;
  }

  /**
   * A page of the list from the server, complete after our mark: we are
   * complete up to the newest seq it holds. Returns the entries newly shown.
   */
  loadPage(list) {
    this.loaded = true;
    const shown = this.add(list);
    for (const m of list) {
      if (isMessage(m) && Number.isFinite(m.seq) && m.seq > this.syncedSeq) this.syncedSeq = m.seq;
    }
    return shown;
  }

  /** Adds messages from the server; returns the entries newly shown. */
  add(list) {
    const shown = [];
    for (const msg of list) {
      if (!isMessage(msg)) continue;
      const entry = this.accept(msg);
      if (entry) shown.push(entry);
    }
    return shown;
  }

  /** Index at which entry belongs, by seq (unsent ones go last). */
  slotFor(entry) {
    const seq = seqOf(entry.msg);
    let i = this.entries.length;
    while (i > 0 && seqOf(this.entries[i - 1].msg) > seq) i--; // usually appends
    return i;
  }

  insert(entry) {
    const i = this.slotFor(entry);
    const before = this.entries[i] ?? null;
    this.entries.splice(i, 0, entry);
    this.view.insert(entry, before);
  }

  removeEntry(entry) {
    const i = this.entries.indexOf(entry);
    if (i >= 0) this.entries.splice(i, 1);
    this.view.remove(entry);
  }

  /** Moves an entry that just got its seq to its place, only if it must move. */
  place(entry) {
    const i = this.entries.indexOf(entry);
    const prev = this.entries[i - 1];
    const next = this.entries[i + 1];
    const seq = seqOf(entry.msg);
    if ((!prev || seqOf(prev.msg) <= seq) && (!next || seqOf(next.msg) >= seq)) return;
    this.entries.splice(i, 1);
    const j = this.slotFor(entry);
    const before = this.entries[j] ?? null;
    this.entries.splice(j, 0, entry);
    this.view.move(entry, before);
  }

  hasSending() {
    for (const entry of this.outbox.values()) if (entry.state === "sending") return true;
    return false;
  }

  failedWithText(text) {
    for (const entry of this.outbox.values()) if (entry.state === "failed" && entry.text === text) return entry;
    return null;
  }

  /** One message from the server; returns its entry when it was new on screen. */
  accept(msg) {
    const known = this.byId.get(msg.id);
    if (known) {
      // Same message from the socket and the API: the copy with our token
      // says it is ours, so it shows as YOU.
      if (hasOwnToken(msg) && !known.own) {
        known.own = true;
        known.msg = msg;
        known.state = "sent";
        this.view.update(known);
      }
      return null;
    }
    if (this.held.has(msg.id)) {
      if (hasOwnToken(msg)) this.held.set(msg.id, msg);
      return null;
    }
    if (this.isOwn(msg)) {
      if (this.hasSending()) {
        this.held.set(msg.id, msg);
        this.noteSeq(msg.seq);
        return null;
      }
      // A send that failed (no answer in time) was stored after all.
      const failed = this.failedWithText(msg.text);
      if (failed) {
        this.confirm(failed, msg);
        return null;
      }
    }
    const entry = { msg, own: this.isOwn(msg), state: "sent" };
    this.insert(entry);
    this.byId.set(msg.id, entry);
    this.noteSeq(msg.seq);
    return entry;
  }

  /** Shows the held messages once no send is waiting for its answer; returns those shown. */
  flushHeld() {
    if (this.held.size === 0 || this.hasSending()) return [];
    const list = [...this.held.values()].sort((x, y) => seqOf(x) - seqOf(y));
    this.held.clear();
    return this.add(list);
  }

  /** A message composed here: shown at once as sending, kept in the outbox. */
  compose({ text, clientId, now }) {
    const entry = {
      msg: { id: "", sender: this.username, text, timestamp: now },
      own: true,
      clientId,
      text,
      state: "sending",
      reason: "",
      retryable: false,
      hadFailed: false,
      attempts: 0,
      since: now,
      timer: 0,
      via: null, // the socket carrying the current attempt, "post", or null (waiting)
    };
    this.insert(entry);
    this.outbox.set(clientId, entry);
    return entry;
  }

  /** The own entry of a clientId still waiting for the server, if any. */
  pending(clientId) {
    return typeof clientId === "string" ? this.outbox.get(clientId) : undefined;
  }

  /**
   * The server has the message: the entry becomes it (and shows sent, or
   * read). Returns the entries the held copies added.
   */
  confirm(entry, msg) {
    this.outbox.delete(entry.clientId);
    this.held.delete(msg.id);
    const shown = this.byId.get(msg.id);
    if (shown && shown !== entry) {
      // Already on screen in its place (a copy that came first): keep that one.
      this.removeEntry(entry);
      if (!shown.own) {
        shown.own = true;
        if (hasOwnToken(msg)) shown.msg = msg;
        shown.state = "sent";
        this.view.update(shown);
      }
    } else {
      entry.msg = msg;
      entry.state = "sent";
      entry.via = null;
      this.byId.set(msg.id, entry);
      this.noteSeq(msg.seq);
      this.view.update(entry);
      this.place(entry);
    }
    return this.flushHeld();
  }

  /**
   * The attempt failed. A held copy with the same text says it was stored
   * after all ("confirmed"); otherwise the entry shows failed ("failed").
   * retryable failures (no answer, network) are sent again by themselves
   * once the connection is back.
   */
  fail(entry, reason, { retryable = false } = {}) {
    if (entry.state !== "sending") return "ignored";
    for (const m of this.held.values()) {
      if (m.text === entry.text) {
        this.confirm(entry, m);
        return "confirmed";
      }
    }
    entry.state = "failed";
    entry.hadFailed = true;
    entry.reason = reason;
    entry.retryable = retryable;
    entry.via = null;
    this.view.update(entry);
    this.flushHeld();
    return "failed";
  }

  /** Own failed entries that go again by themselves when the connection is back. */
  retryable() {
    return [...this.outbox.values()].filter((e) => e.state === "failed" && e.retryable);
  }

  /** chat.read: the peer has seen every message up to seq; returns how many of ours turned read. */
  peerRead(seq) {
    if (!Number.isInteger(seq) || seq <= this.peerSeq) return 0;
    const before = this.peerSeq;
    this.peerSeq = seq;
    let n = 0;
    for (const e of this.entries) {
      if (!e.own || e.state !== "sent" || !Number.isFinite(e.msg.seq)) continue;
      if (e.msg.seq > before && e.msg.seq <= seq) {
        this.view.update(e);
        n++;
      }
    }
    return n;
  }

  /**
   * What a read receipt would say: top, the newest stored seq shown, and
   * peerTop, the newest of the peer's (0: none). Only news to the peer, one
   * of their messages seen, is worth a frame.
   */
  readMarks() {
    let top = 0;
    let peerTop = 0;
    for (let i = this.entries.length - 1; i >= 0 && !(top && peerTop); i--) {
      const e = this.entries[i];
      if (!Number.isFinite(e.msg.seq)) continue;
      if (!top) top = e.msg.seq;
      if (!peerTop && !e.own) peerTop = e.msg.seq;
    }
    return { top, peerTop };
  }
}
