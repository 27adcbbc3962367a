/**
 * The book check on the real market (#17, "Done when"): each capture in ../shared replayed through the whole path —
 * the replay server (src/replay/server.ts) as the exchange's WebSocket, the real ingestor and worker processes on the
 * local emulators — with the exchange's REST book served by a reference computed here, independently of the
 * system, from the frames the replay server has sent when each request comes in (test/support/referenceBook.ts).
 * The claim: every check the worker judges matches, none mismatches, each capture gets many checks that really
 * compared levels, and no check makes the ingestor resync.
 */
import { rmSync } from 'node:fs';
import { expect, it } from 'vitest';
import { type Accepted, readStream } from '../src/audit/audit.js';
import { type JudgedCheck, judgedChecks } from '../src/chaos/bookCheckRun.js';
import { startSystem } from '../src/local/supervisor.js';
import { recordingProducts } from '../src/replay/replay.js';
import { type ReplaySpeed, startReplayServer } from '../src/replay/server.js';
import { type BookCheckEvent, isMarketEvent } from '../src/stream/record.js';
import { type Capture, describeCapture, receivedFrames } from './support/captures.js';
import {
  ReferenceBooks,
  type ReferenceFeed,
  type ReferenceRequest,
  startReferenceServer,
} from './support/referenceBook.js';
import { tempDataDir } from './support/system.js';
import { until } from './support/until.js';

const SKEW_MS = 1000;

interface Due {
  product: string;
  timeUs: number;
}

interface Run {
  /** The products subscribed and checked. */
  products: string[];
  requests: readonly ReferenceRequest[];
  checks: JudgedCheck[];
  /** The checks a judging event of their product followed in the stream: each must be judged. */
  due: Due[];
  /** Resyncs the ingestor logged, by reason. */
  resyncs: Record<string, number>;
  wallS: number;
}

/**
 * The checks some later event of their product passes by the skew window in the STREAM's order (the verifier's own
 * rule, src/worker/verification.ts): the worker must judge each of those. The stream's order, not the capture's: on a
 * loaded machine the ingestor can put a REST answer into the stream after feed frames that left the server later.
 */
function dueChecks(events: readonly Accepted[]): Due[] {
  const due: Due[] = [];
  const waiting = new Map<string, BookCheckEvent[]>();
  for (const { event: e } of events) {
    if (e.type === 'book_check') {
      if (e.unavailable === undefined) {
        const list = waiting.get(e.product) ?? [];
        list.push(e);
        waiting.set(e.product, list);
      }
      continue;
    }
    if (e.type === 'stats' || e.type === 'watermark') continue;
    const list = waiting.get(e.product);
    if (!list) continue;
    const left = list.filter((c) => {
      if (e.exchUs < c.exchUs + SKEW_MS * 1000) return true;
      due.push({ product: c.product, timeUs: c.exchUs });
      return false;
    });
    waiting.set(e.product, left);
  }
  return due;
}

async function run(
  c: Capture,
  o: { feed: ReferenceFeed; speed: ReplaySpeed; seed: number; products?: string[] },
): Promise<Run> {
  const started = Date.now();
  const frames = await receivedFrames(c);
  const products =
    o.products ?? (await recordingProducts(c.path, o.feed === 'exchange' ? 'exchange' : 'cryptofeed'));
  const replay = await startReplayServer({
    frames: (async function* () {
      yield* frames;
    })(),
    speed: o.speed,
  });
  const books = new ReferenceBooks(o.feed);
  const rest = await startReferenceServer({ books, frames, sent: () => replay.sent, seed: o.seed });
  const dataDir = tempDataDir('qw-bookcheck-capture-');
  const workerLines: string[] = [];
  const ingestorLines: string[] = [];
  const system = await startSystem({
    dataDir,
    freePorts: true,
    components: ['ingestor', 'worker'],
    env: {
      FEED_URL: replay.url,
      FEED_KIND: o.feed,
      SYMBOLS: products.join(','),
      BOOK_REST_URL: rest.url,
      BOOK_CHECK_S: '1',
      BOOK_CHECK_SKEW_MS: String(SKEW_MS),
      BOOK_VERDICT_POLL_MS: '500',
      // The answers take up to 300 ms: a loaded machine must not turn one into a timeout.
      BOOK_CHECK_TIMEOUT_MS: '10000',
      // A recording ends: its silence afterwards is no reason to reconnect.
      FEED_SILENCE_MS: '600000',
      SNAPSHOT_INTERVAL_MS: '10000',
      METRICS_FLUSH_MS: '3600000',
    },
    // Every check and resync line is kept (logs() holds only a component's last 500).
    log: (line) => {
      if (line.startsWith('[worker] ') && line.includes('book check')) workerLines.push(line);
      else if (line.startsWith('[ingestor] ') && line.includes('book resync')) ingestorLines.push(line);
    },
  });
  try {
    await replay.done;
    const key = (product: string | undefined, us: number) => `${product} ${us}`;
    // Until the stream's market events have stopped growing (the ingestor has put everything) and every due check is judged.
    let marketEvents = -1;
    const due = await until(
      'the worker judged every check an event passed in the stream',
      async () => {
        const stream = await readStream(system.env);
        // (Book checks and stats go on after the recording ends; market events do not.)
        const market = stream.events.filter(
          ({ event: e }) => isMarketEvent(e) || e.type === 'snapshot_ref',
        ).length;
        const grew = market !== marketEvents;
        marketEvents = market;
        const checks = dueChecks(stream.events);
        const judged = new Set(judgedChecks(workerLines).map((j) => key(j.product, j.bookTimeUs)));
        const missing = checks.filter((r) => !judged.has(key(r.product, r.timeUs)));
        if (missing.length > 0)
          throw new Error(
            `${missing.length} of ${checks.length} due checks not judged: ${missing.slice(0, 5).map((r) => key(r.product, r.timeUs))}`,
          );
        return !grew && checks;
      },
      { timeoutMs: 60_000, everyMs: 1000 },
    );
    const resyncs: Record<string, number> = {};
    for (const line of ingestorLines) {
      const r = JSON.parse(line.slice(line.indexOf('{'))) as { reason?: string };
      const why = String(r.reason).replace(/:.*$/, '');
      resyncs[why] = (resyncs[why] ?? 0) + 1;
    }
    return {
      products,
      requests: rest.requests,
      checks: judgedChecks(workerLines),
      due,
      resyncs,
      wallS: (Date.now() - started) / 1000,
    };
  } finally {
    await system.stop();
    await rest.close();
    await replay.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** What a run shows: counts by result, per product, levels compared and left in flight. */
function summary(name: string, r: Run) {
  const matches = r.checks.filter((c) => c.result === 'match');
  const perProduct: Record<string, number> = {};
  for (const c of matches) perProduct[c.product] = (perProduct[c.product] ?? 0) + 1;
  const out = {
    capture: name,
    requests: r.requests.length,
    due: r.due.length,
    judged: r.checks.filter((c) => c.result !== 'unavailable').length,
    match: matches.length,
    mismatch: r.checks.filter((c) => c.result === 'mismatch').length,
    unavailable: r.checks.filter((c) => c.result === 'unavailable').length,
    perProduct,
    levelsCompared: matches.reduce((n, c) => n + c.compared, 0),
    levelsInFlight: matches.reduce((n, c) => n + c.inFlight, 0),
    resyncs: r.resyncs,
    wallS: r.wallS,
  };
  console.info(`book check on the ${name} capture: ${JSON.stringify(out)}`);
  return out;
}

/**
 * The claim for one capture: no check mismatched; every check some later event of its product passed was judged,
 * and matched; the only unavailable ones are the answers without a book (its snapshot not sent yet); at least
 * `minJudged` judged checks, `minPerProduct` of each product, almost all of their levels compared rather than left
 * in flight; nothing resynced.
 */
function expectAllMatch(
  r: Run,
  o: { name: string; products: readonly string[]; minJudged: number; minPerProduct: number },
) {
  const s = summary(o.name, r);
  expect(r.checks.filter((c) => c.result === 'mismatch')).toEqual([]);
  const verdicts = new Map(r.checks.map((c) => [`${c.product} ${c.bookTimeUs}`, c]));
  for (const q of r.due)
    expect(verdicts.get(`${q.product} ${q.timeUs}`)?.result, `${q.product} at ${q.timeUs}`).toBe('match');
  const unavailable = r.checks.filter((c) => c.result === 'unavailable');
  for (const c of unavailable) expect(c.reason).toMatch(/^exchange book unavailable: HTTP 503: .*no book of/);
  expect(unavailable.length).toBe(r.requests.filter((q) => q.status !== 200).length);
  expect(s.judged).toBeGreaterThanOrEqual(o.minJudged);
  for (const p of o.products) expect(s.perProduct[p] ?? 0, p).toBeGreaterThanOrEqual(o.minPerProduct);
  expect(r.checks.filter((c) => c.result === 'match' && c.compared === 0)).toEqual([]);
  expect(s.levelsCompared).toBeGreaterThan(0.7 * (s.levelsCompared + s.levelsInFlight));
  // No check made the ingestor resync a product (nor did anything else).
  expect(r.resyncs).toEqual({});
}

const AT_PRODUCTS = ['BTC-USD', 'ETH-USD'];

describeCapture('advancedTrade', 'the book check on the replayed Advanced Trade capture', (c) => {
  it('matches a reference book computed from the frames at every check', async () => {
    // 25 s of market at its own pace: about 18 checks of each product (one a second, plus the answer's time), 12
    // on a loaded machine (the lease and the first answers come later).
    const r = await run(c, { feed: 'advanced', speed: 1, seed: 17, products: AT_PRODUCTS });
    expectAllMatch(r, { name: 'Advanced Trade', products: AT_PRODUCTS, minJudged: 16, minPerProduct: 8 });
  }, 180_000);
});

describeCapture('exchange', 'the book check on the replayed Exchange capture', (c) => {
  it('matches a reference book computed from the frames at every check', async () => {
    // 31 s of market at twice its pace, ten products: the limiter's 8 requests a second, about 11 checks each.
    const r = await run(c, { feed: 'exchange', speed: 2, seed: 18 });
    expect(r.products).toHaveLength(10);
    expectAllMatch(r, { name: 'Exchange', products: r.products, minJudged: 60, minPerProduct: 5 });
  }, 180_000);
});
