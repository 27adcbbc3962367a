/**
 * The dashboard by push, in headless Chromium: the local gateway serves the page and the WebSocket API, and the
 * worker's push sink (its SDK client, the local management endpoint) posts the snapshots the test offers — values
 * the latest table never holds, so only a push can show them. While the socket is up the page makes no /latest
 * request and asks for anything else at most once every 10 s; it drops a stale frame by its counter; it
 * unsubscribes while hidden; when the WebSocket endpoint stops it polls /latest and says so; when it returns, push
 * resumes. Leaves a screenshot in .artifacts/dashboard-push.png. Needs Chromium (test/support/browser.ts).
 */
import { PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type PushEntry, pushEntry } from '../src/api/push.js';
import { apiGatewayManagementClient, dynamoClient } from '../src/aws/clients.js';
import { readResourceNames, WEBSOCKET_LIMITS } from '../src/config.js';
import { loadWebSocketRoutes } from '../src/gateway/handlers.js';
import { type RunningWebSocketApi, startWebSocketApi } from '../src/gateway/websocket.js';
import { componentLogger } from '../src/log.js';
import { ConnectionsStore } from '../src/storage/connections.js';
import { putLatest } from '../src/storage/latest.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { PushSink } from '../src/worker/sinks/push.js';
import { artifactPath, describeBrowser, launchChromium } from './support/browser.js';
import { type LocalGateway, snapshotAt, startLocalGateway } from './support/gateway.js';
import { seedHistory } from './support/history.js';
import { until } from './support/until.js';

const TICK_MS = 100;

describeBrowser('dashboard by push in a browser', () => {
  let local: LocalGateway;
  let websocket: RunningWebSocketApi;
  let restarted: RunningWebSocketApi | undefined;
  let store: ConnectionsStore;
  let sink: PushSink;
  let browser: Browser;
  let page: Page;
  const requests: { path: string; key: string; at: number }[] = [];

  /** A fresh snapshot of `product` at `mid`: tick time now, and always a later tick than the one before. */
  let lastUs = 0;
  const fresh = (product: string, mid: number) => {
    lastUs = Math.max(Date.now() * 1000, lastUs + TICK_MS * 1000);
    return { ...snapshotAt(product, mid), tsUs: lastUs };
  };
  const waitFor = (testid: string, expected: string, name = 'data-value') =>
    page.waitForFunction(
      ([id, v, a]) => document.querySelector(`[data-testid="${id}"]`)?.getAttribute(a) === v,
      [testid, expected, name] as const,
      { timeout: 30_000 },
    );
  const since = (at: number, path: string) => requests.filter((r) => r.at >= at && r.path === path);

  beforeAll(async () => {
    local = await startLocalGateway({
      tempPrefix: 'qw-dash-push-',
      env: { SYMBOLS: 'BTC-USD,ETH-USD', HEALTH_STALE_MS: '600000' },
      seed: async () => {
        await seedHistory('BTC-USD', 65_000, 30);
        await putLatest(fresh('BTC-USD', 65000.5));
        await putLatest(fresh('ETH-USD', 3200.5));
      },
      websocket: {},
    });
    websocket = local.websocket!;
    store = new ConnectionsStore({ client: dynamoClient(), table: readResourceNames().connectionsTable });
    sink = new PushSink({
      client: apiGatewayManagementClient(websocket.managementUrl, { maxSockets: 8, timeoutMs: 3000 }),
      store,
      tickMs: TICK_MS,
      minIntervalMs: 50,
      concurrency: 8,
      refreshMs: 100,
      telemetry: new Telemetry({ service: 'worker' }),
      log: componentLogger('worker'),
    }).start();
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('request', (r) => {
      const url = new URL(r.url());
      if (url.origin !== local.gateway.url) return;
      requests.push({
        path: url.pathname,
        key: `${url.pathname}?${url.searchParams.get('product') ?? ''}`,
        at: Date.now(),
      });
    });
    await page.goto(local.gateway.url);
  });

  afterAll(async () => {
    await sink?.stop();
    await browser?.close();
    await restarted?.close();
    await local?.close();
  });

  it('updates by push: no /latest request, anything else at most once every 10 s', async () => {
    await waitFor('mode', 'push', 'data-mode');
    const pushedAt = Date.now();
    // Values the table never holds: only a push can show them.
    for (let i = 1; i <= 8; i++) {
      const mid = 65100.5 + i;
      sink.offer(fresh('BTC-USD', mid));
      await waitFor('mid-BTC-USD', String(mid));
    }
    await waitFor('status', 'ok', 'class');
    expect(await page.textContent('[data-testid="mode"]')).toMatch(/^push · last update \d+\.\d s ago$/);
    // The refresh every 10 s (labels mature late) is still there; no request of a kind comes twice within it.
    let k = 0;
    await until(
      '11 s of pushes',
      async () => {
        sink.offer(fresh('ETH-USD', 3300 + (k++ % 20) / 2));
        return Date.now() - pushedAt > 11_000;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );
    expect(since(pushedAt, '/latest')).toEqual([]);
    const byKey = new Map<string, number[]>();
    for (const r of requests.filter((x) => x.at >= pushedAt)) {
      byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.at]);
    }
    expect([...byKey.keys()].some((k) => k.startsWith('/history'))).toBe(true);
    for (const [key, times] of byKey) {
      for (let i = 1; i < times.length; i++) {
        // 10 s apart, less what a timer may slip on a loaded machine (a page asking every 5 s fails).
        expect(times[i]! - times[i - 1]!, key).toBeGreaterThan(7_000);
      }
    }
  });

  it('drops a stale frame by its counter', async () => {
    const shown = Number(await page.getAttribute('[data-testid="card-BTC-USD"]', 'data-n'));
    const dropped = Number((await page.getAttribute('[data-testid="mode"]', 'data-dropped')) ?? 0);
    const [connection] = (await store.list()).live;
    const stale: PushEntry = { ...pushEntry(fresh('BTC-USD', 1.5), TICK_MS), n: shown - 5 };
    const mgmt = apiGatewayManagementClient(websocket.managementUrl, { maxSockets: 1, timeoutMs: 3000 });
    await mgmt.send(
      new PostToConnectionCommand({
        ConnectionId: connection!.id,
        Data: Buffer.from(JSON.stringify({ type: 'snapshot', sentAtMs: Date.now(), snapshots: [stale] })),
      }),
    );
    mgmt.destroy();
    await waitFor('mode', String(dropped + 1), 'data-dropped');
    expect(await page.getAttribute('[data-testid="mid-BTC-USD"]', 'data-value')).not.toBe('1.5');
  });

  it('unsubscribes while the tab is hidden and subscribes again when shown', async () => {
    const products = async () => (await store.list()).live.map((c) => c.products.join(','));
    const visibility = (hidden: boolean) =>
      page.evaluate((h) => {
        Object.defineProperty(document, 'hidden', { value: h, configurable: true });
        Object.defineProperty(document, 'visibilityState', {
          value: h ? 'hidden' : 'visible',
          configurable: true,
        });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await visibility(true);
    await until('no product subscribed', async () => (await products()).join('') === '');
    await visibility(false);
    await until('subscribed again', async () => (await products()).join() === 'BTC-USD,ETH-USD');
    const mid = 65300.5;
    sink.offer(fresh('BTC-USD', mid));
    await waitFor('mid-BTC-USD', String(mid));
  });

  it('polls /latest and says so while the WebSocket endpoint is down; push resumes when it returns', async () => {
    const port = Number(new URL(websocket.url).port);
    await websocket.close();
    await waitFor('mode', 'poll', 'data-mode');
    expect(await page.textContent('[data-testid="mode"]')).toMatch(/^polling \/latest \(push /);
    const downAt = Date.now();
    await putLatest(fresh('BTC-USD', 65400.5));
    await waitFor('mid-BTC-USD', '65400.5');
    expect(since(downAt, '/latest').length).toBeGreaterThan(0);

    restarted = await startWebSocketApi({
      routes: await loadWebSocketRoutes(),
      port,
      limits: WEBSOCKET_LIMITS,
    });
    await waitFor('mode', 'push', 'data-mode');
    await page.screenshot({ path: artifactPath('dashboard-push.png'), fullPage: true });
    // A poll may have been on its way at the switch; after the next push none follows.
    sink.offer(fresh('BTC-USD', 65500.5));
    await waitFor('mid-BTC-USD', '65500.5');
    const resumedAt = Date.now();
    sink.offer(fresh('BTC-USD', 65600.5));
    await waitFor('mid-BTC-USD', '65600.5');
    await until('a second of push', () => Date.now() - resumedAt > 1000, { everyMs: 100 });
    expect(since(resumedAt, '/latest')).toEqual([]);
  });
});
