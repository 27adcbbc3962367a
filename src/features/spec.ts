/**
 * The feature definitions: ONE list, used live, in replay and in training. FEATURE_SPEC is generated from it,
 * so a model's feature_spec.json can be compared with the code that will feed it.
 * Change a definition => bump FEATURE_VERSION (models trained on the old meaning must not be served).
 */
import type { OrderBook } from '../book/book.js';
import type { FeatureDef, FeatureSpec } from './types.js';

export const FEATURE_VERSION = 1;
export const DEFAULT_TICK_MS = 100;
/** Length of the trailing windows ("over 1 s"): events with exchUs in [t - 1 s, t). */
export const WINDOW_US = 1_000_000;
/** time_since_quote_change_s saturates here (also its value before any change was seen). */
export const QUOTE_AGE_CAP_S = 10;

/** Product state as of all events with exchUs < tsUs; prices are floats in quote currency. */
export interface TickContext {
  tsUs: number;
  book: OrderBook;
  bid: number;
  ask: number;
  mid: number;
  /** Mid at the tick 1 s earlier, NaN when the book was not valid then (or not yet tracked). */
  midOneSecondAgo: number;
  /** Exchange time of the last best bid/ask price change, NaN when none seen. */
  lastQuoteChangeUs: number;
  quoteChanges1s: number;
  tradeCount1s: number;
  /** Taker buy / sell volume in the window, exact 1e-8 units. */
  buyUnits1s: number;
  sellUnits1s: number;
  bookUpdates1s: number;
}

interface FeatureImpl extends FeatureDef {
  compute(c: TickContext): number;
}

const UNITS = 1e8;
const BPS = 1e4;

/** (a - b) / (a + b), 0 when both are 0. */
function imbalance(a: number, b: number): number {
  return a + b > 0 ? (a - b) / (a + b) : 0;
}

function depthImbalance(book: OrderBook, levels: number): number {
  let bid = 0;
  let ask = 0;
  for (let i = 0; i < levels; i++) {
    bid += book.sizeAt('bid', i) || 0; // NaN past the end counts as no size
    ask += book.sizeAt('ask', i) || 0;
  }
  return imbalance(bid, ask);
}

const f32 = 'float32' as const;

export const FEATURES: readonly FeatureImpl[] = [
  {
    name: 'spread_bps',
    type: f32,
    description: '(best ask - best bid) / mid, basis points',
    compute: (c) => ((c.ask - c.bid) / c.mid) * BPS,
  },
  {
    name: 'l1_imbalance',
    type: f32,
    description: '(best bid size - best ask size) / (sum), in [-1, 1]',
    compute: (c) => imbalance(c.book.sizeAt('bid', 0), c.book.sizeAt('ask', 0)),
  },
  {
    name: 'depth_imbalance_3',
    type: f32,
    description: '(bid size - ask size) / (sum) over the best 3 levels of each side, in [-1, 1]',
    compute: (c) => depthImbalance(c.book, 3),
  },
  {
    name: 'microprice_offset_bps',
    type: f32,
    description:
      'size-weighted microprice (bid*askSize + ask*bidSize)/(bidSize+askSize) minus mid, over mid, bps',
    compute: (c) => {
      const qb = c.book.sizeAt('bid', 0);
      const qa = c.book.sizeAt('ask', 0);
      const micro = (c.bid * qa + c.ask * qb) / (qa + qb);
      return ((micro - c.mid) / c.mid) * BPS;
    },
  },
  {
    name: 'mid_log_return_1s_bps',
    type: f32,
    description: 'ln(mid / mid 1 s earlier), bps; 0 when the mid 1 s earlier is unknown',
    compute: (c) => (Number.isFinite(c.midOneSecondAgo) ? Math.log(c.mid / c.midOneSecondAgo) * BPS : 0),
  },
  {
    name: 'time_since_quote_change_s',
    type: f32,
    description: `seconds since the best bid or best ask price last changed, capped at ${QUOTE_AGE_CAP_S} (also when never)`,
    compute: (c) =>
      Number.isFinite(c.lastQuoteChangeUs)
        ? Math.min((c.tsUs - c.lastQuoteChangeUs) / 1e6, QUOTE_AGE_CAP_S)
        : QUOTE_AGE_CAP_S,
  },
  {
    name: 'quote_changes_1s',
    type: f32,
    description: 'number of best bid/ask price changes in the last 1 s',
    compute: (c) => c.quoteChanges1s,
  },
  {
    name: 'trade_count_1s',
    type: f32,
    description: 'number of trades in the last 1 s',
    compute: (c) => c.tradeCount1s,
  },
  {
    name: 'signed_volume_1s',
    type: f32,
    description:
      '(taker buy volume - taker sell volume) / (sum) over the last 1 s, in [-1, 1]; 0 without trades',
    compute: (c) => imbalance(c.buyUnits1s, c.sellUnits1s),
  },
  {
    name: 'log_volume_1s',
    type: f32,
    description: 'ln(1 + traded base volume in the last 1 s)',
    compute: (c) => Math.log1p((c.buyUnits1s + c.sellUnits1s) / UNITS),
  },
  {
    name: 'book_updates_1s',
    type: f32,
    description: 'number of level changes (any depth) in the last 1 s',
    compute: (c) => c.bookUpdates1s,
  },
];

export const FEATURE_NAMES: readonly string[] = FEATURES.map((f) => f.name);

export function featureSpec(tickMs: number = DEFAULT_TICK_MS): FeatureSpec {
  return {
    version: FEATURE_VERSION,
    tickMs,
    features: FEATURES.map(({ name, type, description }) => ({ name, type, description })),
  };
}

/** The spec of the code at the default tick; use featureSpec(tickMs) when TICK_MS is configured. */
export const FEATURE_SPEC: FeatureSpec = featureSpec();

export class FeatureSpecMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FeatureSpecMismatchError';
  }
}

/** Throws unless `spec` (e.g. a model's) describes exactly the features this code computes at `tickMs`. */
export function assertSpecMatches(spec: FeatureSpec, tickMs: number): void {
  const ours = featureSpec(tickMs);
  if (spec.version !== ours.version) {
    throw new FeatureSpecMismatchError(`feature spec version ${spec.version}, code computes ${ours.version}`);
  }
  if (spec.tickMs !== ours.tickMs) {
    throw new FeatureSpecMismatchError(`feature spec tickMs ${spec.tickMs}, worker runs ${ours.tickMs}`);
  }
  const theirs = spec.features.map((f) => f.name).join(',');
  if (theirs !== FEATURE_NAMES.join(',')) {
    throw new FeatureSpecMismatchError(
      `feature names [${theirs}] differ from the code's [${FEATURE_NAMES.join(',')}]`,
    );
  }
}
