/**
 * `npm run chaos`: the full chaos run (src/chaos/chaos.ts) — five minutes of market at 5x real time (about a
 * minute of wall time), every fault twice in a seeded order (one every ~300 events: the last about 70% into the
 * market, so the recovery after it is measured before the market ends), two ingestors, then the audit:
 *   chaos.lost               events the stream accepted that the lake does not hold (must be 0)
 *   chaos.duplicated         events the lake holds more than once (must be 0)
 *   chaos.unexplained_gaps   events lost on the feed with no resync published for them (must be 0)
 *   chaos.recovery_s         wall seconds from the last fault until every product's latest item was back in step
 * The context holds the faults with their market-event counts and the audit's per-product figures.
 */
import { runChaos } from '../src/chaos/chaos.js';
import { type BenchGroup, type BenchResult, machineContext } from './harness.js';

const OPTIONS = {
  seed: 20_241_214,
  products: ['BTC-USD', 'ETH-USD'],
  speed: 5,
  marketMs: 300_000,
  warmupEvents: 400,
  everyEvents: 300,
  rounds: 2,
};

export const chaosGroup: BenchGroup = {
  name: 'chaos',
  description: 'chaos run: faults while the market streams, then the exactly-once audit',
  async run(): Promise<BenchResult[]> {
    const r = await runChaos({ ...OPTIONS, log: (line) => console.log(line) });
    const context = {
      ...machineContext(),
      options: OPTIONS,
      faults: r.faults,
      wallS: r.wallS,
      explainedGapEvents: r.explainedGapEvents,
      superseded: r.superseded,
      problems: r.audit.problems,
      products: r.audit.products.map((p) => ({
        product: p.product,
        trades: p.trades,
        levelChanges: p.levelChanges,
        resyncs: p.resyncs,
        ticks: p.ticks,
        predictions: p.predictions,
        books: { checked: p.book.checked, mismatches: p.book.mismatches },
      })),
    };
    return [
      { name: 'chaos.lost', value: r.lost, unit: 'events', context },
      { name: 'chaos.duplicated', value: r.duplicated, unit: 'events', context: { seed: OPTIONS.seed } },
      {
        name: 'chaos.unexplained_gaps',
        value: r.unexplainedGaps,
        unit: 'events',
        context: { seed: OPTIONS.seed },
      },
      {
        name: 'chaos.recovery_s',
        value: r.recoveryS ?? Number.NaN,
        unit: 's',
        context: { seed: OPTIONS.seed },
      },
    ];
  },
};
