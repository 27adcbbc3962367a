/**
 * The ingestor's end of the verdict channel (src/storage/bookVerdicts.ts): every BOOK_VERDICT_POLL_MS it reads the
 * worker's newest verdict of each product and acts once on each new one (its `checkId`): the ingestor resyncs that
 * product alone (Ingestor.resyncOnVerdict). Verdicts older than this process (from before a restart) are
 * acknowledged without acting: the new connection started every product from a fresh snapshot. A failed read is
 * logged and tried again at the next poll.
 */
import { type Clock, systemClock } from '../clock.js';
import { describeError, type Logger } from '../log.js';
import type { BookVerdict } from '../storage/bookVerdicts.js';

export interface VerdictPollerOptions {
  products: readonly string[];
  everyMs: number;
  /** Reads the newest verdict of each product (readBookVerdicts). */
  read: (products: readonly string[]) => Promise<BookVerdict[]>;
  /** Acts on a new verdict (Ingestor.resyncOnVerdict); false when it could not (no connection to resync). */
  act: (verdict: BookVerdict) => boolean;
  /** This process's start, wall-clock epoch µs: older verdicts are acknowledged without acting. */
  startedAtUs: number;
  clock?: Clock;
  log: Logger;
}

export class VerdictPoller {
  /** Per product the checkId last seen: one item per product, so this stays as small as the product list. */
  private readonly seen = new Map<string, string>();
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly clock: Clock;
  /** Reads done (failed ones included). */
  polls = 0;

  constructor(private readonly o: VerdictPollerOptions) {
    this.clock = o.clock ?? systemClock;
  }

  start(): void {
    if (this.loop || this.o.everyMs <= 0 || this.o.products.length === 0) return;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
  }

  /** One read; the verdicts acted on. */
  async poll(): Promise<BookVerdict[]> {
    let verdicts: BookVerdict[];
    try {
      verdicts = await this.o.read(this.o.products);
    } catch (err) {
      this.polls++;
      this.o.log('warn', 'book verdicts not read; next poll tries again', { error: describeError(err) });
      return [];
    }
    this.polls++;
    const acted: BookVerdict[] = [];
    for (const v of verdicts) {
      if (this.seen.get(v.product) === v.checkId) continue;
      this.seen.set(v.product, v.checkId);
      if (v.atUs < this.o.startedAtUs) {
        this.o.log('debug', 'book verdict from before this start acknowledged', { ...v });
        continue;
      }
      const done = this.o.act(v);
      this.o.log(
        done ? 'warn' : 'info',
        done ? 'book verdict: resync' : 'book verdict: no connection to resync',
        {
          ...v,
        },
      );
      if (done) acted.push(v);
    }
    return acted;
  }

  private async run(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      await this.poll();
      await this.clock.sleep(this.o.everyMs, signal);
    }
  }
}
