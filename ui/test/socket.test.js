import { test } from "node:test";
import assert from "node:assert/strict";

import { Live, backoffDelay, parseFrame, RECONNECT_MAX_MS } from "../../services/gateway/internal/web/static/socket.js";

/** A WebSocket stand-in: the test opens, closes and feeds it. */
class FakeSocket extends EventTarget {
  static all = [];
  constructor(url) {
    super();
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.all.push(this);
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }
  serverOpen() {
    this.readyState = 1;
    this.dispatchEvent(new Event("open"));
  }
  serverSays(obj) {
    const e = new Event("message");
    e.data = typeof obj === "string" ? obj : JSON.stringify(obj);
    this.dispatchEvent(e);
  }
  drop() {
    this.readyState = 3;
    this.dispatchEvent(new Event("close"));
  }
}

function timers() {
  const t = {
    queue: [],
    setTimeout(fn, ms) {
      t.queue.push({ fn, ms });
      return t.queue.length;
    },
    clearTimeout(id) {
      if (t.queue[id - 1]) t.queue[id - 1].fn = null;
    },
    runNext() {
      const next = t.queue.find((x) => x.fn);
      const fn = next.fn;
      next.fn = null;
      fn();
      return next.ms;
    },
  };
  return t;
}

function newLive() {
  FakeSocket.all = [];
  const tm = timers();
  const events = [];
  const live = new Live({
    url: () => "ws://host/api/realtime?roomId=r",
    onOpen: () => events.push(["open"]),
    onFrame: (f) => events.push(["frame", f.event, f.data]),
    onClose: (_s, { current }) => events.push(["close", current]),
    WebSocketImpl: FakeSocket,
    timers: tm,
    random: () => 0.5,
  });
  return { live, tm, events };
}

test("frames: JSON objects with an event; data always an object", () => {
  assert.deepEqual(parseFrame('{"event":"chat.typing","data":{}}'), { event: "chat.typing", data: {} });
  assert.deepEqual(parseFrame('{"event":"x","data":null}'), { event: "x", data: {} });
  assert.equal(parseFrame("not json"), null);
  assert.equal(parseFrame("[1]"), null);
  assert.equal(parseFrame('{"data":{}}'), null);
});

test("backoff doubles from 500 ms to at most 10 s, with jitter in its upper half", () => {
  assert.equal(backoffDelay(0, () => 0), 250);
  assert.equal(backoffDelay(0, () => 1), 500);
  assert.equal(backoffDelay(3, () => 1), 4000);
  assert.equal(backoffDelay(10, () => 1), RECONNECT_MAX_MS);
  assert.equal(backoffDelay(10, () => 0), RECONNECT_MAX_MS / 2);
});

test("one socket; frames reach the page; sends only while open", () => {
  const { live, events } = newLive();
  live.connect();
  live.connect();
  assert.equal(FakeSocket.all.length, 1);
  assert.equal(live.send({ type: "typing" }), false, "not open yet");
  const s = FakeSocket.all[0];
  s.serverOpen();
  assert.equal(live.open, true);
  assert.equal(live.send({ type: "typing" }), true);
  assert.deepEqual(s.sent, [{ type: "typing" }]);
  s.serverSays({ event: "chat.presence", data: { online: true } });
  s.serverSays("garbage");
  assert.deepEqual(events, [["open"], ["frame", "chat.presence", { online: true }]]);
});

test("a dropped socket reconnects with growing backoff, reset by a successful open", () => {
  const { live, tm, events } = newLive();
  live.connect();
  FakeSocket.all[0].drop();
  assert.deepEqual(events.at(-1), ["close", true]);
  assert.equal(tm.runNext(), 375); // attempt 0: 250 + 0.5 * 250
  assert.equal(FakeSocket.all.length, 2);
  FakeSocket.all[1].drop();
  assert.equal(tm.runNext(), 750);
  FakeSocket.all[2].serverOpen();
  FakeSocket.all[2].drop();
  assert.equal(tm.runNext(), 375, "backoff starts over after an open");
});

test("renew replaces a socket that may be dead at once; its late close changes nothing", () => {
  const { live, events } = newLive();
  live.connect();
  const old = FakeSocket.all[0];
  old.serverOpen();
  live.renew();
  assert.equal(old.closedWith, 1000);
  assert.equal(FakeSocket.all.length, 2, "a new socket right away");
  assert.deepEqual(events.at(-1), ["close", true]);
  old.dispatchEvent(new Event("close"));
  assert.deepEqual(events.at(-1), ["close", false]);
  old.serverSays({ event: "chat.typing", data: {} });
  assert.notDeepEqual(events.at(-1)[0], "frame", "the old socket's frames are not the page's");
});

test("a constructor that throws (sockets forbidden) is retried later, not fatal", () => {
  const tm = timers();
  let tries = 0;
  const live = new Live({
    url: () => "ws://x",
    onOpen() {},
    onFrame() {},
    onClose() {},
    WebSocketImpl: class {
      constructor() {
        tries++;
        throw new Error("SecurityError");
      }
    },
    timers: tm,
    random: () => 0,
  });
  live.connect();
  tm.runNext();
  assert.equal(tries, 2);
  assert.equal(live.open, false);
});

test("stop closes the socket and ends reconnecting", () => {
  const { live, tm } = newLive();
  live.connect();
  live.stop();
  assert.equal(FakeSocket.all[0].closedWith, 1000);
  FakeSocket.all[0].drop();
  assert.equal(tm.queue.filter((x) => x.fn).length, 0);
  live.reconnectNow();
  assert.equal(FakeSocket.all.length, 1);
});
