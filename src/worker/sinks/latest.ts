/**
 * Latest sink: the newest row of each product in a batch becomes that product's latest snapshot (what /latest
 * serves and the dashboard shows): its quote and top levels, features, every model's probability, live quality
 * and the feed's health. Written before the lake: it is what users see and what the exchange -> DynamoDB latency
 * measures.
 */
import { FEATURE_NAMES } from '../../features/spec.js';
import type { FeatureRow } from '../../features/types.js';
import { thresholdFor } from '../../model/metadata.js';
import type { LoadedModel } from '../../model/types.js';
import type { LatestSnapshot } from '../../storage/latest.js';
import type { FeedHealth } from '../../stream/record.js';
import type { DriftFigure } from '../drift.js';
import type { Scored } from '../score.js';

export type LatestSnapshotInput = Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'>;

export interface LatestContext {
  /** Live quality for a product's snapshot, given the version that scored it per target. */
  quality(product: string, versions: ReadonlyMap<string, string>): LatestSnapshot['quality'] | undefined;
  /** Feature drift of the inputs `model` scored for `product` (undefined until enough rows). */
  drift(product: string, model: LoadedModel): DriftFigure | undefined;
  feed(product: string): FeedHealth | undefined;
  /** The product's event-time watermark (µs): its newest exchange time. */
  watermarkUs(product: string): number | undefined;
  /** The product's book state and its last verification (absent for a ticker-only product's book). */
  book(product: string): Pick<LatestSnapshot, 'book' | 'verification'>;
}

export interface LatestSinkOptions {
  write: (snapshot: LatestSnapshotInput) => Promise<void>;
  /** Push (sinks/push.ts): each snapshot is offered before its write (O(1); the posts run off the batch). */
  offer?: (snapshot: LatestSnapshotInput) => void;
  /** Called once a snapshot is acknowledged: wall ms from the newest exchange time to the ack. */
  onAck?: (product: string, latencyMs: number) => void;
  /** Wall clock, ms: only for latencyMs / updatedAtMs, never for features. */
  now: () => number;
}

/** The snapshot of row `i` of a batch. */
export function latestSnapshot(
  row: FeatureRow,
  i: number,
  scored: readonly Scored[],
  ctx: LatestContext,
  nowMs: number,
): LatestSnapshotInput {
  const features: Record<string, number> = {};
  FEATURE_NAMES.forEach((name, f) => {
    const v = row.values[f]!;
    if (Number.isFinite(v)) features[name] = v;
  });
  const predictions: LatestSnapshot['predictions'] = {};
  const versions = new Map<string, string>();
  const drift: NonNullable<LatestSnapshot['drift']> = {};
  for (const s of scored) {
    const model = s.models[i];
    if (!model) continue;
    versions.set(s.target, model.version);
    const d = ctx.drift(row.product, model);
    if (d) drift[s.target] = d;
    const judged = s.judged[i];
    // A vol model's τ for this product; null (said, not borrowed from another product) when it has none.
    const threshold = thresholdFor(model, row.product);
    predictions[s.target] = {
      probability: s.probabilities[i]!,
      modelVersion: model.version,
      featureSet: model.featureSet,
      ...(threshold !== undefined ? { threshold } : {}),
      // Inputs out of the training population: the probability is given, and said to be doubtful.
      ...(d?.flagged ? { drifted: true } : {}),
      ...(judged ? { lineage: judged.lineage } : {}),
      ...(judged?.abstain ? { abstain: judged.abstain } : {}),
    };
  }
  const watermarkUs = ctx.watermarkUs(row.product) ?? row.tsUs;
  const snapshot: LatestSnapshotInput = {
    product: row.product,
    tsUs: row.tsUs,
    seq: row.seq,
    bestBid: row.bestBid,
    bestAsk: row.bestAsk,
    mid: row.mid,
    spread: row.spread,
    spreadBps: (row.spread / row.mid) * 1e4,
    bids: row.top?.bids ?? [],
    asks: row.top?.asks ?? [],
    features,
    predictions,
    latencyMs: Math.max(0, nowMs - watermarkUs / 1000),
    updatedAtMs: nowMs,
  };
  const quality = ctx.quality(row.product, versions);
  if (quality) snapshot.quality = quality;
  if (Object.keys(drift).length) snapshot.drift = drift;
  const feed = ctx.feed(row.product);
  if (feed) snapshot.feed = feed;
  return { ...snapshot, ...ctx.book(row.product) };
}

export class LatestSink {
  /** Each product's last snapshot: re-sent with its new book state when that changes while no row comes. */
  private readonly last = new Map<string, LatestSnapshotInput>();

  constructor(private readonly opts: LatestSinkOptions) {}

  /**
   * Writes the newest row of each product of `rows` (all products in parallel). A product without a row whose
   * book state or verification changed (a book resyncing emits no rows) has its last snapshot written again with
   * them, so /latest and /health say so.
   */
  async write(rows: readonly FeatureRow[], scored: readonly Scored[], ctx: LatestContext): Promise<void> {
    const newest = new Map<string, number>();
    for (let i = 0; i < rows.length; i++) newest.set(rows[i]!.product, i);
    const now = this.opts.now();
    const writes = [...newest.values()].map(async (i) => {
      const row = rows[i]!;
      const snapshot = latestSnapshot(row, i, scored, ctx, now);
      this.last.set(row.product, snapshot);
      this.opts.offer?.(snapshot);
      await this.opts.write(snapshot);
      const watermarkUs = ctx.watermarkUs(row.product) ?? row.tsUs;
      this.opts.onAck?.(row.product, this.opts.now() - watermarkUs / 1000);
    });
    for (const [product, previous] of this.last) {
      if (newest.has(product)) continue;
      const state = ctx.book(product);
      if (state.book === previous.book && sameVerification(state.verification, previous.verification))
        continue;
      const snapshot = { ...previous, ...state, updatedAtMs: now };
      this.last.set(product, snapshot);
      this.opts.offer?.(snapshot);
      writes.push(this.opts.write(snapshot));
    }
    await Promise.all(writes);
  }
}

function sameVerification(a: LatestSnapshot['verification'], b: LatestSnapshot['verification']): boolean {
  return a?.result === b?.result && a?.atUs === b?.atUs && a?.reason === b?.reason;
}
