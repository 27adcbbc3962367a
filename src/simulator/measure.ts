/**
 * Runs the simulator in process (no protocol, no network) and measures it with the one statistics module
 * (src/marketdata/stats.ts), fed the same normalized events the Advanced Trade mapper makes of its frames.
 * What the calibration tests, `quotewatch calibrate` and the `sim` benchmark measure.
 */
import { MarketStats, type StatsReport } from '../marketdata/stats.js';
import { batchEvents, snapshotEvent } from './events.js';
import { SimExchange, seedEpochUs } from './exchange.js';
import type { ProductSpec } from './market.js';

export interface MeasureOptions {
  products: readonly ProductSpec[];
  seed: number;
  seconds: number;
  /** Start, epoch µs (default: the seed's epoch, as the fast simulator). */
  startUs?: number;
  /** Called about every simulated minute with the share done. */
  onProgress?: (done: number) => void;
}

export function measureSimulation(o: MeasureOptions): StatsReport {
  const startUs = o.startUs ?? seedEpochUs(o.seed);
  const exchange = new SimExchange(o.products, o.seed, startUs);
  const stats = new MarketStats({ tick: (p) => exchange.market(p)?.tick });
  let seq = 0;
  for (const m of exchange.markets) stats.push(snapshotEvent(m, startUs, ++seq));
  // One more second: the grid's first point is a second after the start, and the last hour must be whole.
  const endUs = startUs + (o.seconds + 1) * 1e6;
  for (let t = startUs; t < endUs; ) {
    t = Math.min(t + 60e6, endUs);
    exchange.advanceTo(t, (b) => {
      const [changes, trades] = batchEvents(b, exchange.market(b.productId)!.tickUnits, ++seq);
      if (changes) stats.push(changes);
      for (const tr of trades) stats.push(tr);
    });
    o.onProgress?.((t - startUs) / (endUs - startUs));
  }
  return stats.finish(endUs);
}
