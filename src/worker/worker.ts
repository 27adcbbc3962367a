/**
 * The worker's pipeline, one named stage per module, per batch of stream records (decoded by the consumer,
 * src/worker/decode.ts):
 *
 *   arbitrate lines & de-duplicate (arbiter.ts, dedup.ts) -> book & features (market.ts) -> score (score.ts) -> live quality (quality.ts)
 *     -> sinks: latest snapshot (sinks/latest.ts) and its push (sinks/push.ts), history rows (sinks/history.ts),
 *               Parquet lake (src/storage/lake.ts), features stream (sinks/featuresStream.ts)
 *
 * This module only wires them and keeps the per-shard state: the shard's lake writer, the replay positions of
 * its products and the raw rows not yet handed to the lake. Crash recovery (recovery.ts) saves that state after
 * every batch whose lake objects are stored, and replays the shard from it on a restart.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { logRetries, retryTransient } from '../aws/retry.js';
import { featureColumns, selectColumns } from '../features/spec.js';
import type { FeatureRow } from '../features/types.js';
import type { Logger } from '../log.js';
import { SPIKE_LEVEL_COLUMN, spikeJudgeOf } from '../model/metadata.js';
import type { LoadedModel } from '../model/types.js';
import { putCorrection } from '../storage/corrections.js';
import { LakeWriter } from '../storage/lake.js';
import type { PredictionRow, RawRow } from '../storage/parquet.js';
import type { StreamEvent } from '../stream/record.js';
import { WORKER } from '../telemetry/catalog.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { type ArbiterCounters, type ArbiterOptions, DEFAULT_ARBITER, LineArbiter } from './arbiter.js';
import type { ConsumedRecord, ShardBatch } from './consumer.js';
import { DriftMonitor, type DriftOptions } from './drift.js';
import { MarketStage } from './market.js';
import { LiveQuality, type LiveQualityOptions, QualityPublisher, qualityRecord } from './quality.js';
import {
  type ProductPositions,
  type RecoveryOptions,
  type RecoveryState,
  RecoveryStore,
  replayPoint,
} from './recovery.js';
import { type Scored, Scorer } from './score.js';
import { seqLess } from './shards.js';
import { HistorySink, type HistorySinkOptions } from './sinks/history.js';
import { type LatestContext, LatestSink, type LatestSinkOptions } from './sinks/latest.js';
import type { CheckOutcome } from './verification.js';

export { RecoveryError, type RecoveryOptions } from './recovery.js';

export interface WorkerOptions {
  tickMs: number;
  deltaMs: number;
  /** The feature pipeline's data-gap limit (readFeatureConfig().gapLimitMs), the same as offline. */
  gapLimitMs?: number;
  /** The book check's in-flight window (readWorkerConfig().bookCheckSkewMs; verification.ts). */
  bookCheckSkewMs?: number;
  /**
   * The verdict channel to the ingestor (src/storage/bookVerdicts.ts): called with every mismatch, so the
   * ingestor resubscribes that product's book. Absent: mismatches are only logged and counted.
   */
  onMismatch?: (outcome: CheckOutcome) => Promise<void>;
  s3: S3Client;
  lakeBucket: string;
  /** Ticks per lake object (default one minute of ticks). */
  objectTicks?: number;
  /** The models to score with, asked once per batch (so a reloaded model takes over): ActiveModels.served. */
  models?: () => readonly LoadedModel[];
  writeLatest: LatestSinkOptions['write'];
  /** The dashboard's history rows (sinks/history.ts); absent or writeMs 0 = off. */
  history?: Omit<HistorySinkOptions, 'now'>;
  onLatestAck?: LatestSinkOptions['onAck'];
  /** The dashboards' push (sinks/push.ts PushSink): offered every latest snapshot; absent = off. */
  push?: { offer: NonNullable<LatestSinkOptions['offer']> };
  /** Wall clock, ms: only for the snapshot's latencyMs/updatedAtMs, never for features. */
  now: () => number;
  log: Logger;
  /** Crash recovery (see recovery.ts); without it a restart starts from the consumer's checkpoint only. */
  recovery?: RecoveryOptions;
  /** Where the worker's metrics go (batches, ticks, inference, latency, live quality). */
  telemetry?: Telemetry;
  qualityEveryMs?: number;
  /** Live-quality windows (event time, minimum count): src/worker/quality.ts. */
  quality?: LiveQualityOptions;
  /** Feature drift against the models' training distributions: src/worker/drift.ts. */
  drift?: DriftOptions;
  /** De-duplication window and line failover (readWorkerConfig().arbiter); default DEFAULT_ARBITER. */
  arbiter?: ArbiterOptions;
  /** Each batch's new feature rows, for the optional features stream. */
  publishFeatures?: (rows: readonly FeatureRow[]) => Promise<void>;
}

export interface BatchResult {
  rows: number;
  labels: number;
  predictions: number;
  objects: string[];
}

/** Per shard: its lake writer, its products' replay positions, and the raw rows not yet handed to the lake. */
class ShardState {
  started = false;
  readonly products = new Map<string, ProductPositions>();
  last = '';
  /** Raw rows fed but not yet handed to the lake: they go after the latest snapshots (see emit). */
  raw: RawRow[] = [];
  /** The recovery state last saved (a batch that changes nothing skips the save). */
  saved = '';
  constructor(readonly lake: LakeWriter) {}
}

export class Worker {
  readonly market: MarketStage;
  readonly quality: LiveQuality;
  readonly drift: DriftMonitor;
  private readonly arbiter: LineArbiter;
  private readonly scorer: Scorer;
  private readonly latest: LatestSink;
  private readonly history: HistorySink | undefined;
  readonly telemetry: Telemetry;
  private readonly qualityOut: QualityPublisher;
  private readonly recovery: RecoveryStore | undefined;
  private readonly shards = new Map<string, ShardState>();
  /** Records replayed after restarts (rows of closed windows are dropped by the lake). */
  replayedRecords = 0;

  constructor(private readonly opts: WorkerOptions) {
    // One pipeline serves live batches and recovery replays alike, so both use the same gap limit.
    this.market = new MarketStage({
      tickMs: opts.tickMs,
      deltaMs: opts.deltaMs,
      gapLimitMs: opts.gapLimitMs,
      bookCheckSkewMs: opts.bookCheckSkewMs,
      s3: opts.s3,
      log: opts.log,
    });
    this.arbiter = new LineArbiter(opts.arbiter ?? DEFAULT_ARBITER);
    this.quality = new LiveQuality(opts.quality);
    this.drift = new DriftMonitor(opts.drift);
    this.telemetry = opts.telemetry ?? new Telemetry({ service: 'worker' });
    this.telemetry.declare(WORKER.duplicates);
    // Zero until a check mismatches: the alarm on it has data, not a gap, while all is well.
    this.telemetry.declare(WORKER.bookMismatches);
    this.scorer = new Scorer(opts.tickMs, opts.log, (target, ms) =>
      this.telemetry.timing(WORKER.inferenceMs, ms, { Target: target }),
    );
    this.latest = new LatestSink({
      write: (snapshot) => this.retry('latest write', () => opts.writeLatest(snapshot)),
      onAck: (product, ms) => {
        this.telemetry.timing(WORKER.latencyMs, ms);
        opts.onLatestAck?.(product, ms);
      },
      now: opts.now,
      ...(opts.push ? { offer: (snapshot) => opts.push!.offer(snapshot) } : {}),
    });
    this.qualityOut = new QualityPublisher(opts.qualityEveryMs ?? 10_000, this.telemetry);
    const history = opts.history;
    this.history = history
      ? new HistorySink({
          ...history,
          put: (item) => this.retry('history write', () => history.put(item)),
          labels: (...args) => this.retry('history labels write', () => history.labels(...args)),
          now: opts.now,
        })
      : undefined;
    this.recovery = opts.recovery ? new RecoveryStore(opts.recovery) : undefined;
  }

  /** The feature pipeline (books, features, labels), for stats and tests. */
  get pipeline() {
    return this.market.pipeline;
  }

  /** Copies dropped because their id was already applied (other lines, producer retries, overlapping replays). */
  get duplicatesDropped(): number {
    return this.arbiter.counters.duplicates;
  }

  /** What the line arbitration did: copies, stale events, failovers, resyncs absorbed and passed. */
  get lines(): Readonly<ArbiterCounters> {
    return this.arbiter.counters;
  }

  async handleBatch(batch: ShardBatch): Promise<BatchResult> {
    const started = performance.now();
    const duplicates = this.arbiter.counters.duplicates;
    const late = this.market.pipeline.stats().lateEvents;
    const shard = this.shard(batch.shardId);
    if (!shard.started) {
      shard.started = true;
      const first = batch.records[0]?.sequenceNumber;
      if (first) await this.recover(batch.shardId, shard, first);
    }
    await this.feed(shard, batch.records);
    const result = await this.emit(shard);
    // A failed put stays with the writer and the next settle() puts it again.
    result.objects = await this.retry('lake write', () => shard.lake.settle());
    if (shard.last) await this.saveState(batch.shardId, shard);
    const t = this.telemetry;
    t.count(WORKER.records, batch.records.length);
    t.count(
      WORKER.events,
      batch.records.reduce((n, r) => n + r.events.length, 0),
    );
    t.count(WORKER.duplicates, this.arbiter.counters.duplicates - duplicates);
    t.count(WORKER.ticks, result.rows);
    t.count(WORKER.lateEvents, this.market.pipeline.stats().lateEvents - late);
    if (batch.millisBehindLatest !== undefined) t.gauge(WORKER.millisBehindLatest, batch.millisBehindLatest);
    const arrivalMs = batch.records.at(-1)?.arrivalMs;
    if (arrivalMs !== undefined) t.timing(WORKER.iteratorAgeMs, Math.max(0, Date.now() - arrivalMs));
    t.timing(WORKER.batchMs, performance.now() - started);
    return result;
  }

  /**
   * Every write and read of the batch path goes through here: a transient failure (S3, DynamoDB or Kinesis
   * restarting or throttling) is waited out with capped backoff instead of ending the batch, which would make
   * the process exit and a restart replay (src/aws/retry.ts). Each call is idempotent: a put of the same item or
   * object, or a read.
   */
  private retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retryTransient(fn, { onRetry: logRetries(this.opts.log, `${what} failed; retrying`) });
  }

  /** Writes every open lake object (partial windows too): for a stream that has ended for good (offline). */
  async close(): Promise<string[]> {
    const keys: string[] = [];
    for (const shard of this.shards.values()) keys.push(...(await shard.lake.close()));
    return keys;
  }

  private shard(shardId: string): ShardState {
    let shard = this.shards.get(shardId);
    if (!shard) {
      const { s3, lakeBucket: bucket, tickMs, objectTicks } = this.opts;
      shard = new ShardState(new LakeWriter({ s3, bucket, shardId, tickMs, objectTicks }));
      this.shards.set(shardId, shard);
    }
    return shard;
  }

  /** Arbitrate & de-duplicate -> book & features, event by event, in stream order. */
  private async feed(shard: ShardState, records: readonly ConsumedRecord[]): Promise<void> {
    for (const record of records) {
      const line = record.line ?? '';
      for (let i = 0; i < record.events.length; i++) {
        const delivered = { event: record.events[i]!, record: record.sequenceNumber, index: i };
        for (const d of this.arbiter.accept(line, delivered))
          await this.apply(shard, d.record, d.index, d.event);
      }
      shard.last = record.sequenceNumber;
    }
  }

  private async apply(shard: ShardState, record: string, index: number, e: StreamEvent): Promise<void> {
    let pos = shard.products.get(e.product);
    if (!pos) {
      pos = { first: record, snapshots: [] };
      shard.products.set(e.product, pos);
    }
    const { raw, snapshotUs } = await this.market.apply(e, record, index);
    if (raw) shard.raw.push(raw);
    if (snapshotUs !== undefined) pos.snapshots.push({ exchUs: snapshotUs, record });
  }

  /**
   * Score -> quality -> sinks for what was fed so far. The latest snapshots go first: they are what users see,
   * while closing a lake window encodes Parquet, which can wait a few milliseconds.
   */
  private async emit(shard: ShardState): Promise<BatchResult> {
    const { rows: all, labels } = this.market.drain();
    // Rows of windows already stored (a replay after a restart) are not scored or shown again.
    const rows = all.filter((r) => shard.lake.accepts('features', r.product, r.tsUs));
    const models = this.opts.models?.() ?? [];
    const scored = await this.scorer.score(rows, models);
    // Row by row (all targets of a tick together): lake rows of one product must come in tick order.
    const predictions = scored.length === 1 ? scored[0]!.predictions : byRow(rows, scored);
    for (const s of scored) {
      this.telemetry.count(WORKER.predictions, s.predictions.length, { Target: s.target });
      s.models.forEach((m, i) => {
        if (!m) return;
        const r = rows[i]!;
        // Each prediction waits for its label with the τ its model has for the product and the tick's trailing
        // level: a model swapped in while it waits must not judge it by another τ.
        // An abstained prediction is judged too, but apart: quality is over the others, with their coverage.
        const abstained = s.judged[i]?.abstain !== undefined;
        this.quality.addPrediction(
          s.target,
          r.product,
          r.tsUs,
          s.probabilities[i]!,
          m.version,
          spikeJudgeOf(m, r.product, r.values[SPIKE_LEVEL_COLUMN]!),
          abstained,
        );
        if (m.inputs)
          this.drift.observe(m, r.product, r.tsUs, selectColumns(r.values, featureColumns(m.spec)));
      });
    }
    for (const l of labels) {
      if (!shard.lake.accepts('labels', l.product, l.tsUs, l.target)) continue;
      this.quality.addLabel(l.target, l.product, l.tsUs, l.value);
    }
    const quality = this.quality.current(new Set(models.map((m) => m.version)));
    const ctx: LatestContext = {
      quality: (product, versions) => qualityRecord(this.quality, product, versions),
      drift: (product, model) => this.drift.figure(model, product),
      feed: (p: string) => this.market.feedHealth(p),
      watermarkUs: (p: string) => this.market.watermarkUs(p),
      book: (p: string) => this.market.bookStatus(p),
    };
    await this.verdicts();
    await this.latest.write(rows, scored, ctx);
    await this.history?.write(
      rows,
      scored,
      ctx,
      labels.filter((l) => shard.lake.accepts('labels', l.product, l.tsUs, l.target)),
    );
    shard.lake.addRaw(shard.raw);
    shard.raw = [];
    shard.lake.addFeatures(rows);
    shard.lake.addLabels(labels);
    shard.lake.addPredictions(predictions);
    await this.opts.publishFeatures?.(rows);
    if (rows.length > 0) {
      const floors = new Map(
        models.flatMap((m) => (m.rocAucLow === undefined ? [] : [[m.version, m.rocAucLow] as const])),
      );
      const drift = new Map<string, number>();
      for (const m of models) {
        for (const product of new Set(rows.map((r) => r.product))) {
          const f = this.drift.figure(m, product);
          if (f) drift.set(m.target, Math.max(drift.get(m.target) ?? 0, f.psiMax));
        }
      }
      this.qualityOut.publish(rows[rows.length - 1]!.tsUs, quality, floors, drift);
    }
    return { rows: rows.length, labels: labels.length, predictions: predictions.length, objects: [] };
  }

  /** The book checks judged since the last batch: counted, logged, and each mismatch sent to the ingestor. */
  private async verdicts(): Promise<void> {
    for (const o of this.market.verifier.drain()) {
      this.telemetry.count(WORKER.bookChecks, 1, { Result: o.result });
      const fields = {
        product: o.product,
        checkId: o.checkId,
        bookTimeUs: o.atUs,
        compared: o.compared,
        inFlight: o.inFlight,
        through: o.through,
        judgedUs: o.judgedUs,
        ...(o.reason ? { reason: o.reason } : {}),
      };
      // One line per check (BOOK_CHECK_S apart per product): the record of what was compared, and how far.
      if (o.result !== 'mismatch') {
        this.opts.log('info', `book check: ${o.result}`, fields);
        continue;
      }
      this.telemetry.count(WORKER.bookMismatches, 1);
      this.opts.log('warn', 'book check: our book differs from the exchange', {
        ...fields,
        differences: o.differences,
        cleanSinceUs: o.cleanSinceUs,
      });
      // The predictions since the book was last known right may have been made on the wrong book: marked
      // suspect in the lake, beside them (append-only, written once: a replay leaves it). Up to the verdict, not
      // the REST book's time: the ticks in between were made on the same book; from the verdict on they abstain
      // until the book is rebuilt, and that span is marked once it is (below).
      if (o.cleanSinceUs !== null && o.cleanSinceUs < o.judgedUs)
        await this.markSuspect(
          { product: o.product, checkId: o.checkId, fromUs: o.cleanSinceUs, toUs: o.judgedUs },
          o.reason ?? 'book differs from the exchange',
        );
      const send = this.opts.onMismatch;
      if (send) await this.retry('book verdict write', () => send(o));
    }
    // Training leaves out what abstained for a mismatch too: from the verdict to the rebuild, marked the same way.
    for (const r of this.market.verifier.drainRepairs())
      await this.markSuspect(
        { ...r, checkId: `${r.checkId}/repair` },
        'made on a book found different from the exchange, before it was rebuilt',
      );
  }

  /** One suspect mark in the lake's corrections zone (written once: src/storage/corrections.ts). */
  private async markSuspect(
    span: { product: string; checkId: string; fromUs: number; toUs: number },
    reason: string,
  ): Promise<void> {
    const { s3, lakeBucket } = this.opts;
    const mark = { ...span, mark: 'suspect' as const, reason };
    await this.retry('suspect mark write', () => putCorrection(s3, lakeBucket, mark));
  }

  private async saveState(shardId: string, shard: ShardState): Promise<void> {
    if (!this.recovery) return;
    const replayFrom = replayPoint(shard.products, shard.lake, this.recovery.lookbackMs);
    const state: RecoveryState = {
      frontiers: shard.lake.frontiers(),
      products: Object.fromEntries(shard.products),
      ...(replayFrom ? { replayFrom } : {}),
    };
    // Most batches move no frontier and see no snapshot: the saved state is then still exact, and skipping
    // the put keeps a DynamoDB round trip off every batch.
    const key = JSON.stringify(state);
    if (key === shard.saved) return;
    const recovery = this.recovery;
    await this.retry('recovery state write', () => recovery.save(shardId, state, shard.last));
    shard.saved = key;
  }

  /** After a restart: restores the lake frontiers and replays the shard from the saved point up to `before`. */
  private async recover(shardId: string, shard: ShardState, before: string): Promise<void> {
    if (!this.recovery) return;
    const recovery = this.recovery;
    const state = await this.retry('recovery state read', () => recovery.load(shardId));
    if (!state) return;
    shard.lake.restore(state.frontiers);
    for (const [product, pos] of Object.entries(state.products)) shard.products.set(product, pos);
    if (!state.replayFrom || !seqLess(state.replayFrom, before)) return;
    this.opts.log('info', 'replaying the shard to rebuild books and open lake windows', {
      shardId,
      from: state.replayFrom,
      before,
    });
    const replayed = await this.recovery.replay(shardId, state.replayFrom, before, async (records) => {
      await this.feed(shard, records);
      await this.emit(shard);
    });
    this.replayedRecords += replayed;
    this.opts.log('info', 'replay done', { shardId, records: this.replayedRecords });
  }
}

/** Every target's predictions (the Scorer's rows), row by row: all targets of a tick together, as the lake wants them. */
function byRow(rows: readonly FeatureRow[], scored: readonly Scored[]): PredictionRow[] {
  const out: PredictionRow[] = [];
  const next = scored.map(() => 0);
  rows.forEach((_, i) => {
    scored.forEach((s, j) => {
      // s.predictions holds the rows its models scored, in row order.
      if (s.models[i]) out.push(s.predictions[next[j]!++]!);
    });
  });
  return out;
}
