/**
 * Virtual time for code that takes a Clock (src/clock.ts): time moves only when the test says so, so deadlines,
 * backoffs and pacing are checked exactly, however loaded the machine is. Real I/O still runs on the real event
 * loop; `advanceTo` lets it in between wake-ups.
 */
import type { Clock } from '../../src/clock.js';

/** Lets every promise chain woken so far (and I/O already due) run to its next wait. */
export const settle = () => new Promise((resolve) => setImmediate(resolve));

interface Timer {
  at: number;
  n: number;
  resolve: () => void;
}

export class FakeClock implements Clock {
  t = 0;
  private timers: Timer[] = [];
  private n = 0;

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const timer: Timer = { at: this.t + Math.max(0, ms), n: this.n++, resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          resolve();
        },
        { once: true },
      );
    });
  }

  /** Sleepers waiting now: how many, and the duration each asked for (in the order they asked). */
  get pending(): number {
    return this.timers.length;
  }

  /** The earliest wake-up time, if anyone sleeps. */
  nextAt(): number | undefined {
    return this.timers.reduce<number | undefined>(
      (m, x) => (m === undefined || x.at < m ? x.at : m),
      undefined,
    );
  }

  /** Moves time to `to`, waking sleepers in time order and letting each run before the next wakes. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      await settle();
      const due = this.timers.filter((x) => x.at <= to).sort((a, b) => a.at - b.at || a.n - b.n)[0];
      if (!due) break;
      this.timers.splice(this.timers.indexOf(due), 1);
      this.t = Math.max(this.t, due.at);
      due.resolve();
    }
    this.t = Math.max(this.t, to);
    await settle();
  }

  advance(ms: number): Promise<void> {
    return this.advanceTo(this.t + ms);
  }
}
