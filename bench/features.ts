/**
 * features.tick_us: µs per feature tick per product through the real FeaturePipeline (the worker's options:
 * 100 ms ticks, top-3 levels copied into each row, both labelers on).
 *
 * Method: a seeded simulator stream (both default products, SIMULATED_MINUTES of market time) is rendered as
 * Advanced Trade frames and mapped by the production mapper ONCE, outside the timing. Each run feeds all
 * events to a fresh pipeline and drains after every event, as the worker does; the figure is the run's time
 * divided by the ticks it computed (rows + invalid ticks), median of RUNS runs. It is conservative: it
 * includes applying the events that fall between ticks (book updates, trades). `tick_only_us` subtracts the
 * time of applying the same book events to bare OrderBooks, leaving the tick computation itself.
 * The real capture (../shared/data/coinbase/, 46k-level BTC book) is measured the same way when present and
 * reported in the context.
 */
import { OrderBook } from '../src/book/book.js';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_SPEC } from '../src/features/spec.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { absentNote, capture, receivedFrames } from '../test/support/captureFiles.js';
import { type BenchGroup, machineContext, quantile } from './harness.js';

const SEED = 4242;
const SIMULATED_MINUTES = 20;
const RUNS = 5;
const CAPTURE = capture('advancedTrade');

function simulatorEvents(): MarketEvent[] {
  const startUs = seedEpochUs(SEED);
  const session = new Session(DEFAULT_PRODUCTS, SEED, startUs);
  const ids = DEFAULT_PRODUCTS.map((p) => p.productId);
  const out: MarketEvent[] = [];
  const feed = (text: string, recvUs: number) => {
    for (const e of mapAdvancedTradeFrame(text, recvUs).events) if (e.product !== FEED_PRODUCT) out.push(e);
  };
  for (const channel of ['level2', 'market_trades']) {
    const subscribe = JSON.stringify({ type: 'subscribe', channel, product_ids: ids });
    for (const f of session.handleMessage(subscribe)) feed(f.text, session.timeUs);
  }
  const endUs = startUs + SIMULATED_MINUTES * 60_000_000;
  for (let t = startUs; t < endUs; t += 1_000_000) {
    for (const f of session.advanceTo(Math.min(t + 1_000_000, endUs))) feed(f.text, session.timeUs);
  }
  return out;
}

async function captureEvents(): Promise<MarketEvent[]> {
  return (await receivedFrames(CAPTURE)).flatMap((f) =>
    mapAdvancedTradeFrame(f.frame, f.recvUs).events.filter((e) => e.product !== FEED_PRODUCT),
  );
}

function pipelineRun(events: readonly MarketEvent[]): { ms: number; ticks: number; rows: number } {
  const p = new FeaturePipeline({ tickMs: FEATURE_SPEC.tickMs, deltaMs: 500, topLevels: 3 });
  let sink = 0;
  const t0 = performance.now();
  for (const e of events) {
    p.push(e);
    sink += p.drain().rows.length;
  }
  const ms = performance.now() - t0;
  const s = p.stats();
  if (sink !== s.rows) throw new Error('drained rows differ from the pipeline count');
  return { ms, ticks: s.rows + s.invalidTicks, rows: s.rows };
}

/** The same book events applied to bare books: the part of a pipeline run that is not feature work. */
function bookOnlyRun(events: readonly MarketEvent[]): number {
  const books = new Map<string, OrderBook>();
  const t0 = performance.now();
  for (const e of events) {
    let b = books.get(e.product);
    if (!b) {
      b = new OrderBook(e.product);
      books.set(e.product, b);
    }
    if (e.type === 'book_snapshot') b.applySnapshot(e.bids, e.asks);
    else if (e.type === 'book_changes') for (const c of e.changes) b.applyChange(c.side, c.price, c.size);
  }
  return performance.now() - t0;
}

function measure(events: readonly MarketEvent[]) {
  pipelineRun(events); // warm-up (JIT)
  const perTick: number[] = [];
  const tickOnly: number[] = [];
  let ticks = 0;
  for (let i = 0; i < RUNS; i++) {
    const run = pipelineRun(events);
    const books = bookOnlyRun(events);
    ticks = run.ticks;
    perTick.push((run.ms * 1000) / run.ticks);
    tickOnly.push((Math.max(run.ms - books, 0) * 1000) / run.ticks);
  }
  return {
    tickUs: quantile(perTick, 0.5),
    tickOnlyUs: quantile(tickOnly, 0.5),
    ticks,
    events: events.length,
  };
}

export const featuresGroup: BenchGroup = {
  name: 'features',
  description: 'feature tick µs per product through the real pipeline (simulator stream; capture in context)',
  async run() {
    const sim = measure(simulatorEvents());
    const captured = CAPTURE.present ? measure(await captureEvents()) : undefined;
    if (!captured) console.warn(absentNote(CAPTURE, 'the features capture figures'));
    const context = {
      ...machineContext(),
      stream: `simulator seed ${SEED}, ${SIMULATED_MINUTES} min, ${DEFAULT_PRODUCTS.map((p) => p.productId).join(' + ')}`,
      events: sim.events,
      ticks: sim.ticks,
      features: FEATURE_SPEC.features.length,
      runs: RUNS,
      method: 'pipeline time / ticks computed, median of runs; includes applying the events between ticks',
      capture: captured
        ? {
            file: 'advanced-trade-btc-eth-2026-08-09.jsonl.gz',
            events: captured.events,
            ticks: captured.ticks,
            tick_us: captured.tickUs,
            tick_only_us: captured.tickOnlyUs,
          }
        : 'absent',
      command: 'npm run bench -- --only features',
    };
    return [
      { name: 'features.tick_us', value: sim.tickUs, unit: 'µs/tick/product', context },
      {
        name: 'features.tick_only_us',
        value: sim.tickOnlyUs,
        unit: 'µs/tick/product',
        context: { ...context, method: 'as features.tick_us minus applying the book events to bare books' },
      },
    ];
  },
};
