// One room's end-to-end session, DOM-free: this browser's key pair for the
// room (kept in a vault, see vault.js), the other member's keys as they
// arrive in chat.key frames, the checks that make a swapped key show, and
// sealing and opening messages (crypto.js). The page draws what state()
// says and sends what send() is given; node --test drives two sessions
// through a relay of its own, honest or not.
//
// The checks:
// - pin: the share link's fragment carries the fingerprint of the key of
//   the member who shared it; the other member's page takes the key it
//   receives only if it matches.
// - confirm: every key frame says (peer) which key the sender holds for the
//   receiver. A page told twice in a row, with its own key sent in between,
//   that the other holds another key for it knows the relay handed out a
//   different key.
// - changed: a second key for the other member (their other device, or a
//   relay's) after a first.
// Any of them blocks sending until the person chooses to trust the key
// (after comparing the short authentication string, shown on both pages).

import {
  ReplayGuard,
  deriveKeys,
  fingerprint,
  fingerprintText,
  fromB64u,
  generateKeyPair,
  open,
  parseEnvelope,
  sasIndices,
  seal,
  toB64u,
  validPublicKey,
} from "./crypto.js";

/** Where a message stands once the session has looked at it. */
export const OPENED = "ok";

// The rules a sender name and a text follow (as the server's for plain
// rooms: it cannot check sealed ones, so the receiving page does).
const MAX_SENDER = 100;
const MAX_TEXT = 1000;
// The page labels one's own messages YOU: the other must not look like us.
const RESERVED_NAME = "you";
const MISLEADING = /[\p{Cc}\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C\u2028\u2029\u200B\uFEFF]/u;

/** Whether an opened message may be shown as it is (the server's rules for plain text). */
export function wellFormed({ sender, text }) {
  return (
    typeof sender === "string" && typeof text === "string" &&
    sender.trim() !== "" && sender.length <= MAX_SENDER && !MISLEADING.test(sender) &&
    sender.trim().toLowerCase() !== RESERVED_NAME &&
    text.trim() !== "" && text.length <= MAX_TEXT
  );
}

/**
 * E2ESession is one page's side of a room. send(frame) puts a client frame
 * on the socket (false when there is none); onChange() is called whenever
 * state() may have changed.
 */
export class E2ESession {
  constructor({ roomId, vault, send, onChange = () => {}, now = Date.now, prefer }) {
    this.roomId = roomId;
    this.vault = vault;
    this.sendFrame = send;
    this.onChange = onChange;
    this.now = now;
    this.prefer = prefer;
    this.own = null; // {alg, raw, privateKey, fp, fpText}
    this.peers = new Map(); // fpText -> {alg, raw, fp, keys promise}
    this.order = []; // fpTexts of the other member's keys, as they came
    this.pin = "";
    this.trusted = new Set();
    this.wrongPending = false; // told once that the other holds another key for us
    this.confirmFailed = false;
    this.guard = new ReplayGuard();
    this.sas = null;
  }

  /**
   * Loads this browser's record of the room, or makes a key pair and one.
   * pin is the fingerprint from the link's fragment ("" for none);
   * expiresAt the room's deadline (ms), when the record may go.
   */
  async start({ pin = "", expiresAt }) {
    let record = await this.vault.get(this.roomId);
    if (!record) {
      const pair = await generateKeyPair(this.prefer);
      record = {
        roomId: this.roomId, alg: pair.alg, privateKey: pair.privateKey, raw: pair.raw,
        counter: 0, peers: [], pin: "", trusted: [], expiresAt,
      };
      await this.vault.put(record);
    }
    const fp = await fingerprint(record.alg, record.raw);
    this.own = { alg: record.alg, raw: record.raw, privateKey: record.privateKey, fp, fpText: toB64u(fp) };
    // The first link's fingerprint stays the one checked; one's own (the
    // link this page shared) checks nothing.
    this.pin = record.pin || (pin && pin !== this.own.fpText ? pin : "");
    if (this.pin !== record.pin || (expiresAt && record.expiresAt !== expiresAt)) {
      await this.vault.update(this.roomId, (r) => {
        r.pin = this.pin;
        if (expiresAt) r.expiresAt = expiresAt;
      });
    }
    for (const t of record.trusted ?? []) this.trusted.add(t);
    for (const p of record.peers ?? []) await this.addPeer(p.alg, p.raw, { save: false });
    await this.refreshSas();
    this.onChange();
    return this;
  }

  get ownFingerprint() {
    return this.own ? this.own.fpText : "";
  }

  get current() {
    return this.order.length ? this.peers.get(this.order[this.order.length - 1]) : null;
  }

  /**
   * What the page shows: status "waiting" (no key of the other member yet),
   * "ready", "mismatch" (sending blocked; problem says why: "pin",
   * "confirm" or "changed") or "trusted" (a problem the person chose to
   * accept); sas (indices), pinned (the link's fingerprint matched).
   */
  state() {
    const cur = this.current;
    if (!cur) return { status: "waiting", sas: null, problem: "", pinned: false };
    let problem = "";
    if (this.pin && cur.fpText !== this.pin) problem = "pin";
    else if (this.confirmFailed) problem = "confirm";
    else if (!this.pin && this.order.length > 1) problem = "changed";
    let status = "ready";
    if (problem) status = this.trusted.has(cur.fpText) ? "trusted" : "mismatch";
    return { status, sas: this.sas, problem, pinned: Boolean(this.pin) && cur.fpText === this.pin };
  }

  /** Whether a message may be sealed now. */
  get canSend() {
    const s = this.state().status;
    return s === "ready" || s === "trusted";
  }

  /** The key frame this page sends: its key, and which key it holds for the other. */
  keyFrame() {
    const frame = { type: "key", alg: this.own.alg, key: toB64u(this.own.raw) };
    const cur = this.current;
    if (cur) frame.peer = cur.fpText;
    return frame;
  }

  /** Sends this page's key (on every new socket, and when the other comes online). */
  announce() {
    return this.own ? this.sendFrame(this.keyFrame()) : false;
  }

  /** chat.key from the other member. */
  async receiveKey(data) {
    if (!this.own || !data || typeof data !== "object") return;
    const raw = fromB64u(data.key);
    if (!validPublicKey(data.alg, raw) || data.alg !== this.own.alg) return; // not a key we can use
    const fpText = await fingerprintText(data.alg, raw);
    const known = this.peers.has(fpText);
    const wasCurrent = this.current?.fpText === fpText;
    if (!known) {
      try {
        await this.addPeer(data.alg, raw, { save: true });
      } catch {
        return; // not a point on the curve
      }
    } else if (!wasCurrent) {
      // An earlier key of theirs again: it is the current one once more.
      this.order = this.order.filter((f) => f !== fpText).concat(fpText);
    }
    let reply = !known || !wasCurrent;
    if (typeof data.peer === "string" && data.peer !== "") {
      if (data.peer === this.own.fpText) {
        this.wrongPending = false;
        this.confirmFailed = false;
      } else if (this.wrongPending) {
        // They were sent our key since, and still hold another.
        this.confirmFailed = true;
      } else {
        this.wrongPending = true;
        reply = true;
      }
    } else if (!this.confirmFailed) {
      reply = true; // they hold no key of ours yet
    }
    await this.refreshSas();
    if (reply) this.announce();
    this.onChange();
  }

  async addPeer(alg, raw, { save }) {
    const fp = await fingerprint(alg, raw);
    const fpText = toB64u(fp);
    if (this.peers.has(fpText)) return this.peers.get(fpText);
    const keys = await deriveKeys({ roomId: this.roomId, privateKey: this.own.privateKey, own: this.own, peer: { alg, raw } });
    const peer = { alg, raw, fp, fpText, keys };
    this.peers.set(fpText, peer);
    this.order.push(fpText);
    if (save) {
      await this.vault.update(this.roomId, (r) => {
        if (!r.peers.some((p) => toB64u(p.raw) === toB64u(raw))) r.peers.push({ alg, raw });
      });
    }
    return peer;
  }

  async refreshSas() {
    const cur = this.current;
    this.sas = cur ? await sasIndices(this.roomId, this.own, cur) : null;
  }

  /** The person trusts the other's current key despite the problem shown. */
  async trust() {
    const cur = this.current;
    if (!cur) return;
    this.trusted.add(cur.fpText);
    await this.vault.update(this.roomId, (r) => {
      if (!r.trusted.includes(cur.fpText)) r.trusted.push(cur.fpText);
    });
    this.onChange();
  }

  /** Seals sender and text for the other's current key; null when sending is not allowed now. */
  async seal(sender, text) {
    if (!this.canSend) return null;
    const cur = this.current;
    // The counter is taken in the vault's transaction: every tab of the
    // room in this browser gets its own.
    const counter = await this.vault.update(this.roomId, (r) => ++r.counter);
    if (!counter) return null;
    return seal({ key: cur.keys.send, roomId: this.roomId, senderFp: this.own.fp, receiverFp: cur.fp, counter, sender, text });
  }

  /**
   * Opens a stored message {seq, envelope}: {status: "ok", sender, text,
   * own}, or {status} "pending" (sealed by a key of the other member's not
   * here yet), "foreign" (for a key this browser does not have: another
   * device's), "forged" (changed, or from another room), "malformed",
   * "replayed" or "reordered".
   */
  async open(msg) {
    const parsed = typeof msg.envelope === "string" ? parseEnvelope(msg.envelope) : null;
    if (!parsed || !this.own) return { status: "malformed" };
    const from = toB64u(parsed.senderFp);
    const to = toB64u(parsed.receiverFp);
    let key;
    let own = false;
    if (from === this.own.fpText) {
      own = true;
      key = this.peers.get(to)?.keys.send;
      if (!key) return { status: "foreign", own };
    } else if (to === this.own.fpText) {
      key = this.peers.get(from)?.keys.receive;
      if (!key) return { status: "pending" };
    } else {
      return { status: "foreign" };
    }
    let plain;
    try {
      plain = await open({ key, roomId: this.roomId, parsed });
    } catch {
      return { status: "forged", own };
    }
    if (!wellFormed(plain)) return { status: "malformed", own };
    const order = this.guard.check(from, msg.seq, parsed.counter);
    if (order !== "ok") return { status: order, own };
    return { status: OPENED, sender: plain.sender, text: plain.text, own };
  }

  /** Forgets the room in this browser (the record, and so the private key). */
  async wipe() {
    this.own = null;
    this.peers.clear();
    this.order = [];
    await this.vault.delete(this.roomId);
  }
}
