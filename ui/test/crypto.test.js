import { test } from "node:test";
import assert from "node:assert/strict";

import {
  FP_BYTES, HEADER_BYTES, PAD, ReplayGuard, SAS_EMOJI, SAS_LENGTH, decodePlain, deriveKeys, encodePlain,
  fingerprintText, fromB64u, generateKeyPair, open, parseEnvelope, sasIndices, seal, toB64u,
} from "../../services/gateway/internal/web/static/crypto.js";

const ROOM = "V1StGXR8_Z5jdHi6B-myT";

async function pairOf(prefer) {
  const a = await generateKeyPair(prefer);
  const b = await generateKeyPair(prefer);
  const ab = await deriveKeys({ roomId: ROOM, privateKey: a.privateKey, own: a, peer: b });
  const ba = await deriveKeys({ roomId: ROOM, privateKey: b.privateKey, own: b, peer: a });
  return { a, b, ab, ba };
}

async function sealed(keys, counter, text = "hello", roomId = ROOM) {
  return seal({ key: keys.send, roomId, senderFp: keys.ownFp, receiverFp: keys.peerFp, counter, sender: "alice", text });
}

test("base64url is strict: unpadded, URL alphabet, canonical", () => {
  const bytes = Uint8Array.from([0, 1, 2, 250, 251, 252, 253, 254, 255]);
  assert.deepEqual(fromB64u(toB64u(bytes)), bytes);
  assert.equal(toB64u(Uint8Array.from([251, 255])), "-_8");
  for (const bad of ["+/8", "-_8=", "A", "AB!C", "AB", 42]) {
    if (bad === "AB") assert.equal(fromB64u(bad), null, "stray bits"); // "AB" has non-zero padding bits
    else assert.equal(fromB64u(bad), null, String(bad));
  }
});

test("X25519 is there (P-256 as the fallback), private keys are not extractable", async () => {
  for (const alg of ["X25519", "P-256"]) {
    const k = await generateKeyPair([alg]);
    assert.equal(k.alg, alg);
    assert.equal(k.raw.length, alg === "X25519" ? 32 : 65);
    assert.equal(k.privateKey.extractable, false);
    await assert.rejects(crypto.subtle.exportKey("pkcs8", k.privateKey));
  }
  assert.equal((await generateKeyPair()).alg, "X25519");
  assert.equal((await generateKeyPair(["no-such", "P-256"])).alg, "P-256");
});

test("fingerprints are 128 bits and tell keys apart", async () => {
  const { a, b } = await pairOf();
  const fa = await fingerprintText(a.alg, a.raw);
  assert.equal(fromB64u(fa).length, FP_BYTES);
  assert.equal(fa.length, 22);
  assert.notEqual(fa, await fingerprintText(b.alg, b.raw));
  assert.equal(fa, await fingerprintText(a.alg, a.raw));
});

test("both pages get the same short authentication string; another key another", async () => {
  const { a, b } = await pairOf();
  const m = await generateKeyPair();
  const ab = await sasIndices(ROOM, a, b);
  assert.deepEqual(await sasIndices(ROOM, b, a), ab);
  assert.equal(ab.length, SAS_LENGTH);
  assert.ok(SAS_LENGTH * Math.log2(SAS_EMOJI.length) >= 40, "at least 40 bits");
  assert.equal(new Set(SAS_EMOJI.map((e) => e[0])).size, 64);
  assert.ok(ab.every((i) => Number.isInteger(i) && i >= 0 && i < 64));
  assert.notDeepEqual(await sasIndices(ROOM, a, m), ab);
  assert.notDeepEqual(await sasIndices("other-room-id-aaaaaaaa", a, b), ab);
});

test("one key per direction: each side opens what the other sealed, not its own send key's reverse", async () => {
  for (const prefer of [["X25519"], ["P-256"]]) {
    const { ab, ba } = await pairOf(prefer);
    const env = await sealed(ab, 1, "hi there 👋");
    const parsed = parseEnvelope(env);
    assert.equal(parsed.counter, 1);
    assert.deepEqual(await open({ key: ba.receive, roomId: ROOM, parsed }), { sender: "alice", text: "hi there 👋" });
    // The sender reads its own message back with its send key.
    assert.deepEqual(await open({ key: ab.send, roomId: ROOM, parsed }), { sender: "alice", text: "hi there 👋" });
    // The other direction's key does not open it.
    await assert.rejects(open({ key: ba.send, roomId: ROOM, parsed }));
  }
});

test("the AAD binds the room, the sender and the counter; any changed byte fails", async () => {
  const { ab, ba } = await pairOf();
  const env = await sealed(ab, 7);
  await assert.rejects(open({ key: ba.receive, roomId: "another-room-aaaaaaaaa", parsed: parseEnvelope(env) }), "cross-room");
  const bytes = fromB64u(env);
  for (const at of [1, 1 + FP_BYTES, 1 + 2 * FP_BYTES + 3, HEADER_BYTES - 1, HEADER_BYTES + 2, bytes.length - 1]) {
    const copy = bytes.slice();
    copy[at] ^= 1;
    await assert.rejects(open({ key: ba.receive, roomId: ROOM, parsed: parseEnvelope(toB64u(copy)) }), `byte ${at}`);
  }
  assert.equal(parseEnvelope("AQID"), null);
  assert.equal(parseEnvelope(env.replace(/^A/, "B")), null, "another version");
});

test("IVs never repeat: two seals of the same text differ", async () => {
  const { ab } = await pairOf();
  const seen = new Set();
  for (let i = 1; i <= 200; i++) {
    const iv = toB64u(parseEnvelope(await sealed(ab, i, "same")).header.subarray(HEADER_BYTES - 12));
    assert.ok(!seen.has(iv));
    seen.add(iv);
  }
});

test("the plaintext is padded to PAD bytes and hides no garbage", () => {
  for (const [s, t] of [["a", "b"], ["anonymous-wolf-AbC12", "x".repeat(1000)], ["ü", "😀".repeat(500)]]) {
    const p = encodePlain(s, t);
    assert.equal(p.length % PAD, 0);
    assert.deepEqual(decodePlain(p), { sender: s, text: t });
  }
  const p = encodePlain("a", "b");
  p[p.length - 1] = 1;
  assert.throws(() => decodePlain(p));
  // The longest message fits the server's bound of 4096 bytes.
  assert.ok(HEADER_BYTES + encodePlain("\u{10FFFF}".repeat(50), "\u{FFFF}".repeat(1000)).length + 16 <= 4096);
});

test("the replay guard: counters rise with seq per sender, in whatever order they are checked", () => {
  const g = new ReplayGuard();
  assert.equal(g.check("A", 1, 1), "ok");
  assert.equal(g.check("A", 3, 3), "ok");
  assert.equal(g.check("B", 2, 1), "ok", "each sender counts on its own");
  assert.equal(g.check("A", 2, 2), "ok", "a gap filled late");
  assert.equal(g.check("A", 2, 2), "ok", "the same message again (socket and API)");
  assert.equal(g.check("A", 4, 3), "replayed");
  assert.equal(g.check("A", 5, 1), "replayed");
  assert.equal(g.check("A", 6, 10), "ok");
  assert.equal(g.check("A", 7, 9), "reordered");
  assert.equal(g.check("A", 0, 11), "reordered");
});
