/**
 * The whole path on the legacy Exchange feed (#17): the simulator in this process speaks it (its /exchange path,
 * FEED_KIND=exchange) and serves its REST book; the ingestor, the worker and the gateway are their own processes on
 * the local emulators, as under `FEED_KIND=exchange npm start`. The worker's book must be the simulator's, and the
 * book check (every second per product) must find it equal to the exchange's REST book at every check.
 */
import { describe, expect, it } from 'vitest';
import { judgedChecks } from '../src/chaos/bookCheckRun.js';
import type { LatestSnapshot } from '../src/storage/latest.js';
import { expectSimulatorTop, withSimulatedSystem } from './support/system.js';
import { until } from './support/until.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const workerLines: string[] = [];
const ingestorLines: string[] = [];
const fixture = await withSimulatedSystem({
  simulator: { seed: 61, products: PRODUCTS, feed: 'exchange' },
  components: ['ingestor', 'worker', 'gateway'],
  env: { BOOK_CHECK_S: '1', BOOK_VERDICT_POLL_MS: '500', METRICS_FLUSH_MS: '3600000' },
  // Every check line is kept (logs() holds only a component's last few hundred lines).
  quiet: false,
  log: (line) => {
    if (line.startsWith('[worker] ') && line.includes('book check')) workerLines.push(line);
    if (line.startsWith('[ingestor] ')) ingestorLines.push(line);
  },
});

async function latest(): Promise<LatestSnapshot[]> {
  const res = await fetch(`${fixture.system.urls.dashboard}latest`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { products: LatestSnapshot[] }).products;
}

describe('the system on the Exchange feed, simulated', () => {
  it('the ingestor speaks the Exchange protocol to the simulator`s /exchange feed', async () => {
    expect(fixture.system.env.FEED_URL).toBe(fixture.sim.exchangeUrl);
    // Logged once the ingestor holds the book-check lease, which may come after the system is up.
    const started = await until('the book checks started', () =>
      ingestorLines.find((l) => l.includes('"book checks started"')),
    );
    expect(started).toMatch(/"source":"exchange"/);
  });

  it('serves, for every product, the simulator`s best bid and ask at the snapshot`s position', async () => {
    const snaps = await until('a snapshot of every product, twice', async () => {
      const all = await latest();
      return all.length === PRODUCTS.length && all.every((s) => s.seq > 0) ? all : undefined;
    });
    for (const snap of snaps)
      expectSimulatorTop(fixture.sim, snap.product, snap.seq, snap.bestBid, snap.bestAsk);
    const first = new Map(snaps.map((s) => [s.product, s.tsUs]));
    const later = await until('newer snapshots', async () => {
      const all = await latest();
      return all.every((s) => s.tsUs > first.get(s.product)!) ? all : undefined;
    });
    for (const snap of later)
      expectSimulatorTop(fixture.sim, snap.product, snap.seq, snap.bestBid, snap.bestAsk);
  });

  it('the book check matches the Exchange REST book at every check, levels compared, nothing resynced', async () => {
    const perProduct = 6;
    const checks = await until(
      `${perProduct} checks judged per product`,
      () => {
        const judged = judgedChecks(workerLines);
        return PRODUCTS.every((p) => judged.filter((c) => c.product === p).length >= perProduct)
          ? judged
          : undefined;
      },
      { timeoutMs: 90_000 },
    );
    const by = (r: string) => checks.filter((c) => c.result === r);
    expect(by('mismatch'), JSON.stringify(by('mismatch'))).toEqual([]);
    // A REST answer slower than BOOK_CHECK_TIMEOUT_MS on a loaded machine is the only excuse for an unavailable one.
    for (const c of by('unavailable')) expect(c.reason).toMatch(/no answer within/);
    expect(by('match').length).toBeGreaterThanOrEqual(checks.length - 2);
    for (const c of by('match')) expect(c.compared).toBeGreaterThan(20);
    // The verdict reaches /latest.
    const verdicts = await latest();
    for (const s of verdicts) expect(s.verification?.result, s.product).toBe('match');
    expect(ingestorLines.filter((l) => l.includes('"book resync"') && l.includes('mismatch'))).toEqual([]);
  });
});
