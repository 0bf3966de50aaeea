import { test } from "node:test";
import assert from "node:assert/strict";

import { Countdown, formatRemaining, secondsLeft, warningDue } from "../../services/gateway/internal/web/static/countdown.js";

test("m:ss with unpadded minutes, as the original", () => {
  assert.equal(formatRemaining(600), "10:00");
  assert.equal(formatRemaining(599), "9:59");
  assert.equal(formatRemaining(7), "0:07");
  assert.equal(formatRemaining(0), "0:00");
  assert.equal(formatRemaining(3600), "60:00");
  assert.equal(formatRemaining(-3), "0:00");
});

test("seconds left round up and never go below zero", () => {
  assert.equal(secondsLeft(10_000, 0), 10);
  assert.equal(secondsLeft(10_000, 1), 10);
  assert.equal(secondsLeft(10_000, 9_001), 1);
  assert.equal(secondsLeft(10_000, 10_000), 0);
  assert.equal(secondsLeft(10_000, 99_999), 0);
});

test("warnings are said when the time crosses 60 s and 10 s, each once", () => {
  const said = new Set();
  const heard = [];
  let prev = null;
  for (let s = 75; s >= 0; s--) {
    const w = warningDue(prev, s, said);
    if (w) heard.push([s, w]);
    prev = s;
  }
  assert.deepEqual(heard, [[60, 60], [10, 10]]);
});

test("a jump over both thresholds (a throttled tab) says the lower one only", () => {
  const said = new Set();
  assert.equal(warningDue(null, 300, said), 0);
  assert.equal(warningDue(300, 5, said), 10);
  assert.equal(warningDue(5, 4, said), 0);
});

test("a page opened below a threshold says nothing for it", () => {
  const said = new Set();
  assert.equal(warningDue(null, 45, said), 0);
  assert.equal(warningDue(45, 44, said), 0);
  assert.equal(warningDue(11, 10, said), 10);
});

/** A clock and timers the test moves by hand. */
function fakeTime() {
  const ft = {
    now: 0,
    next: 1,
    pending: new Map(),
    setTimeout(fn, ms) {
      const id = ft.next++;
      ft.pending.set(id, { fn, at: ft.now + ms });
      return id;
    },
    clearTimeout(id) {
      ft.pending.delete(id);
    },
    /** Advances time to `to`, running timers due on the way in order. */
    advance(to) {
      for (;;) {
        let first = null;
        for (const [id, t] of ft.pending) if (t.at <= to && (!first || t.at < first[1].at)) first = [id, t];
        if (!first) break;
        ft.pending.delete(first[0]);
        ft.now = first[1].at;
        first[1].fn();
      }
      ft.now = to;
    },
  };
  return ft;
}

test("Countdown ticks every second from an absolute end, warns, ends once", () => {
  const ft = fakeTime();
  const ticks = [];
  const warns = [];
  let ends = 0;
  const c = new Countdown({
    onTick: (s) => ticks.push(s),
    onWarn: (w) => warns.push([ticks.at(-1), w]),
    onEnd: () => ends++,
    clock: () => ft.now,
    timers: ft,
  });
  c.apply(62);
  ft.advance(70_000);
  assert.equal(ticks[0], 62);
  assert.deepEqual(ticks.slice(-3), [2, 1, 0]);
  assert.equal(new Set(ticks).size, ticks.length, "each second shown once");
  assert.deepEqual(warns, [[60, 60], [10, 10]]);
  assert.equal(ends, 1);
  assert.equal(ft.pending.size, 0, "no timer left after the end");
});

test("a TTL sync within a second of the local end changes nothing; a bigger one does", () => {
  const ft = fakeTime();
  const ticks = [];
  const c = new Countdown({ onTick: (s) => ticks.push(s), clock: () => ft.now, timers: ft });
  c.apply(600);
  ft.advance(10_000);
  const end = c.endAt;
  ft.now += 300;
  c.apply(590);
  assert.equal(c.endAt, end);
  c.apply(500);
  assert.notEqual(c.endAt, end);
  assert.equal(ticks.at(-1), 500);
  c.stop();
  assert.equal(ft.pending.size, 0);
});
