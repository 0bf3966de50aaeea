// The room's countdown, DOM-free: the time left is always derived from an
// absolute end time (so throttled timers never make it drift), shown as m:ss,
// with spoken warnings when it crosses 60 s and 10 s.

/** Seconds before the end at which a warning is said, highest first. */
export const WARNINGS = [60, 10];

/** m:ss, minutes not padded: 9:59, 0:07 (the original's format). */
export function formatRemaining(s) {
  const whole = Math.max(0, Math.floor(s));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** Whole seconds left until endAt, rounded up (never leave early); never negative. */
export function secondsLeft(endAt, now) {
  return Math.max(0, Math.ceil((endAt - now) / 1000));
}

/**
 * The warning to say when the shown time goes from prev to s: the lowest
 * threshold crossed (prev > T >= s) not said yet, or 0. A page that opens
 * below a threshold (prev null) says nothing for it: the crossing is what
 * is news. Every threshold crossed is marked said.
 */
export function warningDue(prev, s, said) {
  let due = 0;
  for (const t of WARNINGS) {
    if (said.has(t) || s > t) continue;
    said.add(t);
    if (prev !== null && prev > t) due = t;
  }
  return due;
}

/**
 * Countdown keeps the end time, wakes just after each shown second changes
 * and reports: onTick(secondsLeft), onWarn(threshold), onEnd() once at 0.
 * clock and timers are injectable for tests.
 */
export class Countdown {
  constructor({ onTick, onWarn = () => {}, onEnd = () => {}, clock = () => Date.now(), timers = globalThis }) {
    this.onTick = onTick;
    this.onWarn = onWarn;
    this.onEnd = onEnd;
    this.clock = clock;
    this.timers = timers;
    this.endAt = null;
    this.shown = null;
    this.said = new Set();
    this.handle = 0;
    this.stopped = false;
  }

  /**
   * Sets the end from a TTL in seconds from now. Sub-second differences
   * (a whole-second TTL plus latency) are ignored so the display does not
   * tick backwards on every sync.
   */
  apply(ttlSeconds) {
    const endAt = this.clock() + Math.max(0, ttlSeconds) * 1000;
    if (this.endAt === null || Math.abs(endAt - this.endAt) >= 1000) this.endAt = endAt;
    this.render();
  }

  render() {
    this.timers.clearTimeout(this.handle);
    if (this.stopped || this.endAt === null) return;
    const now = this.clock();
    const s = secondsLeft(this.endAt, now);
    const prev = this.shown;
    this.shown = s;
    this.onTick(s);
    const warn = warningDue(prev, s, this.said);
    if (warn) this.onWarn(warn);
    if (s === 0) {
      this.stop();
      this.onEnd();
      return;
    }
    const untilNext = this.endAt - now - (s - 1) * 1000;
    this.handle = this.timers.setTimeout(() => this.render(), Math.min(1000, Math.max(20, untilNext + 10)));
  }

  stop() {
    this.stopped = true;
    this.timers.clearTimeout(this.handle);
  }
}
