/**
 * The feature definitions: ONE list, used live, in replay and in training. FEATURE_SPEC is generated from it,
 * so a model's feature_spec.json can be compared with the code that will feed it.
 * Change a definition => bump FEATURE_VERSION (models trained on the old meaning must not be served).
 */

import type { OrderBook } from '../book/book.js';
import { QuoteWatchError } from '../errors.js';
import { VOL_SPIKE_LEVEL_FLOOR_BPS } from '../labels/volSpike.js';
import { WINDOWS_S, type WindowAggregates } from './seconds.js';
import type { FeatureDef, FeatureSpec } from './types.js';

export const FEATURE_VERSION = 5;
export const DEFAULT_TICK_MS = 100;
/** Length of the short trailing windows: events with exchUs in [t - 1 s, t) and [t - 5 s, t). */
export const WINDOW_US = 1_000_000;
export const WINDOW_5S_US = 5_000_000;
/** time_since_quote_change_s saturates here (also its value before any change was seen). */
export const QUOTE_AGE_CAP_S = 10;
/** time_since_trade_s saturates here (also its value before any trade was seen). */
export const TRADE_AGE_CAP_S = 300;
/**
 * No event of a product for longer than this is a data gap (config GAP_LIMIT_MS): ticks in it are flagged,
 * second boundaries in it have no known quote, so windows and labels are broken rather than bridged.
 */
export const DEFAULT_GAP_LIMIT_MS = 5_000;

/**
 * Product state as of all events with exchUs < tsUs; prices are floats in quote currency, sizes and volumes
 * exact 1e-8 units. The quote (bid/ask/sizes) comes from the L2 book, or from the ticker for a product that
 * never had L2 data (fromTicker).
 */
export interface TickContext {
  tsUs: number;
  book: OrderBook;
  fromTicker: boolean;
  bid: number;
  ask: number;
  mid: number;
  /** Best bid/ask sizes; 0 when unknown (a ticker without sizes). */
  bidSize: number;
  askSize: number;
  /** Mid at the tick 1 s earlier, NaN when the quote was not valid then (or not yet tracked). */
  midOneSecondAgo: number;
  /** Exchange time of the last best bid/ask price change, NaN when none seen. */
  lastQuoteChangeUs: number;
  quoteChanges1s: number;
  quoteChanges5s: number;
  bookUpdates1s: number;
  /** Level changes in the last 5 s. */
  bookUpdates5s: number;
  tradeCount1s: number;
  buyUnits1s: number;
  sellUnits1s: number;
  tradeCount5s: number;
  buyUnits5s: number;
  sellUnits5s: number;
  /** Exchange time of the last trade / last event of any kind, NaN when none. */
  lastTradeUs: number;
  lastEventUs: number;
  gapLimitUs: number;
  /** Aggregates over the whole seconds before the tick, one per WINDOWS_S entry. */
  windows: readonly WindowAggregates[];
}

interface FeatureImpl extends FeatureDef {
  /**
   * How far back (s) the value reaches: a resync or a data gap within this much of the tick makes it doubtful
   * (a prediction's lineage, src/features/lineage.ts). 0: the state at the tick alone. Not part of the spec.
   */
  lookbackS: number;
  compute(c: TickContext): number;
}

const UNITS = 1e8;
const BPS = 1e4;

/** (a - b) / (a + b), 0 when both are 0. */
function imbalance(a: number, b: number): number {
  return a + b > 0 ? (a - b) / (a + b) : 0;
}

/** Queue imbalance over the best `levels` levels of each side combined; 0 from a ticker beyond level 1. */
function depthImbalance(c: TickContext, levels: number): number {
  if (c.fromTicker) return levels === 1 ? imbalance(c.bidSize, c.askSize) : 0;
  let bid = 0;
  let ask = 0;
  for (let i = 0; i < levels; i++) {
    bid += c.book.sizeAt('bid', i) || 0; // NaN past the end counts as no size
    ask += c.book.sizeAt('ask', i) || 0;
  }
  return imbalance(bid, ask);
}

/** Quote-currency value of the best `levels` levels of a side (Σ size × price), 0 from a ticker. */
function depthNotional(c: TickContext, side: 'bid' | 'ask', levels: number): number {
  if (c.fromTicker) return 0;
  let sum = 0;
  for (let i = 0; i < levels; i++) {
    const size = c.book.sizeAt(side, i);
    if (Number.isNaN(size)) break;
    sum += (size / UNITS) * (c.book.priceAt(side, i) / UNITS);
  }
  return sum;
}

/** sign(x) * ln(1 + |x|): keeps the sign of a volume and tames its scale. */
function signedLog(x: number): number {
  return Math.sign(x) * Math.log1p(Math.abs(x));
}

const f32 = 'float32' as const;

const topOfBook: FeatureImpl[] = [
  {
    name: 'spread_bps',
    lookbackS: 0,
    type: f32,
    description: '(best ask - best bid) / mid, basis points',
    compute: (c) => ((c.ask - c.bid) / c.mid) * BPS,
  },
  {
    name: 'microprice_offset_bps',
    lookbackS: 0,
    type: f32,
    description:
      'size-weighted microprice (bid*askSize + ask*bidSize)/(bidSize+askSize) minus mid, over mid, bps; ' +
      '0 when the sizes are unknown (ticker without sizes)',
    compute: (c) => {
      const q = c.bidSize + c.askSize;
      if (!(q > 0)) return 0;
      const micro = (c.bid * c.askSize + c.ask * c.bidSize) / q;
      return ((micro - c.mid) / c.mid) * BPS;
    },
  },
  ...[1, 2, 3].map(
    (n): FeatureImpl => ({
      name: `imbalance_l${n}`,
      lookbackS: 0,
      type: f32,
      description:
        `queue imbalance (bid size - ask size) / (sum) over the best ${n} level(s) of each side combined, ` +
        `in [-1, 1]${n === 1 ? ' (ticker: its best sizes, 0 without them)' : '; 0 from a ticker'}`,
      compute: (c) => depthImbalance(c, n),
    }),
  ),
  ...(['bid', 'ask'] as const).map(
    (side): FeatureImpl => ({
      name: `log_notional_depth_${side}_3`,
      lookbackS: 0,
      type: f32,
      description: `ln(1 + quote-currency value (size × price) of the best 3 ${side} levels); 0 from a ticker`,
      compute: (c) => Math.log1p(depthNotional(c, side, 3)),
    }),
  ),
  {
    name: 'time_since_quote_change_s',
    lookbackS: QUOTE_AGE_CAP_S,
    type: f32,
    description: `seconds since the best bid or best ask price last changed, capped at ${QUOTE_AGE_CAP_S} (also when never)`,
    compute: (c) =>
      Number.isFinite(c.lastQuoteChangeUs)
        ? Math.min((c.tsUs - c.lastQuoteChangeUs) / 1e6, QUOTE_AGE_CAP_S)
        : QUOTE_AGE_CAP_S,
  },
  {
    name: 'quote_changes_1s',
    lookbackS: 1,
    type: f32,
    description: 'number of best bid/ask price changes in the last 1 s',
    compute: (c) => c.quoteChanges1s,
  },
  {
    name: 'quote_changes_5s',
    lookbackS: 5,
    type: f32,
    description: 'number of best bid/ask price changes in the last 5 s',
    compute: (c) => c.quoteChanges5s,
  },
  {
    name: 'mid_log_return_1s_bps',
    lookbackS: 1,
    type: f32,
    description: 'ln(mid / mid at the tick 1 s earlier), bps; 0 when that mid is unknown',
    compute: (c) => (Number.isFinite(c.midOneSecondAgo) ? Math.log(c.mid / c.midOneSecondAgo) * BPS : 0),
  },
  {
    name: 'book_updates_1s',
    lookbackS: 1,
    type: f32,
    description: 'number of level changes (any depth) in the last 1 s; 0 from a ticker',
    compute: (c) => c.bookUpdates1s,
  },
];

interface TradeWindow {
  seconds: number;
  count(c: TickContext): number;
  buy(c: TickContext): number;
  sell(c: TickContext): number;
}

const TRADE_WINDOWS: TradeWindow[] = [
  { seconds: 1, count: (c) => c.tradeCount1s, buy: (c) => c.buyUnits1s, sell: (c) => c.sellUnits1s },
  { seconds: 5, count: (c) => c.tradeCount5s, buy: (c) => c.buyUnits5s, sell: (c) => c.sellUnits5s },
];

const tradeWindows: FeatureImpl[] = TRADE_WINDOWS.flatMap(
  ({ seconds: w, count, buy, sell }): FeatureImpl[] => [
    {
      name: `trade_count_${w}s`,
      lookbackS: w,
      type: f32,
      description: `number of trades in the last ${w} s`,
      compute: count,
    },
    {
      name: `log_notional_volume_${w}s`,
      lookbackS: w,
      type: f32,
      description: `ln(1 + traded volume in the last ${w} s valued at the tick's mid, quote currency)`,
      compute: (c) => Math.log1p(((buy(c) + sell(c)) / UNITS) * c.mid),
    },
    {
      name: `signed_log_notional_volume_${w}s`,
      lookbackS: w,
      type: f32,
      description: `signed aggressor volume: sign(v) * ln(1 + |v|), v = (taker buy - taker sell volume in the last ${w} s) × mid, quote currency`,
      compute: (c) => signedLog(((buy(c) - sell(c)) / UNITS) * c.mid),
    },
    {
      name: `trade_imbalance_${w}s`,
      lookbackS: w,
      type: f32,
      description: `(taker buy volume - taker sell volume) / (sum) over the last ${w} s, in [-1, 1]; 0 without trades`,
      compute: (c) => imbalance(buy(c), sell(c)),
    },
  ],
);

const windowed: FeatureImpl[] = WINDOWS_S.flatMap((w, i): FeatureImpl[] => {
  const over = `over the ${w} whole seconds before the tick's last second boundary`;
  const a = (c: TickContext) => c.windows[i]!;
  return [
    {
      name: `log_return_${w}s_bps`,
      lookbackS: w + 1,
      type: f32,
      description: `sum of the known 1 s log returns of the mid ${over}, bps (unknown seconds add nothing)`,
      compute: (c) => a(c).logReturn * BPS,
    },
    {
      name: `rv_${w}s_bps`,
      lookbackS: w + 1,
      type: f32,
      description: `realized volatility: root mean square of the known 1 s log returns ${over}, bps; 0 when none`,
      compute: (c) => a(c).rv * BPS,
    },
    {
      name: `mean_abs_dmid_${w}s_bps`,
      lookbackS: w + 1,
      type: f32,
      description: `mean |Δmid| per second / mid ${over}, bps; 0 when none known`,
      compute: (c) => a(c).meanAbsDmid * BPS,
    },
    {
      name: `mean_spread_${w}s_bps`,
      lookbackS: w + 1,
      type: f32,
      description: `mean spread / mid at the known second boundaries ${over}, bps; 0 when none`,
      compute: (c) => a(c).meanSpread * BPS,
    },
    {
      name: `mean_imbalance_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description: `mean L1 queue imbalance at the known second boundaries ${over}; 0 when none`,
      compute: (c) => a(c).meanImbalance,
    },
    {
      name: `trade_rate_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description: `trade intensity: trades per second ${over}`,
      compute: (c) => a(c).trades / w,
    },
    {
      name: `log_notional_volume_rate_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description: `volume velocity: ln(1 + traded volume per second ${over}, valued at the tick's mid)`,
      compute: (c) => Math.log1p((a(c).volumeUnits / UNITS / w) * c.mid),
    },
    {
      name: `quote_change_rate_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description: `best bid/ask price changes per second ${over}`,
      compute: (c) => a(c).quoteChanges / w,
    },
    {
      name: `book_update_rate_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description: `level changes (any depth) per second ${over}: the book's activity; 0 from a ticker`,
      compute: (c) => a(c).bookUpdates / w,
    },
    {
      name: `data_gap_${w}s`,
      lookbackS: w + 1,
      type: f32,
      description:
        `1 when any 1 s return ${over} is unknown (a data gap longer than the gap limit, an invalid book ` +
        'at a second boundary, or not yet enough history), else 0',
      compute: (c) => (a(c).knownReturns < w ? 1 : 0),
    },
  ];
});

/** The window of WINDOWS_S a relative feature divides by: the product's own trailing level. */
const LEVEL_S = 300;
const LEVEL = WINDOWS_S.indexOf(LEVEL_S);
const W30 = WINDOWS_S.indexOf(30);
/** Added to both rates of a ratio: one event per level window, so a quiet product's ratio stays finite. */
const RATE_FLOOR = 1 / LEVEL_S;

/** ln((a + floor) / (b + floor)): 0 when equal, symmetric for up and down, finite when either is 0. */
function logRatio(a: number, b: number, floor: number): number {
  return Math.log((a + floor) / (b + floor));
}

/** Per kind of event: what it counts, its count in a whole-second window, and its count over the last 5 s. */
const RATES = {
  quote: {
    what: 'best bid/ask price changes',
    inWindow: (a: WindowAggregates) => a.quoteChanges,
    last5s: (c: TickContext) => c.quoteChanges5s,
  },
  trade: {
    what: 'trades',
    inWindow: (a: WindowAggregates) => a.trades,
    last5s: (c: TickContext) => c.tradeCount5s,
  },
  book_update: {
    what: 'level changes (any depth)',
    inWindow: (a: WindowAggregates) => a.bookUpdates,
    last5s: (c: TickContext) => c.bookUpdates5s,
  },
} as const;

/**
 * The recent market against the product's own level over the last 300 s: scale-free across products and hours,
 * and what the vol-spike target compares (the forward 60 s volatility over rv_300s_bps, src/labels/volSpike.ts).
 * Trees split on one input at a time, so a ratio of two inputs is one they cannot build; activity (quote changes,
 * trades) rises with volatility in real markets and the simulator, and reacts within seconds where a 30 s realized
 * volatility lags. The book's level changes are the most numerous events, so their rate is the least noisy estimate
 * of the current volatility: on development seed 7 (6 h) the 5 s and 30 s ratios with the 300 s level explained
 * 68 % of the simulator's latent log-volatility on later rows, all version-4 inputs together 57 % (l2 set only:
 * a ticker has no level changes). Floors: the label's level floor for volatility, one event per 300 s for rates.
 */
const relative: FeatureImpl[] = [
  ...([30, 60] as const).map((w): FeatureImpl => {
    const short = WINDOWS_S.indexOf(w);
    return {
      name: `log_rv_ratio_${w}s_${LEVEL_S}s`,
      lookbackS: LEVEL_S + 1,
      type: f32,
      description: `ln((rv_${w}s_bps + f) / (rv_${LEVEL_S}s_bps + f)), f = ${VOL_SPIKE_LEVEL_FLOOR_BPS} bps`,
      compute: (c) =>
        logRatio(c.windows[short]!.rv * BPS, c.windows[LEVEL]!.rv * BPS, VOL_SPIKE_LEVEL_FLOOR_BPS),
    };
  }),
  ...Object.entries(RATES).flatMap(([kind, r]) =>
    ([5, 30] as const).map((w): FeatureImpl => {
      const recent = w === 5 ? r.last5s : (c: TickContext) => r.inWindow(c.windows[W30]!);
      return {
        name: `log_${kind}_rate_ratio_${w}s_${LEVEL_S}s`,
        lookbackS: LEVEL_S + 1,
        type: f32,
        description:
          `ln((${r.what} per second over the last ${w} s + f) / ` +
          `(the same over the ${LEVEL_S} whole seconds before the tick's last second boundary + f)), f = 1/${LEVEL_S}`,
        compute: (c) => logRatio(recent(c) / w, r.inWindow(c.windows[LEVEL]!) / LEVEL_S, RATE_FLOOR),
      };
    }),
  ),
  {
    name: `abs_return_1s_vs_rv_${LEVEL_S}s`,
    lookbackS: LEVEL_S + 1,
    type: f32,
    description: `|mid_log_return_1s_bps| / max(rv_${LEVEL_S}s_bps, ${VOL_SPIKE_LEVEL_FLOOR_BPS}): the last second's move in units of the level; 0 when that mid is unknown`,
    compute: (c) =>
      Number.isFinite(c.midOneSecondAgo)
        ? (Math.abs(Math.log(c.mid / c.midOneSecondAgo)) * BPS) /
          Math.max(c.windows[LEVEL]!.rv * BPS, VOL_SPIKE_LEVEL_FLOOR_BPS)
        : 0,
  },
];

const status: FeatureImpl[] = [
  {
    name: 'time_since_trade_s',
    lookbackS: TRADE_AGE_CAP_S,
    type: f32,
    description: `seconds since the last trade, capped at ${TRADE_AGE_CAP_S} (also when never)`,
    compute: (c) =>
      Number.isFinite(c.lastTradeUs)
        ? Math.min((c.tsUs - c.lastTradeUs) / 1e6, TRADE_AGE_CAP_S)
        : TRADE_AGE_CAP_S,
  },
  {
    name: 'data_gap_now',
    lookbackS: 0,
    type: f32,
    description:
      "1 when the product's last event is older than the gap limit at the tick (the state is stale), else 0",
    compute: (c) => (c.tsUs - c.lastEventUs > c.gapLimitUs ? 1 : 0),
  },
  {
    name: 'source_is_ticker',
    lookbackS: 0,
    type: f32,
    description:
      '1 when the quote comes from the ticker (a product without L2 data: book-only features are 0), ' +
      '0 when from the L2 book',
    compute: (c) => (c.fromTicker ? 1 : 0),
  },
];

/**
 * Model inputs, all scale-free. The row also carries best_bid, best_ask (exact decimals), mid and spread
 * (quote currency) as columns beside them (FeatureRow, the lake's features zone).
 */
export const FEATURES: readonly FeatureImpl[] = [
  ...topOfBook,
  ...tradeWindows,
  ...windowed,
  ...relative,
  ...status,
];

export const FEATURE_NAMES: readonly string[] = FEATURES.map((f) => f.name);

const LOOKBACK_S = new Map(FEATURES.map((f) => [f.name, f.lookbackS]));

/**
 * How far back (s) a model with these inputs looks: the longest reach of its features (windowed ones reach their
 * window plus the second before the tick's last boundary). A name the code does not define counts 0.
 */
export function lookbackS(names: readonly string[]): number {
  let max = 0;
  for (const n of names) max = Math.max(max, LOOKBACK_S.get(n) ?? 0);
  return max;
}

/**
 * A model's inputs are one of these sets of the row's features (the spec it travels with names the set):
 *   l2      everything the L2 book, trades and quote give, for products with level2 data;
 *   ticker  what a ticker-only feed gives (quote, its changes and windows, trade flow; from the ticker's
 *           volume when there is no trades channel): a ticker-only recording scores with it.
 * Neither holds a column that only says how fresh or complete the state is, or where the quote came from
 * (data_gap_*, source_is_ticker): rows with incomplete windows or stale state are left out of training
 * (isCompleteRow), so those columns would be constant there, and serving must not score such a flag.
 */
export const FEATURE_SETS = ['l2', 'ticker'] as const;
export type FeatureSet = (typeof FEATURE_SETS)[number];

/** Row columns that are never model inputs (flags of the row's state, not of the market). */
export const STATE_FLAGS: readonly string[] = [
  'data_gap_now',
  'source_is_ticker',
  ...WINDOWS_S.map((w) => `data_gap_${w}s`),
];
/** Features that need level2 data (the book beyond the best quote, its sizes or update counts). */
const NEEDS_L2: ReadonlySet<string> = new Set([
  'microprice_offset_bps',
  'imbalance_l1',
  'imbalance_l2',
  'imbalance_l3',
  'log_notional_depth_bid_3',
  'log_notional_depth_ask_3',
  'book_updates_1s',
  ...WINDOWS_S.map((w) => `book_update_rate_${w}s`),
  ...[5, 30].map((w) => `log_book_update_rate_ratio_${w}s_${LEVEL_S}s`),
  ...WINDOWS_S.map((w) => `mean_imbalance_${w}s`),
]);

export const MODEL_FEATURES: Readonly<Record<FeatureSet, readonly string[]>> = {
  l2: FEATURE_NAMES.filter((n) => !STATE_FLAGS.includes(n)),
  ticker: FEATURE_NAMES.filter((n) => !STATE_FLAGS.includes(n) && !NEEDS_L2.has(n)),
};

const column = (name: string) => FEATURE_NAMES.indexOf(name);
const SOURCE_IS_TICKER = column('source_is_ticker');
const DATA_GAP_NOW = column('data_gap_now');
const WINDOW_GAPS = WINDOWS_S.map((w) => column(`data_gap_${w}s`));

/**
 * A row fit for training and evaluation: its state is fresh and every trailing window is full (warm-up rows
 * and rows next to a gap are not what the model will mostly see, and their flags are not inputs).
 */
export function isCompleteRow(values: ArrayLike<number>): boolean {
  if (values[DATA_GAP_NOW] !== 0) return false;
  for (const i of WINDOW_GAPS) if (values[i] !== 0) return false;
  return true;
}

/** The feature sets a row's data supports, best first: an L2 row supports both, a ticker-only row `ticker`. */
export function supportedSets(values: ArrayLike<number>): readonly FeatureSet[] {
  return values[SOURCE_IS_TICKER] === 1 ? ['ticker'] : FEATURE_SETS;
}

/**
 * The spec of the lake's feature rows (every column), or with `set` a model's inputs: that set's features in
 * row order, named by `set`.
 */
export function featureSpec(tickMs: number = DEFAULT_TICK_MS, set?: FeatureSet): FeatureSpec {
  const names = set ? new Set(MODEL_FEATURES[set]) : undefined;
  const features = FEATURES.filter((f) => !names || names.has(f.name)).map(({ name, type, description }) => ({
    name,
    type,
    description,
  }));
  return set
    ? { version: FEATURE_VERSION, tickMs, set, features }
    : { version: FEATURE_VERSION, tickMs, features };
}

/** The spec of the code at the default tick (the lake's rows); featureSpec(tickMs, set) for a model's. */
export const FEATURE_SPEC: FeatureSpec = featureSpec();

export class FeatureSpecMismatchError extends QuoteWatchError {}

/**
 * Throws unless `spec` (e.g. a model's) describes exactly features this code computes at `tickMs`: its set's
 * (or, without a set, the whole row's), in order.
 */
export function assertSpecMatches(spec: FeatureSpec, tickMs: number): void {
  if (spec.set !== undefined && !(FEATURE_SETS as readonly string[]).includes(spec.set)) {
    throw new FeatureSpecMismatchError(
      `unknown feature set ${JSON.stringify(spec.set)}; known: ${FEATURE_SETS.join(', ')}`,
    );
  }
  const ours = featureSpec(tickMs, spec.set);
  if (spec.version !== ours.version) {
    throw new FeatureSpecMismatchError(`feature spec version ${spec.version}, code computes ${ours.version}`);
  }
  if (spec.tickMs !== ours.tickMs) {
    throw new FeatureSpecMismatchError(`feature spec tickMs ${spec.tickMs}, worker runs ${ours.tickMs}`);
  }
  const theirs = spec.features.map((f) => f.name).join(',');
  const want = ours.features.map((f) => f.name).join(',');
  if (theirs !== want) {
    throw new FeatureSpecMismatchError(
      `feature names [${theirs}] differ from the code's${spec.set ? ` ${spec.set} set` : ''} [${want}]`,
    );
  }
}

/** The feature set a model's spec names (a spec without one takes the whole row, which needs L2 data). */
export const featureSetOf = (spec: FeatureSpec): FeatureSet => spec.set ?? 'l2';

/** Row column of each of the spec's features, in spec order; a FeatureSpecMismatchError for an unknown name. */
export function featureColumns(spec: FeatureSpec): Int32Array {
  return Int32Array.from(spec.features, (f) => {
    const i = column(f.name);
    if (i < 0) throw new FeatureSpecMismatchError(`feature ${f.name} is not computed by this code`);
    return i;
  });
}

/** The values of `columns` of a row, as a model's input. */
export function selectColumns(values: ArrayLike<number>, columns: Int32Array): number[] {
  return Array.from(columns, (i) => values[i]!);
}
