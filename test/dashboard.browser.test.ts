/**
 * The dashboard in headless Chromium, served by the local gateway over real dynalite: the numbers on the page
 * must match /latest and follow the table as the test writes new snapshots.
 * Needs Chromium (test/support/browser.ts).
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RunningGateway } from '../src/gateway/server.js';
import type { Emulators } from '../src/local/emulators.js';
import type { LatestSnapshot } from '../src/storage/latest.js';
import { putLatest } from '../src/storage/latest.js';
import { describeBrowser, launchChromium } from './support/browser.js';
import { type LocalGateway, startLocalGateway } from './support/gateway.js';

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
    bids: [[bid, '1']],
    asks: [[ask, '1']],
    features: {},
    predictions: {
      quote_change_500ms: { probability, modelVersion: 'v-dash' },
      vol_spike_60s: { probability: volProbability, modelVersion: 'vol-dash' },
    },
    latencyMs: 23,
    updatedAtMs: now,
  };
}

describeBrowser('dashboard in a browser', () => {
  let local: LocalGateway;
  let emu: Emulators;
  let gateway: RunningGateway;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    local = await startLocalGateway({
      tempPrefix: 'qw-dash-',
      env: { SYMBOLS: 'BTC-USD,ETH-USD,SOL-USD' },
      seed: async () => {
        await putLatest(snapshot('BTC-USD', '65000.12', '65000.13', 0.42));
        await putLatest({
          ...snapshot('ETH-USD', '3200.5', '3200.7', 0.1, 0.0625),
          quality: {
            quote_change_500ms: {
              modelVersion: 'v-dash',
              n: 1500,
              auc: 0.9125,
              brier: 0.0781,
              baseRate: 0.25,
            },
            vol_spike_60s: { modelVersion: 'vol-dash', n: 1500, auc: null, brier: 0.01, baseRate: 0 },
          },
          feed: {
            exchUs: Date.now() * 1000,
            messagesPerS: 123.4,
            bytesPerS: 50_000,
            lastHeartbeatUs: (Date.now() - 2000) * 1000,
            reconnects: 1,
            resyncs: 3,
            producerRetries: 0,
            bufferDepth: 0,
          },
        });
      },
    });
    ({ emulators: emu, gateway } = local);
    browser = await launchChromium();
    page = await browser.newPage();
    await page.goto(gateway.url);
  });

  afterAll(async () => {
    await browser?.close();
    await local?.close();
  });

  const value = (testid: string) => page.getAttribute(`[data-testid="${testid}"]`, 'data-value');
  const text = (testid: string) => page.textContent(`[data-testid="${testid}"]`);
  /** Waits until the page shows `expected` as the raw value of `testid` (the dashboard polls every 500 ms). */
  const waitForValue = (testid: string, expected: string) =>
    page.waitForFunction(
      ([id, v]) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute('data-value') === v,
      [testid, expected] as const,
      { timeout: 20_000 },
    );
  const latest = async () =>
    ((await (await fetch(`${gateway.url}/latest`)).json()) as { products: LatestSnapshot[] }).products;

  it('shows the numbers /latest serves', async () => {
    await waitForValue('mid-BTC-USD', '65000.125');
    const served = await latest();
    for (const s of served) {
      expect(await value(`mid-${s.product}`)).toBe(String(s.mid));
      expect(await value(`spread-${s.product}`)).toBe(String(s.spread));
      expect(await value(`bid-${s.product}`)).toBe(s.bestBid);
      expect(await value(`ask-${s.product}`)).toBe(s.bestAsk);
      expect(await value(`prob-${s.product}`)).toBe(String(s.predictions.quote_change_500ms!.probability));
      expect(await value(`vol-${s.product}`)).toBe(String(s.predictions.vol_spike_60s!.probability));
      expect(await text(`volModel-${s.product}`)).toBe(s.predictions.vol_spike_60s!.modelVersion);
    }
    expect(await text('vol-ETH-USD')).toBe('6.3%');
    expect(await text('volModel-ETH-USD')).toBe('vol-dash');
    // Live quality where the worker reported it; AUC undefined (one class) shows as a dash.
    expect(await text('quality-ETH-USD')).toBe('live AUC 0.913 · Brier 0.0781 · base 25.0%');
    expect(await text('volQuality-ETH-USD')).toBe('live AUC — · Brier 0.0100 · base 0.0%');
    expect(await text('quality-BTC-USD')).toBe('live: awaiting labels');
    // The feed line shows the ingestor's stats from the snapshot that carries them.
    expect(await text('feed-rate')).toBe('123 msg/s');
    expect(await text('feed-reconnects')).toBe('1 reconnect');
    expect(await text('feed-resyncs')).toBe('3 resyncs');
    expect(Number(await value('feed-heartbeat'))).toBeGreaterThanOrEqual(2000);
    expect(await text('feed-heartbeat')).toMatch(/^heartbeat \d+\.\d s ago$/);
    // What a person reads: one more decimal than the prices for the mid, the probability in percent.
    expect(await text('mid-BTC-USD')).toBe('65,000.125');
    expect(await text('bid-BTC-USD')).toBe('65,000.12');
    expect(await text('prob-BTC-USD')).toBe('42.0%');
    expect(await text('model-BTC-USD')).toBe('v-dash');
    expect(await text('latency-BTC-USD')).toBe('23 ms');
    expect(await text('mid-ETH-USD')).toBe('3,200.60');
    expect(await page.locator('[data-testid="card-SOL-USD"]').count()).toBe(0);
  });

  it('follows new snapshots, including a product that appears later', async () => {
    const before = await value('mid-BTC-USD');
    const btc = snapshot('BTC-USD', '65010.5', '65011', 0.875);
    const sol = snapshot('SOL-USD', '150.01', '150.03', 0.3);
    await putLatest(btc);
    await putLatest(sol);
    await waitForValue('mid-BTC-USD', String(btc.mid));
    await waitForValue('mid-SOL-USD', String(sol.mid));

    expect(await value('mid-BTC-USD')).not.toBe(before);
    const served = new Map((await latest()).map((s) => [s.product, s]));
    expect(await value('mid-BTC-USD')).toBe(String(served.get('BTC-USD')!.mid));
    expect(await value('spread-BTC-USD')).toBe(String(served.get('BTC-USD')!.spread));
    expect(await value('prob-BTC-USD')).toBe('0.875');
    expect(await text('prob-BTC-USD')).toBe('87.5%');
    expect(await value('vol-BTC-USD')).toBe(
      String(served.get('BTC-USD')!.predictions.vol_spike_60s!.probability),
    );
    expect(await text('vol-BTC-USD')).toBe('21.9%');
    // Prices now carry one decimal, so the spread does too and the mid two.
    expect(await text('spread-BTC-USD')).toBe('0.5 (0.08 bps)');
    expect(await text('mid-BTC-USD')).toBe('65,010.75');
    // Cards stay in product order whatever order they appeared in.
    const order = await page.$$eval('[data-testid^="card-"]', (els) =>
      els.map((e) => e.getAttribute('data-testid')),
    );
    expect(order).toEqual(['card-BTC-USD', 'card-ETH-USD', 'card-SOL-USD']);
    // Each new tick adds a point to the sparkline.
    const points = await page.getAttribute('[data-testid="card-BTC-USD"] polyline', 'points');
    expect(points?.trim().split(' ')).toHaveLength(2);
  });

  it('says so when the API is unavailable, and recovers', async () => {
    await emu.kill('dynamodb');
    await page.waitForFunction(
      () => document.querySelector('[data-testid="status"]')?.className === 'error',
      null,
      {
        timeout: 20_000,
      },
    );
    expect(await text('status')).toMatch(/API unavailable: latest table is unavailable/);
    await emu.restart('dynamodb');
    await page.waitForFunction(
      () => document.querySelector('[data-testid="status"]')?.className === 'ok',
      null,
      {
        timeout: 20_000,
      },
    );
    expect(await text('status')).toBe('live · 3 products');
  });
});
