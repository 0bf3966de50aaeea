import { test } from "node:test";
import assert from "node:assert/strict";

import { E2ESession, wellFormed } from "../../services/gateway/internal/web/static/e2e.js";
import { MemoryVault } from "../../services/gateway/internal/web/static/vault.js";
import { fingerprintText, fromB64u, generateKeyPair, toB64u } from "../../services/gateway/internal/web/static/crypto.js";

const ROOM = "V1StGXR8_Z5jdHi6B-myT";
const LATER = Date.now() + 600_000;

/**
 * Two sessions whose key frames go through relay(frame, to) -> the frame
 * the other receives (null: dropped). Frames are delivered one at a time,
 * in order, like a socket.
 */
function world(relay = (f) => f) {
  const queue = [];
  let running = null;
  const pump = async () => {
    while (queue.length) {
      const [to, frame] = queue.shift();
      const out = await relay(frame, to === a ? "a" : "b");
      if (out) await to.receiveKey({ alg: out.alg, key: out.key, peer: out.peer });
    }
    running = null;
  };
  const deliver = (to) => (frame) => {
    queue.push([to, structuredClone(frame)]);
    running ??= pump();
    return true;
  };
  const va = new MemoryVault();
  const vb = new MemoryVault();
  const a = new E2ESession({ roomId: ROOM, vault: va, send: (f) => deliver(b)(f) });
  const b = new E2ESession({ roomId: ROOM, vault: vb, send: (f) => deliver(a)(f) });
  const settle = async () => {
    for (let i = 0; i < 50 && (running || queue.length); i++) await (running ?? Promise.resolve());
  };
  return { a, b, va, vb, settle };
}

async function meet(w, { pinB = true } = {}) {
  await w.a.start({ expiresAt: LATER });
  await w.b.start({ pin: pinB ? w.a.ownFingerprint : "", expiresAt: LATER });
  w.a.announce(); // A's socket was open first: no one heard it
  w.b.announce();
  await w.settle();
}

test("an honest relay: both ready, same SAS, messages open both ways and for their sender", async () => {
  const w = world();
  await meet(w);
  assert.equal(w.a.state().status, "ready");
  assert.equal(w.b.state().status, "ready");
  assert.equal(w.b.state().pinned, true);
  assert.deepEqual(w.a.state().sas, w.b.state().sas);

  const env = await w.a.seal("alice", "hello bob");
  const got = await w.b.open({ seq: 1, envelope: env });
  assert.deepEqual(got, { status: "ok", sender: "alice", text: "hello bob", own: false });
  assert.deepEqual(await w.a.open({ seq: 1, envelope: env }), { status: "ok", sender: "alice", text: "hello bob", own: true });
  const back = await w.b.seal("bob", "hi alice");
  assert.equal((await w.a.open({ seq: 2, envelope: back })).text, "hi alice");
});

test("a relay that swaps the keys: both pages show the mismatch and neither can seal", async () => {
  // The relay hands each side a key of its own, passing the rest untouched.
  const fakes = new Map();
  const w = world(async (frame) => {
    if (!fakes.has(frame.key)) {
      const m = await generateKeyPair([frame.alg]);
      fakes.set(frame.key, toB64u(m.raw));
    }
    return { ...frame, key: fakes.get(frame.key) };
  });
  await meet(w);
  const sa = w.a.state();
  const sb = w.b.state();
  assert.equal(sb.status, "mismatch");
  assert.equal(sb.problem, "pin", "the joiner checks the link's fingerprint");
  assert.equal(sa.status, "mismatch");
  assert.equal(sa.problem, "confirm", "the creator hears that its key did not arrive");
  assert.notDeepEqual(sa.sas, sb.sas);
  assert.equal(await w.a.seal("alice", "secret"), null);
  assert.equal(await w.b.seal("bob", "secret"), null);

  // The person may still choose to go on, knowingly.
  await w.a.trust();
  assert.equal(w.a.state().status, "trusted");
  assert.ok(await w.a.seal("alice", "on purpose"));
});

test("a swapped key is caught without the link's fingerprint too (the confirmation)", async () => {
  const fakes = new Map();
  const w = world(async (frame) => {
    if (!fakes.has(frame.key)) fakes.set(frame.key, toB64u((await generateKeyPair([frame.alg])).raw));
    return { ...frame, key: fakes.get(frame.key) };
  });
  await meet(w, { pinB: false });
  assert.equal(w.a.state().status, "mismatch");
  assert.equal(w.b.state().status, "mismatch");
});

test("no loop: an honest exchange ends after a few frames", async () => {
  let frames = 0;
  const w = world((f) => (frames++, f));
  await meet(w);
  for (let i = 0; i < 5; i++) {
    w.a.announce(); // presence, reconnects
    await w.settle();
  }
  assert.ok(frames < 20, `${frames} frames`);
});

test("replayed, reordered, cross-room and forged envelopes are rejected", async () => {
  const w = world();
  await meet(w);
  const e1 = await w.a.seal("alice", "one");
  const e2 = await w.a.seal("alice", "two");
  assert.equal((await w.b.open({ seq: 1, envelope: e1 })).status, "ok");
  assert.equal((await w.b.open({ seq: 3, envelope: e1 })).status, "replayed");
  assert.equal((await w.b.open({ seq: 1, envelope: e1 })).status, "ok", "the same message again is fine");
  const e3 = await w.a.seal("alice", "three");
  assert.equal((await w.b.open({ seq: 5, envelope: e3 })).status, "ok");
  assert.equal((await w.b.open({ seq: 6, envelope: e2 })).status, "reordered");

  const other = new E2ESession({ roomId: "another-room-aaaaaaaaa", vault: w.vb, send: () => true });
  w.vb.records.get(ROOM).roomId = "another-room-aaaaaaaaa";
  w.vb.records.set("another-room-aaaaaaaaa", w.vb.records.get(ROOM));
  await other.start({ expiresAt: LATER });
  assert.equal((await other.open({ seq: 1, envelope: await w.a.seal("alice", "x") })).status, "forged", "cross-room");

  const bytes = fromB64u(await w.a.seal("alice", "y"));
  bytes[bytes.length - 3] ^= 4;
  assert.equal((await w.b.open({ seq: 9, envelope: toB64u(bytes) })).status, "forged");
  assert.equal((await w.b.open({ seq: 9, envelope: "AQID" })).status, "malformed");
});

test("a page opened again (reload) reads the history with the keys its vault kept", async () => {
  const w = world();
  await meet(w);
  const env = await w.a.seal("alice", "before the reload");
  const reloaded = new E2ESession({ roomId: ROOM, vault: w.vb, send: () => true });
  await reloaded.start({ expiresAt: LATER });
  assert.equal(reloaded.state().status, "ready");
  assert.equal((await reloaded.open({ seq: 1, envelope: env })).text, "before the reload");
  assert.equal(reloaded.ownFingerprint, w.b.ownFingerprint);
  assert.equal(reloaded.pin, w.a.ownFingerprint, "the link's fingerprint is still checked");
});

test("another device reads nothing from before; a second key of the other member shows", async () => {
  const w = world();
  await meet(w, { pinB: false });
  const env = await w.a.seal("alice", "old");
  const device = new E2ESession({ roomId: ROOM, vault: new MemoryVault(), send: () => true });
  await device.start({ expiresAt: LATER });
  assert.equal((await device.open({ seq: 1, envelope: env })).status, "foreign");
  // A meets B's new device: its key changed.
  await w.a.receiveKey(device.keyFrame());
  assert.equal(w.a.state().status, "mismatch");
  assert.equal(w.a.state().problem, "changed");
});

test("a key frame that is not a usable key is ignored", async () => {
  const w = world();
  await meet(w);
  const before = w.a.state();
  for (const bad of [{}, { alg: "X25519", key: "AAAA" }, { alg: "P-256", key: toB64u(new Uint8Array(65)) }, { alg: "RSA", key: "x" }]) {
    await w.a.receiveKey(bad);
  }
  assert.deepEqual(w.a.state(), before);
});

test("the vault forgets the room on wipe, and a room past its deadline on purge", async () => {
  const w = world();
  await meet(w);
  await w.a.wipe();
  assert.equal(await w.va.get(ROOM), undefined);
  await w.vb.update(ROOM, (r) => (r.expiresAt = Date.now() - 1));
  await w.vb.purge();
  assert.equal(w.vb.records.size, 0);
});

test("opened names and texts follow the plain rooms' rules", () => {
  assert.ok(wellFormed({ sender: "alice", text: "hi\nthere" }));
  for (const bad of [{ sender: "YOU", text: "x" }, { sender: " you ", text: "x" }, { sender: "a\u202Eb", text: "x" },
    { sender: "a", text: " " }, { sender: "", text: "x" }, { sender: "a".repeat(101), text: "x" }, { sender: "a", text: "x".repeat(1001) }]) {
    assert.ok(!wellFormed(bad), JSON.stringify(bad));
  }
});

test("fingerprints in frames are what the pin compares", async () => {
  const k = await generateKeyPair();
  const fp = await fingerprintText(k.alg, k.raw);
  assert.match(fp, /^[A-Za-z0-9_-]{22}$/);
});
