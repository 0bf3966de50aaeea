// End-to-end encryption of a room, DOM-free (WebCrypto only, so node --test
// runs it as it is): key pairs, fingerprints, the short authentication
// string, the per-direction message keys and the sealed envelope of
// docs/WEBSOCKET.md. Nothing here keeps state but the replay guard.
//
// Keys: each member's page makes an ephemeral X25519 key pair (P-256 ECDH
// where X25519 is missing). ECDH of one's private key and the other's public
// key, through HKDF-SHA-256, gives one AES-256-GCM key per direction: the
// info names the sender's and the receiver's fingerprints, so the two
// directions never share a key.
//
// Envelope (base64url of the bytes):
//   version (1) | sender fp (16) | receiver fp (16) | counter (4, big-endian) |
//   IV (12, random) | AES-GCM(padded plaintext) with its 16-byte tag
// The AAD is "wisp-e2e-v1|<roomId>|" and the 49 header bytes: room id,
// sender and the sender's counter are bound to the ciphertext, so one moved
// to another room, claimed by the other member or replayed fails (the
// counter is checked by ReplayGuard). IVs are 96 random bits, fresh for
// every seal: no two ever meet under one key (a room holds 1000 messages).
// Plaintext: u16 sender length | sender (UTF-8) | u16 text length | text
// (UTF-8) | zeros up to a multiple of PAD bytes, so the server sees sizes
// only to that step.

const subtle = globalThis.crypto.subtle;
const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export const VERSION = 1;
export const FP_BYTES = 16; // 128-bit fingerprints
export const HEADER_BYTES = 1 + FP_BYTES + FP_BYTES + 4 + 12;
export const PAD = 64;
export const SAS_LENGTH = 7; // 7 emoji of 64: 42 bits
const TAG_BYTES = 16;
const AAD_PREFIX = "wisp-e2e-v1|";

export const ALGS = { X25519: 32, "P-256": 65 }; // raw public key lengths

// ---------- base64url ----------

/** Bytes to unpadded base64url. */
export function toB64u(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Unpadded base64url to bytes; null for anything else (padding, other alphabets, stray bits). */
export function fromB64u(s) {
  if (typeof s !== "string" || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return null;
  let bin;
  try {
    bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return null;
  }
  const out = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  return toB64u(out) === s ? out : null; // canonical only
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// ---------- Keys ----------

function algParams(alg) {
  if (alg === "X25519") return { name: "X25519" };
  if (alg === "P-256") return { name: "ECDH", namedCurve: "P-256" };
  throw new TypeError(`no key agreement ${alg}`);
}

/**
 * A new key pair: X25519, or P-256 where the browser lacks it. The private
 * key is not extractable; raw is the public key's bytes.
 */
export async function generateKeyPair(prefer = ["X25519", "P-256"]) {
  let lastError;
  for (const alg of prefer) {
    try {
      const pair = await subtle.generateKey(algParams(alg), false, ["deriveBits"]);
      const raw = new Uint8Array(await subtle.exportKey("raw", pair.publicKey));
      return { alg, privateKey: pair.privateKey, publicKey: pair.publicKey, raw };
    } catch (err) {
      lastError = err; // not supported here: try the next
    }
  }
  throw lastError;
}

/** Whether raw can be a public key of alg (its length; the import checks the point). */
export function validPublicKey(alg, raw) {
  return Object.hasOwn(ALGS, alg) && raw instanceof Uint8Array && raw.length === ALGS[alg];
}

/** The 128-bit fingerprint of a public key: SHA-256 of its algorithm and bytes, cut. */
export async function fingerprint(alg, raw) {
  const digest = await subtle.digest("SHA-256", concat(enc.encode(`wisp-fp-v1|${alg}|`), raw));
  return new Uint8Array(digest, 0, FP_BYTES).slice();
}

/** The same fingerprint as base64url (22 characters), as the share link carries it. */
export async function fingerprintText(alg, raw) {
  return toB64u(await fingerprint(alg, raw));
}

// ---------- Short authentication string ----------

// 64 emoji that read the same to most people, with their names (Matrix's
// SAS list): 6 bits each.
export const SAS_EMOJI = [
  ["🐶", "dog"], ["🐱", "cat"], ["🦁", "lion"], ["🐎", "horse"], ["🦄", "unicorn"], ["🐷", "pig"],
  ["🐘", "elephant"], ["🐰", "rabbit"], ["🐼", "panda"], ["🐓", "rooster"], ["🐧", "penguin"],
  ["🐢", "turtle"], ["🐟", "fish"], ["🐙", "octopus"], ["🦋", "butterfly"], ["🌷", "flower"],
  ["🌳", "tree"], ["🌵", "cactus"], ["🍄", "mushroom"], ["🌏", "globe"], ["🌙", "moon"],
  ["☁️", "cloud"], ["🔥", "fire"], ["🍌", "banana"], ["🍎", "apple"], ["🍓", "strawberry"],
  ["🌽", "corn"], ["🍕", "pizza"], ["🎂", "cake"], ["❤️", "heart"], ["😀", "smiley"],
  ["🤖", "robot"], ["🎩", "hat"], ["👓", "glasses"], ["🔧", "spanner"], ["🎅", "santa"],
  ["👍", "thumbs up"], ["☂️", "umbrella"], ["⌛", "hourglass"], ["⏰", "clock"], ["🎁", "gift"],
  ["💡", "light bulb"], ["📕", "book"], ["✏️", "pencil"], ["📎", "paperclip"], ["✂️", "scissors"],
  ["🔒", "lock"], ["🔑", "key"], ["🔨", "hammer"], ["☎️", "telephone"], ["🏁", "flag"],
  ["🚂", "train"], ["🚲", "bicycle"], ["✈️", "aeroplane"], ["🚀", "rocket"], ["🏆", "trophy"],
  ["⚽", "ball"], ["🎸", "guitar"], ["🎺", "trumpet"], ["🔔", "bell"], ["⚓", "anchor"],
  ["🎧", "headphones"], ["📁", "folder"], ["📌", "pin"],
];

/**
 * The short authentication string of a room's two keys: the same on both
 * pages whatever the order, different for any other key. SAS_LENGTH
 * indices into SAS_EMOJI (6 bits each, 42 bits).
 */
export async function sasIndices(roomId, a, b) {
  const [x, y] = [a, b].map((k) => ({ alg: k.alg, text: toB64u(k.raw) })).sort((p, q) => (p.text < q.text ? -1 : 1));
  const input = enc.encode(`wisp-sas-v1|${roomId}|${x.alg}:${x.text}|${y.alg}:${y.text}`);
  const digest = new Uint8Array(await subtle.digest("SHA-256", input));
  const out = [];
  for (let i = 0; i < SAS_LENGTH; i++) {
    const bit = i * 6;
    const word = (digest[bit >> 3] << 8) | digest[(bit >> 3) + 1];
    out.push((word >> (10 - (bit & 7))) & 63);
  }
  return out;
}

// ---------- Message keys ----------

/**
 * The two AES-256-GCM keys between own and peer ({alg, raw}): send (own to
 * peer) and receive (peer to own), neither extractable.
 */
export async function deriveKeys({ roomId, privateKey, own, peer }) {
  if (own.alg !== peer.alg) throw new Error("the two keys are of different kinds");
  const peerKey = await subtle.importKey("raw", peer.raw, algParams(peer.alg), false, []);
  const shared = await subtle.deriveBits({ name: privateKey.algorithm.name, public: peerKey }, privateKey, 256);
  const ikm = await subtle.importKey("raw", shared, "HKDF", false, ["deriveKey"]);
  const salt = new Uint8Array(await subtle.digest("SHA-256", enc.encode(`wisp-e2e-v1|${roomId}`)));
  const ownFp = await fingerprint(own.alg, own.raw);
  const peerFp = await fingerprint(peer.alg, peer.raw);
  const direction = (from, to) =>
    subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt, info: concat(enc.encode("wisp-e2e-v1 message key|"), from, to) },
      ikm,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
  return { send: await direction(ownFp, peerFp), receive: await direction(peerFp, ownFp), ownFp, peerFp };
}

// ---------- Plaintext ----------

/** The padded plaintext of a message. */
export function encodePlain(sender, text) {
  const s = enc.encode(sender);
  const t = enc.encode(text);
  if (s.length > 0xffff || t.length > 0xffff) throw new RangeError("too long");
  const n = 4 + s.length + t.length;
  const out = new Uint8Array(Math.ceil(n / PAD) * PAD);
  const view = new DataView(out.buffer);
  view.setUint16(0, s.length);
  out.set(s, 2);
  view.setUint16(2 + s.length, t.length);
  out.set(t, 4 + s.length);
  return out;
}

/** A padded plaintext back to {sender, text}; throws on anything malformed. */
export function decodePlain(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sLen = view.getUint16(0);
  const tLen = view.getUint16(2 + sLen);
  const end = 4 + sLen + tLen;
  if (end > bytes.length || bytes.subarray(end).some((b) => b !== 0)) throw new Error("bad padding");
  return { sender: dec.decode(bytes.subarray(2, 2 + sLen)), text: dec.decode(bytes.subarray(4 + sLen, end)) };
}

// ---------- Envelope ----------

function aad(roomId, header) {
  return concat(enc.encode(`${AAD_PREFIX}${roomId}|`), header);
}

/**
 * Seals one message: key is the send key, senderFp and receiverFp the two
 * fingerprints (bytes), counter the sender's next (1, 2, 3…). Returns the
 * envelope as base64url.
 */
export async function seal({ key, roomId, senderFp, receiverFp, counter, sender, text, iv }) {
  if (!Number.isInteger(counter) || counter < 1 || counter > 0xffffffff) throw new RangeError("counter out of range");
  const header = new Uint8Array(HEADER_BYTES);
  header[0] = VERSION;
  header.set(senderFp, 1);
  header.set(receiverFp, 1 + FP_BYTES);
  new DataView(header.buffer).setUint32(1 + 2 * FP_BYTES, counter);
  header.set(iv ?? globalThis.crypto.getRandomValues(new Uint8Array(12)), HEADER_BYTES - 12);
  const ct = await subtle.encrypt(
    { name: "AES-GCM", iv: header.subarray(HEADER_BYTES - 12), additionalData: aad(roomId, header) },
    key,
    encodePlain(sender, text),
  );
  return toB64u(concat(header, new Uint8Array(ct)));
}

/** The clear header of an envelope, or null when it is not one. */
export function parseEnvelope(envelope) {
  const bytes = fromB64u(envelope);
  if (!bytes || bytes.length < HEADER_BYTES + TAG_BYTES || bytes[0] !== VERSION) return null;
  return {
    senderFp: bytes.slice(1, 1 + FP_BYTES),
    receiverFp: bytes.slice(1 + FP_BYTES, 1 + 2 * FP_BYTES),
    counter: new DataView(bytes.buffer).getUint32(1 + 2 * FP_BYTES),
    header: bytes.subarray(0, HEADER_BYTES),
    body: bytes.subarray(HEADER_BYTES),
  };
}

/**
 * Opens a parsed envelope with key (the receive key for the peer's, the
 * send key for one's own). Resolves to {sender, text}; rejects when the
 * envelope was changed, is from another room or another key, or is not a
 * well-formed message.
 */
export async function open({ key, roomId, parsed }) {
  const pt = await subtle.decrypt(
    { name: "AES-GCM", iv: parsed.header.subarray(HEADER_BYTES - 12), additionalData: aad(roomId, parsed.header) },
    key,
    parsed.body,
  );
  return decodePlain(new Uint8Array(pt));
}

export { equalBytes };

// ---------- Replay and order ----------

/**
 * ReplayGuard checks each sender's counters against the room's order: in
 * seq order, one sender's counters rise. A counter already seen is a
 * replay; one that does not fit between its neighbours in seq order was
 * reordered. Messages may be checked in any order (a gap filled late).
 */
export class ReplayGuard {
  constructor() {
    this.bySender = new Map(); // sender fp (text) -> Map(seq -> counter)
  }

  /** "ok" (and remembered), "replayed" or "reordered". */
  check(sender, seq, counter) {
    let seen = this.bySender.get(sender);
    if (!seen) this.bySender.set(sender, (seen = new Map()));
    if (seen.has(seq)) return seen.get(seq) === counter ? "ok" : "replayed";
    let below = 0;
    let above = Infinity;
    for (const [s, c] of seen) {
      if (c === counter) return "replayed";
      if (s < seq) below = Math.max(below, c);
      else above = Math.min(above, c);
    }
    if (counter <= below || counter >= above) return "reordered";
    seen.set(seq, counter);
    return "ok";
  }
}
