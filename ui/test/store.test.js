import { test } from "node:test";
import assert from "node:assert/strict";

import { MessageStore, isMessage } from "../../services/gateway/internal/web/static/store.js";

const ME = "anonymous-wolf-AAAAA";
const PEER = "anonymous-hawk-BBBBB";

/** A view that keeps the list it would show and a log of its calls. */
function fakeView() {
  const v = {
    shown: [],
    log: [],
    insert(entry, before) {
      v.log.push(["insert", entry.msg.text]);
      v.shown.splice(before ? v.shown.indexOf(before) : v.shown.length, 0, entry);
    },
    move(entry, before) {
      v.log.push(["move", entry.msg.text]);
      v.shown.splice(v.shown.indexOf(entry), 1);
      v.shown.splice(before ? v.shown.indexOf(before) : v.shown.length, 0, entry);
    },
    remove(entry) {
      v.log.push(["remove", entry.msg.text]);
      v.shown.splice(v.shown.indexOf(entry), 1);
    },
    update(entry) {
      v.log.push(["update", entry.msg.text]);
    },
    texts: () => v.shown.map((e) => e.msg.text),
  };
  return v;
}

function newStore() {
  const view = fakeView();
  return { store: new MessageStore({ username: ME, view }), view };
}

const msg = (seq, text, over = {}) => ({ id: `m${seq}`, seq, sender: PEER, text, timestamp: 1700000000000 + seq, ...over });

test("messages are shown in seq order whatever order they arrive in, once each", () => {
  const { store, view } = newStore();
  store.loadPage([msg(1, "a"), msg(2, "b")]);
  store.add([msg(4, "d")]);
  store.add([msg(3, "c"), msg(2, "b"), msg(4, "d")]);
  assert.deepEqual(view.texts(), ["a", "b", "c", "d"]);
  assert.equal(view.log.filter(([op]) => op === "insert").length, 4);
  assert.equal(store.syncedSeq, 4);
});

test("a seq beyond the next expected one is a gap, once loaded", () => {
  const { store } = newStore();
  assert.equal(store.isGap(5), false, "nothing is a gap before the first load");
  store.loadPage([msg(1, "a"), msg(2, "b")]);
  assert.equal(store.isGap(3), false);
  assert.equal(store.isGap(4), true);
  store.add([msg(4, "d")]);
  assert.equal(store.syncedSeq, 2, "the contiguous mark stops at the hole");
  assert.equal(store.isGap(5), true);
  store.loadPage([msg(3, "c")]);
  assert.equal(store.syncedSeq, 4, "the back-filled hole joins the mark to what came after it");
});

test("a page from the server completes the mark even with holes below (seqs of gone messages)", () => {
  const { store } = newStore();
  store.loadPage([msg(2, "b"), msg(5, "e")]);
  assert.equal(store.syncedSeq, 5);
});

test("own send: sending, then its chat.message (held, not shown twice), then the ack", () => {
  const { store, view } = newStore();
  store.loadPage([msg(1, "hi")]);
  const entry = store.compose({ text: "yo", clientId: "c1", now: 1 });
  assert.equal(store.stateOf(entry), "sending");
  assert.deepEqual(view.texts(), ["hi", "yo"]);

  // chat.message carries no token, but our name: held while a send is open.
  assert.deepEqual(store.add([msg(2, "yo", { sender: ME })]), []);
  assert.deepEqual(view.texts(), ["hi", "yo"]);

  store.confirm(entry, msg(2, "yo", { sender: ME, token: "mk" }));
  assert.deepEqual(view.texts(), ["hi", "yo"], "one copy, in its place");
  assert.equal(store.stateOf(entry), "sent");
  assert.equal(store.pending("c1"), undefined);
  assert.equal(store.peerRead(2), 1);
  assert.equal(store.stateOf(entry), "read");
});

test("an ack for a message already shown from the list keeps that copy, as our own", () => {
  const { store, view } = newStore();
  store.loadPage([]);
  const entry = store.compose({ text: "yo", clientId: "c1", now: 1 });
  store.add([msg(7, "other", { sender: PEER })]);
  const stored = msg(3, "yo", { sender: "renamed-me" }); // not our name any more: not held
  store.add([stored]);
  assert.deepEqual(view.texts(), ["yo", "other", "yo"]);
  store.confirm(entry, { ...stored, token: "mk" });
  assert.deepEqual(view.texts(), ["yo", "other"], "the composed copy went, the stored one stays in seq order");
  assert.equal(store.byId.get("m3").own, true);
});

test("a confirmed send that got a lower seq than shown messages moves into place", () => {
  const { store, view } = newStore();
  store.loadPage([msg(1, "a")]);
  const entry = store.compose({ text: "mine", clientId: "c1", now: 1 });
  store.confirm(entry, msg(2, "mine", { sender: ME, token: "mk" }));
  store.add([msg(4, "d")]);
  const late = store.compose({ text: "late", clientId: "c2", now: 2 });
  store.add([msg(5, "e", { sender: PEER })]);
  assert.deepEqual(view.texts(), ["a", "mine", "d", "e", "late"]);
  store.confirm(late, msg(3, "late", { sender: ME, token: "mk" }));
  assert.deepEqual(view.texts(), ["a", "mine", "late", "d", "e"]);
  assert.ok(view.log.some(([op, text]) => op === "move" && text === "late"));
});

test("a failed send whose message turns up after all is confirmed, not shown twice", () => {
  const { store, view } = newStore();
  store.loadPage([]);
  const entry = store.compose({ text: "slow", clientId: "c1", now: 1 });
  assert.equal(store.fail(entry, "no answer", { retryable: true }), "failed");
  assert.equal(store.stateOf(entry), "failed");
  assert.deepEqual(store.retryable(), [entry]);
  store.add([msg(1, "slow", { sender: ME })]);
  assert.equal(store.stateOf(entry), "sent");
  assert.deepEqual(view.texts(), ["slow"]);
  assert.deepEqual(store.retryable(), []);
});

test("a failure with a held copy of the same text is that copy", () => {
  const { store } = newStore();
  store.loadPage([]);
  const entry = store.compose({ text: "x", clientId: "c1", now: 1 });
  store.add([msg(1, "x", { sender: ME })]); // held: the send is open
  assert.equal(store.fail(entry, "timeout"), "confirmed");
  assert.equal(store.stateOf(entry), "sent");
  assert.equal(entry.msg.seq, 1);
});

test("our own message with no send waiting (another tab, a late copy) shows as ours", () => {
  const { store, view } = newStore();
  store.loadPage([]);
  const [entry] = store.add([msg(1, "from my other tab", { sender: ME })]);
  assert.equal(entry.own, true);
  assert.deepEqual(view.texts(), ["from my other tab"]);
});

test("the list's copy with our token turns a shown message into ours", () => {
  const { store } = newStore();
  store.loadPage([msg(1, "x", { sender: "someone" })]);
  assert.equal(store.byId.get("m1").own, false);
  store.loadPage([msg(1, "x", { sender: "someone", token: "mk" })]);
  assert.equal(store.byId.get("m1").own, true);
});

test("read marks: the newest stored seq, and the newest of the peer's", () => {
  const { store } = newStore();
  store.loadPage([msg(1, "a"), msg(2, "b", { sender: ME, token: "mk" })]);
  store.compose({ text: "unsent", clientId: "c", now: 1 });
  assert.deepEqual(store.readMarks(), { top: 2, peerTop: 1 });
  assert.equal(store.peerRead(1), 0, "the peer's own message turns nothing read");
  assert.equal(store.peerRead(2), 1);
  assert.equal(store.peerRead(2), 0, "the same receipt again is no news");
});

test("isMessage wants an object with an id", () => {
  assert.equal(isMessage(null), false);
  assert.equal(isMessage({ id: "" }), false);
  assert.equal(isMessage({ id: "x" }), true);
  const { store, view } = newStore();
  store.loadPage([null, { text: "no id" }, msg(1, "ok")]);
  assert.deepEqual(view.texts(), ["ok"]);
});
