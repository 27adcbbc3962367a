/**
 * A prediction's lineage (#17): what the data it was made from went through, judged for the windows its model
 * actually reads (the longest lookback of its features, src/features/spec.ts lookbackS), from the row's own
 * TickLineage (resyncs, the book check as it stood at the tick) and gap flags — so a replay gives the same lineage.
 *
 * A prediction ABSTAINS (its probability stays, marked, with the reason) when
 * - its product's book was found to differ from the exchange's and has not been rebuilt since (from detection to
 *   repair: a mismatch judged after the last resync);
 * - a resync lies inside the model's window (the book was rebuilt from a snapshot: what its windows hold spans data
 *   that was lost);
 * - a data gap lies inside it: the state is stale at the tick (data_gap_now), or one of the row's trailing windows
 *   that the model's lookback covers has seconds with no known quote (data_gap_{W}s; windows shorter than the
 *   smallest one are seen only through data_gap_now) — except while the product's first window fills after its
 *   first event: that is history not yet seen, not data lost (training leaves such rows out all the same,
 *   isCompleteRow; live quality keeps them).
 * Rows exist only while the book is usable, so a book being resynced yields no prediction to mark.
 */
import { MAX_LOOKBACK_S } from './pipeline.js';
import { WINDOWS_S } from './seconds.js';
import { FEATURE_NAMES, lookbackS } from './spec.js';
import type { FeatureRow, FeatureSpec } from './types.js';

export interface PredictionLineage {
  /** Where the quote came from: the synced L2 book, or the ticker (a product without level2). */
  book: 'synced' | 'ticker';
  /** The model's lookback, s. */
  windowS: number;
  /** Seconds from the product's last resync to the tick; null when none in the last MAX_LOOKBACK_S. */
  sinceResyncS: number | null;
  /** Resyncs inside the model's window. */
  resyncs: number;
  /** A data gap inside the model's window. */
  gap: boolean;
  /**
   * Exchange → ingest latency of the product's newest event before the tick that tells the exchange's time now
   * (tellsExchangeNow; a ticker for a product without level2), ms (null: none yet). Measured, not
   * derived from the exchange's data, so a replay or another connection gives another value; it never abstains (a
   * fast simulator's or an old capture's exchange clock is far from ours).
   */
  feedLatencyMs: number | null;
  /** The last book check at the tick: its result and age (s; null before any check). */
  verification: { result: 'match' | 'mismatch' | 'unavailable' | 'pending'; ageS: number | null };
}

export interface JudgedLineage {
  lineage: PredictionLineage;
  /** Why the prediction should not be acted on; absent when it can. */
  abstain?: string;
}

const DATA_GAP_NOW = FEATURE_NAMES.indexOf('data_gap_now');
const SOURCE_IS_TICKER = FEATURE_NAMES.indexOf('source_is_ticker');
const WINDOW_GAP = WINDOWS_S.map((w) => ({ w, i: FEATURE_NAMES.indexOf(`data_gap_${w}s`) }));

const lookbacks = new WeakMap<FeatureSpec, number>();
function windowOf(spec: FeatureSpec): number {
  let w = lookbacks.get(spec);
  if (w === undefined) {
    w = Math.min(lookbackS(spec.features.map((f) => f.name)), MAX_LOOKBACK_S);
    lookbacks.set(spec, w);
  }
  return w;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** The lineage of `row` scored by a model of `spec`; undefined for a row without TickLineage. */
export function judgeLineage(row: FeatureRow, spec: FeatureSpec): JudgedLineage | undefined {
  const t = row.lineage;
  if (!t) return undefined;
  const windowS = windowOf(spec);
  const fromUs = row.tsUs - windowS * 1e6;
  const lastResyncUs = t.resyncsUs.at(-1);
  let resyncs = 0;
  for (const us of t.resyncsUs) if (us > fromUs) resyncs++;
  const v = row.values;
  // While the product's first window fills, its unknown seconds are history not yet seen, not data lost.
  const filling = row.tsUs - t.startUs < windowS * 1e6;
  const gap =
    v[DATA_GAP_NOW] === 1 || (!filling && WINDOW_GAP.some(({ w, i }) => w + 1 <= windowS && v[i] === 1));
  const check = t.verification;
  const lineage: PredictionLineage = {
    book: v[SOURCE_IS_TICKER] === 1 ? 'ticker' : 'synced',
    windowS,
    sinceResyncS: lastResyncUs === undefined ? null : round1((row.tsUs - lastResyncUs) / 1e6),
    resyncs,
    gap,
    feedLatencyMs: t.feedLatencyUs === null ? null : Math.round(t.feedLatencyUs / 1000),
    verification: {
      result: check?.result ?? 'pending',
      ageS: check?.atUs == null ? null : round1((row.tsUs - check.atUs) / 1e6),
    },
  };
  const why = abstainCause(lineage);
  return why ? { lineage, abstain: abstainReason(why, lineage) } : { lineage };
}

/**
 * Whether (and why) a prediction with this lineage abstains: decided from the lineage alone, so a stored lineage
 * gives back the same answer. A mismatch counts until a resync follows it (the check is younger than the resync).
 */
export function abstainCause(l: PredictionLineage): AbstainCause | undefined {
  const v = l.verification;
  if (v.result === 'mismatch' && v.ageS !== null && (l.sinceResyncS === null || v.ageS < l.sinceResyncS))
    return 'mismatch';
  if (l.resyncs > 0) return 'resync';
  if (l.gap) return 'gap';
  return undefined;
}

/** Why a prediction abstains, as a cause (the stored form) and as words (what the API says). */
export type AbstainCause = 'mismatch' | 'resync' | 'gap';

export function abstainReason(cause: AbstainCause, l: PredictionLineage): string {
  switch (cause) {
    case 'mismatch':
      return `the book differed from the exchange's at its last check (${l.verification.ageS} s before); awaiting its resync`;
    case 'resync':
      return `a resync ${l.sinceResyncS} s before, inside the model's ${l.windowS} s window`;
    case 'gap':
      return `a data gap inside the model's ${l.windowS} s window`;
  }
}
