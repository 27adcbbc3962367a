/**
 * The dashboard in headless Chromium, served by the local gateway over real dynalite with the shipped models in the
 * registry: the numbers and charts on the page must match what /latest, /history, /health and /models answer,
 * survive a reload, follow new snapshots, and go stale and recover with the API. Leaves a screenshot in
 * .artifacts/dashboard.png. Needs Chromium (test/support/browser.ts).
 */
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { HistoryPageView } from '../src/api/schemas.js';
import type { RunningGateway } from '../src/gateway/server.js';
import type { Emulators } from '../src/local/emulators.js';
import { seedRegistry } from '../src/model/registry.js';
import { type LatestSnapshot, putLatest } from '../src/storage/latest.js';
import { artifactPath, describeBrowser, launchChromium } from './support/browser.js';
import { type LocalGateway, startLocalGateway } from './support/gateway.js';
import { seedHistory } from './support/history.js';

const QUOTE = 'quote_change_500ms';
const VOL = 'vol_spike_60s';

function snapshot(
  product: string,
  bid: string,
  ask: string,
  probability: number,
  volProbability = probability / 4,
): Omit<LatestSnapshot, 'pk' | 'sk' | 'expiresAt'> {
  const now = Date.now();
  const mid = (Number(bid) + Number(ask)) / 2;
  const spread = Number(ask) - Number(bid);
  return {
    product,
    tsUs: now * 1000,
    seq: now,
    bestBid: bid,
    bestAsk: ask,
    mid,
    spread,
    spreadBps: (spread / mid) * 10_000,
    bids: [
      [bid, '1.5'],
      [(Number(bid) - 0.01).toFixed(2), '2'],
      [(Number(bid) - 0.02).toFixed(2), '0.25'],
    ],
    asks: [
      [ask, '0.75'],
      [(Number(ask) + 0.01).toFixed(2), '3'],
    ],
    features: {},
    predictions: {
      [QUOTE]: { probability, modelVersion: 'v-dash' },
      [VOL]: { probability: volProbability, modelVersion: 'vol-dash' },
    },
    latencyMs: 23,
    updatedAtMs: now,
  };
}

function feedStats(): NonNullable<LatestSnapshot['feed']> {
  return {
    exchUs: Date.now() * 1000,
    messagesPerS: 123.4,
    bytesPerS: 50_000,
    lastHeartbeatUs: (Date.now() - 2000) * 1000,
    reconnects: 1,
    resyncs: 3,
    producerRetries: 0,
    bufferDepth: 0,
  };
}

const HISTORY_S = 120;

describeBrowser('dashboard in a browser', () => {
  let local: LocalGateway;
  let emu: Emulators;
  let gateway: RunningGateway;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    local = await startLocalGateway({
      tempPrefix: 'qw-dash-',
      // A long staleness limit: however slow the machine, only the outage the last test makes is a health problem.
      env: { SYMBOLS: 'BTC-USD,ETH-USD,SOL-USD', HEALTH_STALE_MS: '600000' },
      seed: async () => {
        await seedRegistry(path.resolve(import.meta.dirname, '../models/baseline'));
        await seedHistory('BTC-USD', 65_000, HISTORY_S);
        await seedHistory('ETH-USD', 3200, HISTORY_S);
        await putLatest({
          ...snapshot('BTC-USD', '65000.12', '65000.13', 0.42),
          book: 'synced',
          verification: { result: 'match', atUs: Date.UTC(2026, 0, 2, 3, 4, 5) * 1000 },
        });
        await putLatest({
          ...snapshot('ETH-USD', '3200.5', '3200.7', 0.1, 0.0625),
          quality: {
            [QUOTE]: {
              modelVersion: 'v-dash',
              n: 1500,
              auc: 0.9125,
              prAuc: 0.7,
              brier: 0.0781,
              baseRate: 0.25,
            },
            [VOL]: { modelVersion: 'vol-dash', n: 1500, auc: null, prAuc: null, brier: 0.01, baseRate: 0 },
          },
          feed: feedStats(),
        });
      },
    });
    ({ emulators: emu, gateway } = local);
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(gateway.url);
  });

  afterAll(async () => {
    await browser?.close();
    await local?.close();
  });

  const value = (testid: string) => page.getAttribute(`[data-testid="${testid}"]`, 'data-value');
  const text = (testid: string) => page.textContent(`[data-testid="${testid}"]`);
  const attr = (testid: string, name: string) => page.getAttribute(`[data-testid="${testid}"]`, name);
  /** Waits until the page shows `expected` as attribute `name` (default data-value) of `testid`. */
  const waitFor = (testid: string, expected: string, name = 'data-value') =>
    page.waitForFunction(
      ([id, v, a]) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute(a) === v,
      [testid, expected, name] as const,
      { timeout: 20_000 },
    );
  const api = async <T>(route: string) => (await (await fetch(`${gateway.url}${route}`)).json()) as T;
  const latest = async () => (await api<{ products: LatestSnapshot[] }>('/latest')).products;
  const history = (product: string) =>
    api<HistoryPageView>(`/history?product=${product}&minutes=30&limit=1000`);
  const labelled = (h: HistoryPageView) => h.rows.filter((r) => r.labels && Object.keys(r.labels).length > 0);

  /** The charts hold /history's rows (plus the live points polled since) and mark every matured label. */
  async function expectChartsFromHistory(product: string): Promise<void> {
    const h = await history(product);
    expect(h.rows.length).toBe(HISTORY_S - 1);
    await waitFor(`probChart-${product}`, String(labelled(h).length), 'data-labels');
    const points = Number(await attr(`priceChart-${product}`, 'data-points'));
    expect(points).toBeGreaterThanOrEqual(h.rows.length);
    expect(points).toBeLessThan(h.rows.length + 100);
  }

  it('shows the numbers /latest serves', async () => {
    await waitFor('mid-BTC-USD', '65000.125');
    const served = await latest();
    for (const s of served) {
      expect(await value(`mid-${s.product}`)).toBe(String(s.mid));
      expect(await value(`spread-${s.product}`)).toBe(String(s.spread));
      expect(await value(`bid-${s.product}`)).toBe(s.bestBid);
      expect(await value(`ask-${s.product}`)).toBe(s.bestAsk);
      expect(await value(`prob-${s.product}`)).toBe(String(s.predictions[QUOTE]!.probability));
      expect(await value(`vol-${s.product}`)).toBe(String(s.predictions[VOL]!.probability));
      expect(await text(`volModel-${s.product}`)).toBe(s.predictions[VOL]!.modelVersion);
      expect(JSON.parse((await value(`ladder-${s.product}`))!)).toEqual([
        s.bids.slice(0, 3),
        s.asks.slice(0, 3),
      ]);
    }
    expect(await page.locator('[data-testid="ladder-BTC-USD"] tbody tr').count()).toBe(3);
    expect(await text('vol-ETH-USD')).toBe('6.3%');
    // Live quality where the worker reported it; a figure undefined in the window shows as a dash.
    expect(await text('quality-ETH-USD')).toBe('live AUC 0.913 · PR-AUC 0.700 · Brier 0.0781 · base 25.0%');
    expect(await text('volQuality-ETH-USD')).toBe('live AUC — · PR-AUC — · Brier 0.0100 · base 0.0%');
    expect(await text('quality-BTC-USD')).toBe('live: awaiting labels');
    // The horizons come from the configuration (DELTA_MS, the vol label's horizon), not from the page's text.
    expect(await page.textContent('[data-testid="card-BTC-USD"] [data-label="quote"]')).toBe(
      'P(quote change within 500 ms)',
    );
    // The feed line shows the ingestor's stats from the snapshot that carries them.
    expect(await text('feed-rate')).toBe('123 msg/s');
    expect(await text('feed-reconnects')).toBe('1 reconnect');
    expect(await text('feed-resyncs')).toBe('3 resyncs');
    expect(Number(await value('feed-heartbeat'))).toBeGreaterThanOrEqual(2000);
    // What a person reads: one more decimal than the prices for the mid, the probability in percent.
    expect(await text('mid-BTC-USD')).toBe('65,000.125');
    expect(await text('prob-BTC-USD')).toBe('42.0%');
    expect(await text('latency-BTC-USD')).toBe('23 ms');
    // The book's state and its last check against the exchange's; a ticker-only product has no book.
    expect(await text('book-BTC-USD')).toBe('synced · match at 03:04:05');
    expect((await attr('book-BTC-USD', 'class')) ?? '').not.toContain('warn');
    expect(await text('book-ETH-USD')).toBe('ticker only');
    expect(await page.locator('[data-testid="card-SOL-USD"]').count()).toBe(0);
  });

  it('charts both products from /history: prices, probabilities, matured labels, quality, feed', async () => {
    await expectChartsFromHistory('BTC-USD');
    await expectChartsFromHistory('ETH-USD');
    // One point per second across products, and the v-old -> v-dash switch marked where it happened.
    expect(Number(await attr('quality-chart', 'data-points'))).toBeGreaterThanOrEqual(HISTORY_S - 1);
    expect(await attr('quality-chart', 'data-switches')).toBe('1');
    expect(Number(await attr('feed-chart', 'data-points'))).toBeGreaterThanOrEqual(HISTORY_S - 1);
    // uPlot drew them: a canvas per chart, sized.
    for (const id of ['priceChart-BTC-USD', 'probChart-ETH-USD', 'quality-chart', 'feed-chart']) {
      const box = await page.locator(`[data-testid="${id}"] canvas`).boundingBox();
      expect(box?.width, id).toBeGreaterThan(200);
    }
  });

  it('shows the /health verdict with its reasons and the active models', async () => {
    const health = await api<{ status: string; reasons: string[] }>('/health');
    await waitFor('health', health.status);
    expect(await page.locator('[data-testid="health-reasons"] li').allTextContents()).toEqual(health.reasons);
    const models = await api<{ targets: { target: string; active: string | null }[] }>('/models');
    expect(models.targets.length).toBeGreaterThan(0);
    for (const t of models.targets) {
      expect(t.active).not.toBeNull();
      await page.waitForSelector(`[data-testid="model-${t.target}"]`);
      expect(await text(`model-${t.target}`)).toContain(t.active!);
    }
  });

  it('keeps the picture across a reload (history comes from /history)', async () => {
    await page.reload();
    await waitFor('mid-BTC-USD', '65000.125');
    await expectChartsFromHistory('BTC-USD');
    await expectChartsFromHistory('ETH-USD');
    await page.screenshot({ path: artifactPath('dashboard.png'), fullPage: true });
  });

  it('follows new snapshots, including a product that appears later', async () => {
    const pointsBefore = Number(await attr('priceChart-BTC-USD', 'data-points'));
    const btc = snapshot('BTC-USD', '65010.5', '65011', 0.875);
    const sol = snapshot('SOL-USD', '150.01', '150.03', 0.3);
    await putLatest(btc);
    await putLatest(sol);
    await waitFor('mid-BTC-USD', String(btc.mid));
    await waitFor('mid-SOL-USD', String(sol.mid));

    const served = new Map((await latest()).map((s) => [s.product, s]));
    expect(await value('mid-BTC-USD')).toBe(String(served.get('BTC-USD')!.mid));
    expect(await value('prob-BTC-USD')).toBe('0.875');
    expect(await text('prob-BTC-USD')).toBe('87.5%');
    expect(await text('vol-BTC-USD')).toBe('21.9%');
    expect(await text('spread-BTC-USD')).toBe('0.5 (0.08 bps)');
    expect(await text('mid-BTC-USD')).toBe('65,010.75');
    const order = await page.$$eval('[data-testid^="card-"]', (els) =>
      els.map((e) => e.getAttribute('data-testid')),
    );
    expect(order).toEqual(['card-BTC-USD', 'card-ETH-USD', 'card-SOL-USD']);
    // The new tick is a new point on the chart.
    expect(Number(await attr('priceChart-BTC-USD', 'data-points'))).toBe(pointsBefore + 1);
  });

  it('goes stale when the API stops, and recovers when it returns', async () => {
    await emu.kill('dynamodb');
    await waitFor('status', 'error', 'class');
    expect(await text('status')).toMatch(/API unavailable: latest table is unavailable/);
    expect(await page.locator('.card.stale').count()).toBe(3);
    // The health panel shows /health's verdict on the outage with its reason.
    await page.waitForFunction(
      () =>
        document
          .querySelector('[data-testid="health-reasons"]')
          ?.textContent?.includes('latest table unreachable'),
      null,
      { timeout: 20_000 },
    );
    expect(await value('health')).toBe('degraded');
    await emu.restart('dynamodb');
    await waitFor('status', 'ok', 'class');
    expect(await text('status')).toBe('live · 3 products');
    for (const [product, bid, ask] of [
      ['BTC-USD', '65020.5', '65021'],
      ['ETH-USD', '3201.5', '3201.7'],
      ['SOL-USD', '151.01', '151.03'],
    ] as const) {
      // With the ingestor's stats fresh too: /health also checks the heartbeat's age.
      await putLatest({ ...snapshot(product, bid, ask, 0.5), feed: feedStats() });
    }
    await page.waitForFunction(() => document.querySelectorAll('.card.stale').length === 0, null, {
      timeout: 20_000,
    });
    await waitFor('health', 'ok');
    expect(await page.locator('[data-testid="health-reasons"] li').count()).toBe(0);
  });
});
