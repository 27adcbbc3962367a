/**
 * A book-check run (`npm run bench -- --only verify`, #17): the local system (emulators, the ingestor, the worker,
 * each its own process) fed by an exchange simulator in this process at several times real time, with the book
 * check on. Without faults every check must match (false mismatches: any mismatch at all). With lost-update
 * faults (`lostEveryMs`: one level change left out of a frame at seeded moments, no sequence gap: only the check
 * can see it) each fault is followed against the checks that judged its product:
 * - it HEALED when the exchange changed that price again (or the product resynced) before any check compared it;
 * - otherwise the first check after it whose compared depth holds its price is where it must be DETECTED: that
 *   check (or an earlier one) lists that level among its differences;
 * - detection time = that check's book time minus the fault's, in market seconds.
 * The checks are read from the worker's log lines (one per check, src/worker/worker.ts), the resyncs from the
 * ingestor's, the faults and the market from the simulator's own log.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSimulatorLog } from '../audit/audit.js';
import { s3Client } from '../aws/clients.js';
import { sleep } from '../clock.js';
import { type FeedKind, readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { MAX_LOOKBACK_S } from '../features/pipeline.js';
import { startSystem } from '../local/supervisor.js';
import type { LostUpdateRecord } from '../simulator/server.js';
import { readLakeZone } from '../storage/lakeReader.js';
import {
  type CorrectionRow,
  decodeCorrectionRows,
  decodePredictionRows,
  type PredictionRow,
} from '../storage/parquet.js';
import { startRunMarket } from './chaos.js';

export class BookCheckRunError extends QuoteWatchError {}

export interface BookCheckRunOptions {
  seed: number;
  /** The simulator's feed the ingestor reads: Advanced Trade (default) or the legacy Exchange feed. */
  feed?: FeedKind;
  products: readonly string[];
  /** Simulated seconds per wall second. */
  speed: number;
  /** Market length, simulated ms. */
  marketMs: number;
  /** BOOK_CHECK_S of the ingestor: WALL seconds (its schedule runs on the wall clock), so speed × this of market. */
  checkS: number;
  /** The worker's in-flight window, market ms (BOOK_CHECK_SKEW_MS). */
  skewMs?: number;
  /** One lost update per connection every this many simulated ms (0/absent: none). */
  lostEveryMs?: number;
  /** Drop the ingestor's connection every this many simulated ms (it reconnects and resyncs; absent: never). */
  reconnectEveryMs?: number;
  log?: (line: string) => void;
}

/** One judged check, as the worker logged it. */
export interface JudgedCheck {
  product: string;
  result: 'match' | 'mismatch' | 'unavailable';
  bookTimeUs: number;
  /** The product's event time when the worker judged it (≥ bookTimeUs + skew). */
  judgedUs: number;
  through: { bid?: string; ask?: string };
  /** Levels compared, and levels left out as in flight. */
  compared: number;
  inFlight: number;
  differences: { side: 'bid' | 'ask'; price: string }[];
  reason?: string;
}

export interface FaultFate {
  fault: LostUpdateRecord;
  /**
   * detected / missed at the first check that compared it; healed (the exchange changed that price again first),
   * repaired (a resync of its product, for another fault, rebuilt the book first), uncovered (no later check compared
   * its price: deeper than the checks' depth, or the run ended).
   */
  fate: 'detected' | 'missed' | 'healed' | 'repaired' | 'uncovered';
  /** Market seconds from the fault to the check that found it. */
  detectS?: number;
  /** The book time of the first check that compared its price, and when the exchange changed that price again. */
  dueUs?: number;
  healUs?: number;
  /** The first check after it already compared its price (detection time then measures the check alone). */
  inDepth?: boolean;
}

export interface BookCheckRunReport {
  checks: Record<JudgedCheck['result'], number>;
  /** Mismatching checks per product. */
  mismatchesByProduct: Record<string, number>;
  /** Checks per product that mismatched with no lost update behind any differing level. */
  falseMismatches: number;
  /** Those checks, for the story. */
  falseChecks: JudgedCheck[];
  faults: FaultFate[];
  detected: number;
  /** Faults still wrong at a check that compared their level (detected + missed). */
  wrongAtACheck: number;
  healed: number;
  repaired: number;
  /** Longest fault → detection, market s, over the faults in the compared depth from the first check after them. */
  detectMaxS: number | null;
  /** The same over every detected fault (a deep level may enter the compared depth much later). */
  detectMaxAllS: number | null;
  resyncs: Record<string, Record<string, number>>;
  unavailableReasons: Record<string, number>;
  /** Every judged check, in book-time order. */
  judged: JudgedCheck[];
  /**
   * The lake's predictions once the windows are warm (after the first MAX_LOOKBACK_S of market): how many, how many
   * abstained, and why (a prediction may have several causes; its reason names the first).
   */
  abstain: {
    predictions: number;
    abstained: number;
    share: number;
    resync: number;
    gap: number;
    mismatch: number;
  };
  /** Connections dropped (reconnectEveryMs). */
  reconnects: number;
  /** The suspect marks the worker put into the lake's corrections zone. */
  suspectMarks: CorrectionRow[];
  /**
   * Around each mismatch verdict, its product's predictions in the lake (one target's): the last made before the
   * verdict's event time and the first from it on, with why each abstained ('' when it did not).
   */
  aroundVerdicts: {
    product: string;
    judgedUs: number;
    before?: { tsUs: number; abstain: string };
    after?: { tsUs: number; abstain: string };
    /** A later prediction no longer abstained for the mismatch: it ended (the book rebuilt) within the run. */
    ended: boolean;
  }[];
  wallS: number;
}

export async function runBookCheck(o: BookCheckRunOptions): Promise<BookCheckRunReport> {
  const say = o.log ?? (() => {});
  const started = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bookcheck-'));
  const simLog = join(dataDir, 'simulator.ndjson');
  const skewMs = o.skewMs ?? 1000;
  const workerLines: string[] = [];
  const ingestorLines: string[] = [];
  const sim = await startRunMarket(
    o,
    simLog,
    o.lostEveryMs ? { lostUpdates: { everyMs: o.lostEveryMs } } : {},
  );
  const system = await startSystem({
    dataDir,
    freePorts: true,
    components: ['ingestor', 'worker'],
    env: {
      FEED_URL: o.feed === 'exchange' ? sim.exchangeUrl : sim.url,
      FEED_KIND: o.feed ?? 'advanced',
      SYMBOLS: o.products.join(','),
      BOOK_CHECK_S: String(o.checkS),
      BOOK_CHECK_SKEW_MS: String(skewMs),
      BOOK_VERDICT_POLL_MS: '500',
      SNAPSHOT_INTERVAL_MS: '10000',
      METRICS_FLUSH_MS: '3600000',
      LAKE_OBJECT_TICKS: '100', // 10 s objects: all but the last seconds are in the lake when the run ends
    },
    // Every line of the check and resync records is kept (logs() holds only a component's last few hundred).
    log: (line) => {
      if (line.startsWith('[supervisor]')) say(line);
      else if (line.startsWith('[worker] ') && line.includes('book check')) workerLines.push(line);
      else if (line.startsWith('[ingestor] ') && line.includes('book resync')) ingestorLines.push(line);
    },
  });
  const anchorUs = sim.timeUs(); // held there until the first subscribe
  let reconnects = 0;
  try {
    const deadline = Date.now() + (o.marketMs / o.speed) * 2 + 120_000;
    while (!sim.ended()) {
      if (Date.now() > deadline) throw new BookCheckRunError('book-check run: the market never ended');
      const every = o.reconnectEveryMs;
      if (every && sim.timeUs() - anchorUs >= (reconnects + 1) * every * 1000) {
        reconnects++;
        say(`[verify] connections dropped at ${Math.round((sim.timeUs() - anchorUs) / 1e6)} s of market`);
        sim.faults.dropConnections();
      }
      await sleep(250);
    }
    // The last checks are judged once the worker's event time passes them by the skew window.
    await sleep(Math.max(3000, (skewMs / o.speed) * 4));
    await system.kill('ingestor', 'SIGTERM');
    await sleep(2000);
    // Each mismatch's suspect mark is written in the batch that logged it: let the last batch finish (the repair
    // marks, written when a mismatch ends, are not counted here).
    const mismatches = () => judgedChecks(workerLines).filter((c) => c.result === 'mismatch').length;
    const verdictMarks = async () =>
      (await corrections(system.env)).filter((m) => !m.checkId.endsWith('/repair')).length;
    for (const stop = Date.now() + 15_000; Date.now() < stop; await sleep(250)) {
      if ((await verdictMarks()) >= mismatches()) break;
    }
    await system.kill('worker', 'SIGTERM');
    const checks = judgedChecks(workerLines);
    const { counts: resyncs, times } = resyncsByProduct(ingestorLines);
    const faults = sim.lostUpdates();
    const report = await judge(checks, faults, times, simLog, skewMs);
    const predictions = await readLakeZone(
      s3Client(system.env),
      readResourceNames(system.env).lakeBucket,
      'predictions',
      decodePredictionRows,
    );
    const abstain = abstentions(predictions, anchorUs + MAX_LOOKBACK_S * 1e6);
    const suspectMarks = await corrections(system.env);
    say(`[verify] ${checks.length} checks, ${faults.length} lost updates, ${abstain.abstained} abstained`);
    return {
      ...report,
      resyncs,
      judged: checks,
      abstain,
      reconnects,
      suspectMarks,
      aroundVerdicts: aroundVerdicts(checks, predictions),
      wallS: (Date.now() - started) / 1000,
    };
  } finally {
    await system.stop();
    await sim.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function* jsonLines(lines: readonly string[]): Generator<Record<string, unknown>> {
  for (const line of lines) {
    const at = line.indexOf('{');
    if (at < 0) continue;
    try {
      yield JSON.parse(line.slice(at)) as Record<string, unknown>;
    } catch {
      // not a log record (a stack trace line, the supervisor's own words)
    }
  }
}

/** The checks the worker judged, from its log lines ("book check: <result>"). */
export function judgedChecks(lines: readonly string[]): JudgedCheck[] {
  const out: JudgedCheck[] = [];
  for (const r of jsonLines(lines)) {
    const m = /^book check: (match|unavailable)$/.exec(String(r.message));
    const result = m
      ? (m[1] as JudgedCheck['result'])
      : r.message === 'book check: our book differs from the exchange'
        ? 'mismatch'
        : undefined;
    if (!result) continue;
    out.push({
      product: String(r.product),
      result,
      bookTimeUs: Number(r.bookTimeUs),
      judgedUs: Number(r.judgedUs ?? Number(r.bookTimeUs)),
      through: (r.through ?? {}) as JudgedCheck['through'],
      compared: Number(r.compared ?? 0),
      inFlight: Number(r.inFlight ?? 0),
      differences: (r.differences ?? []) as JudgedCheck['differences'],
      ...(typeof r.reason === 'string' ? { reason: r.reason } : {}),
    });
  }
  return out.sort((a, b) => a.bookTimeUs - b.bookTimeUs);
}

/** Resyncs per product and reason, and their exchange times, from the ingestor's log lines. */
function resyncsByProduct(lines: readonly string[]): {
  counts: Record<string, Record<string, number>>;
  times: Map<string, number[]>;
} {
  const counts: Record<string, Record<string, number>> = {};
  const times = new Map<string, number[]>();
  for (const r of jsonLines(lines)) {
    if (r.message !== 'book resync') continue;
    const product = String(r.product);
    const reason = String(r.reason).replace(/:.*$/, '');
    counts[product] ??= {};
    counts[product][reason] = (counts[product][reason] ?? 0) + 1;
    if (typeof r.exchUs === 'number') times.set(product, [...(times.get(product) ?? []), r.exchUs]);
  }
  return { counts, times };
}

/** Whether a check's compared depth holds `price` on `side` (decimal strings compared as numbers). */
function covers(c: JudgedCheck, side: 'bid' | 'ask', price: string): boolean {
  const bound = c.through[side];
  if (bound === undefined) return true;
  return side === 'bid' ? Number(price) >= Number(bound) : Number(price) <= Number(bound);
}

async function judge(
  checks: readonly JudgedCheck[],
  faults: readonly LostUpdateRecord[],
  resyncs: ReadonlyMap<string, readonly number[]>,
  simLog: string,
  skewMs: number,
): Promise<
  Omit<
    BookCheckRunReport,
    'resyncs' | 'wallS' | 'judged' | 'abstain' | 'reconnects' | 'suspectMarks' | 'aroundVerdicts'
  >
> {
  // When each level changed on the exchange: the simulator's log holds every change it sent.
  const changes = new Map<string, number[]>();
  for (const [product, sent] of await readSimulatorLog(simLog)) {
    for (const [key, us] of sent.levels) {
      const [, side, price] = key.split('|');
      const k = `${product}|${side}|${Number(price)}`;
      const times = changes.get(k) ?? [];
      if (times.length === 0) changes.set(k, times);
      times.push(us);
    }
  }
  for (const times of changes.values()) times.sort((a, b) => a - b);
  const skewUs = skewMs * 1000;
  const lists = (c: JudgedCheck, f: LostUpdateRecord) =>
    c.differences.some((d) => d.side === f.side && Number(d.price) === Number(f.price));
  const fates: FaultFate[] = faults.map((fault) => {
    const times = changes.get(`${fault.product}|${fault.side}|${Number(fault.price)}`) ?? [];
    // A change of that price in the same batch as the lost one counts as healing it: the frame may well have
    // set the level again after the update it lost (the simulator's log does not say their order).
    const healUs = times.find((t) => t >= fault.timeUs) ?? Number.POSITIVE_INFINITY;
    const mine = checks.filter((c) => c.product === fault.product && c.bookTimeUs >= fault.timeUs);
    // The check that had to see it: the first after it that compared its price with the level quiet inside its
    // skew window. A change of that price after the fault and before that window's end heals it first.
    let due: JudgedCheck | undefined;
    let healedFirst = false;
    for (const c of mine) {
      if (c.result === 'unavailable' || !covers(c, fault.side, fault.price)) continue;
      // The level is in flight at this check if it changed from T − skew up to when the check was judged.
      const untilUs = Math.max(c.bookTimeUs + skewUs, c.judgedUs);
      if (healUs <= untilUs) {
        healedFirst = true;
        due = c;
        break;
      }
      if (times.some((t) => t >= c.bookTimeUs - skewUs && t <= untilUs)) continue;
      due = c;
      break;
    }
    if (!due) return { fault, fate: 'uncovered' };
    const first = mine.find((c) => c.result !== 'unavailable');
    const at = {
      dueUs: due.bookTimeUs,
      ...(Number.isFinite(healUs) ? { healUs } : {}),
      inDepth: first !== undefined && covers(first, fault.side, fault.price),
    };
    if (healedFirst) return { fault, fate: 'healed', ...at };
    const resyncUs = resyncs.get(fault.product)?.find((t) => t > fault.timeUs) ?? Number.POSITIVE_INFINITY;
    // A resync's snapshot inside the check's skew window changes the level there too: the check cannot judge it.
    if (resyncUs <= Math.max(due.bookTimeUs + skewUs, due.judgedUs))
      return { fault, fate: 'repaired', ...at };
    const found = mine.find((c) => c.result === 'mismatch' && c.bookTimeUs <= healUs && lists(c, fault));
    return found
      ? { fault, fate: 'detected', detectS: (found.bookTimeUs - fault.timeUs) / 1e6, ...at }
      : { fault, fate: 'missed', ...at };
  });
  // A mismatch is false when no lost update before it explains any level it lists.
  const explained = (c: JudgedCheck) =>
    faults.some((f) => f.product === c.product && f.timeUs <= c.bookTimeUs && lists(c, f));
  const count = (r: JudgedCheck['result']) => checks.filter((c) => c.result === r).length;
  const unavailableReasons: Record<string, number> = {};
  for (const c of checks) {
    if (c.result !== 'unavailable') continue;
    const why = (c.reason ?? '?').replace(/[\d.]+/g, 'N');
    unavailableReasons[why] = (unavailableReasons[why] ?? 0) + 1;
  }
  const detected = fates.filter((f) => f.fate === 'detected');
  return {
    checks: { match: count('match'), mismatch: count('mismatch'), unavailable: count('unavailable') },
    mismatchesByProduct: Object.fromEntries(
      [...new Set(checks.map((c) => c.product))].map((p) => [
        p,
        checks.filter((c) => c.product === p && c.result === 'mismatch').length,
      ]),
    ),
    falseMismatches: checks.filter((c) => c.result === 'mismatch' && !explained(c)).length,
    falseChecks: checks.filter((c) => c.result === 'mismatch' && !explained(c)),
    faults: fates,
    detected: detected.length,
    wrongAtACheck: fates.filter((f) => f.fate === 'detected' || f.fate === 'missed').length,
    healed: fates.filter((f) => f.fate === 'healed').length,
    repaired: fates.filter((f) => f.fate === 'repaired').length,
    detectMaxS: maxOf(detected.filter((f) => f.inDepth).map((f) => f.detectS!)),
    detectMaxAllS: maxOf(detected.map((f) => f.detectS!)),
    unavailableReasons,
  };
}

function maxOf(xs: readonly number[]): number | null {
  return xs.length ? Math.max(...xs) : null;
}

/** The lake's predictions from `fromUs` on: how many abstained, and why. */
function abstentions(predictions: readonly PredictionRow[], fromUs: number): BookCheckRunReport['abstain'] {
  const rows = predictions.filter((r) => r.tsUs >= fromUs);
  const out = { predictions: rows.length, abstained: 0, share: 0, resync: 0, gap: 0, mismatch: 0 };
  for (const r of rows) {
    if (!r.abstain) continue;
    out.abstained++;
    if (r.windowResyncs) out.resync++;
    if (r.windowGap) out.gap++;
    if (r.verification === 'mismatch') out.mismatch++;
  }
  out.share = rows.length ? out.abstained / rows.length : Number.NaN;
  return out;
}

/** Each mismatch verdict's product's predictions (quote change) just before it and from it on. */
function aroundVerdicts(
  checks: readonly JudgedCheck[],
  predictions: readonly PredictionRow[],
): BookCheckRunReport['aroundVerdicts'] {
  const byProduct = new Map<string, PredictionRow[]>();
  for (const r of predictions) {
    if (r.target !== 'quote_change_500ms') continue;
    const rows = byProduct.get(r.product);
    if (rows) rows.push(r);
    else byProduct.set(r.product, [r]);
  }
  for (const rows of byProduct.values()) rows.sort((a, b) => a.tsUs - b.tsUs);
  const at = (r: PredictionRow | undefined) => (r ? { tsUs: r.tsUs, abstain: r.abstain ?? '' } : undefined);
  return checks
    .filter((c) => c.result === 'mismatch')
    .map((c) => {
      const rows = byProduct.get(c.product) ?? [];
      const i = rows.findIndex((r) => r.tsUs >= c.judgedUs);
      const before = at(i < 0 ? rows.at(-1) : rows[i - 1]);
      const after = at(i < 0 ? undefined : rows[i]);
      const ended =
        i >= 0 && rows.slice(i).some((r) => !/differed from the exchange's/.test(r.abstain ?? ''));
      return {
        product: c.product,
        judgedUs: c.judgedUs,
        ended,
        ...(before ? { before } : {}),
        ...(after ? { after } : {}),
      };
    });
}

/** Every mark in the lake's corrections zone. */
async function corrections(env: Record<string, string | undefined>): Promise<CorrectionRow[]> {
  return readLakeZone(s3Client(env), readResourceNames(env).lakeBucket, 'corrections', decodeCorrectionRows);
}
