import os from 'node:os';
import WebSocket from 'ws';
import type { PushEntry, ServerMessage } from '../src/api/push.js';
import { DEFAULT_PORTS } from '../src/config.js';
import { pushViewerCostPerMonth } from '../src/cost/model.js';
import { LOCAL_TUNING } from '../src/local/supervisor.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';
import { childPid, cpuSeconds, rssAfterGc } from './procs.js';
import { GATEWAY, startSystem } from './system.js';

const WS_URL = `ws://127.0.0.1:${DEFAULT_PORTS.websocket}`;
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const LATENCY_S = 60;
const FANOUT_CLIENTS = 1000;
const FANOUT_S = 20;
const POLL_MS = 300;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Client {
  ws: WebSocket;
  /** Per product, the counter shown. */
  shown: Map<string, number>;
  /** Per product, what arrived while measuring: [counter, arrival ms], in order. */
  arrivals: Map<string, [number, number][]>;
}

/** Opens a client that subscribes to every product and hands each entry it would show to `onEntry`. */
function client(onEntry: (e: PushEntry, receivedAt: number, c: Client) => void): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(WS_URL);
    const c: Client = { ws, shown: new Map(), arrivals: new Map() };
    ws.once('error', reject);
    ws.on('message', (data) => {
      const at = Date.now();
      const m = JSON.parse(data.toString()) as ServerMessage;
      if (m.type === 'subscribed') resolve(c);
      if (m.type !== 'snapshot' && m.type !== 'subscribed') return;
      for (const e of m.snapshots) {
        if (e.n <= (c.shown.get(e.product) ?? -1)) continue;
        c.shown.set(e.product, e.n);
        onEntry(e, at, c);
      }
    });
    ws.once('open', () => ws.send(JSON.stringify({ action: 'subscribe', products: PRODUCTS })));
  });
}

/** The worker's counters of events handled and late ones (its ops port's Prometheus text). */
async function workerEvents(): Promise<{ events: number; late: number }> {
  const text = await (await fetch(`http://127.0.0.1:${DEFAULT_PORTS.workerOps}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    events: value('quotewatch_worker_events_total'),
    late: value('quotewatch_worker_late_events_total'),
  };
}

async function latencies(): Promise<{ push: number[]; poll: number[]; close: number[] }> {
  const push: number[] = [];
  const poll: number[] = [];
  // A tick's close: from its exchange time to the worker's snapshot of it (watermarks and the stream's path).
  const close: number[] = [];
  const started = Date.now();
  const c = await client((e, at) => {
    if (at - started > 2000) {
      push.push(at - e.tsUs / 1000);
      close.push(e.updatedAtMs - e.tsUs / 1000);
    }
  });
  const seen = new Map<string, number>();
  const deadline = Date.now() + LATENCY_S * 1000;
  while (Date.now() < deadline) {
    // Every 300 ms on average, at a phase against the 100 ms ticks that varies: a fixed cadence locks onto the tick
    // grid, and its median then depends on the phase the run happened to start at (74 to 128 ms in runs minutes
    // apart), where viewers' phases are spread evenly.
    const next = Date.now() + POLL_MS + (Math.random() - 0.5) * 100;
    const body = (await (await fetch(`${GATEWAY}/latest`)).json()) as {
      products: { product: string; tsUs: number }[];
    };
    const at = Date.now();
    for (const s of body.products) {
      if (s.tsUs === seen.get(s.product)) continue;
      if (seen.has(s.product)) poll.push(at - s.tsUs / 1000);
      seen.set(s.product, s.tsUs);
    }
    await sleep(Math.max(0, next - Date.now()));
  }
  c.ws.close();
  return { push, poll, close };
}

export const pushGroup: BenchGroup = {
  name: 'push',
  description:
    'the dashboard by push against polling, with the whole system at 1x real time; fan-out to 1,000',
  async run() {
    const system = startSystem('qw-bench-push-', {
      NODE_OPTIONS: '--expose-gc',
      MAX_CONNECTIONS: String(FANOUT_CLIENTS * 2),
      MAX_CONNECTIONS_PER_IP: String(FANOUT_CLIENTS * 2),
    });
    const clients: Client[] = [];
    try {
      await system.firstPrediction();
      const gateway = childPid('src/gateway/main.ts', system.pid);
      const worker = childPid('containers/worker/main.ts', system.pid);
      const before = await workerEvents();
      const { push, poll, close } = await latencies();
      const after = await workerEvents();

      // Without subscribers: the worker's CPU over the window, memory after GC.
      const idleCpu0 = cpuSeconds(worker);
      await sleep(FANOUT_S * 1000);
      const idleCpu = cpuSeconds(worker) - idleCpu0;
      const rss0 = { gateway: await rssAfterGc(gateway), worker: await rssAfterGc(worker) };

      // 1,000 subscribers (under API Gateway's 500 new connections a second), then the fan-out window.
      const published = new Map<string, { product: string; n: number; updatedAtMs: number }>();
      let measuring = false;
      let messages = 0;
      const onEntry = (e: PushEntry, at: number, c: Client) => {
        if (!measuring) return;
        published.set(`${e.product}:${e.n}`, { product: e.product, n: e.n, updatedAtMs: e.updatedAtMs });
        let list = c.arrivals.get(e.product);
        if (!list) {
          list = [];
          c.arrivals.set(e.product, list);
        }
        list.push([e.n, at]);
      };
      for (let i = 0; i < FANOUT_CLIENTS; i += 200) {
        clients.push(...(await Promise.all(Array.from({ length: 200 }, () => client(onEntry)))));
        await sleep(500);
      }
      for (const c of clients) {
        c.ws.on('message', () => {
          if (measuring) messages++;
        });
      }
      // The sink picks the subscriptions up at its next refresh (PUSH_REFRESH_MS).
      await sleep(3000);
      const cpu0 = cpuSeconds(worker);
      measuring = true;
      const t0 = Date.now();
      await sleep(FANOUT_S * 1000);
      measuring = false;
      const seconds = (Date.now() - t0) / 1000;
      const busyCpu = cpuSeconds(worker) - cpu0;
      const rss1 = { gateway: await rssAfterGc(gateway), worker: await rssAfterGc(worker) };

      // Per entry published early enough to have reached everyone: when the last client had it or a newer one.
      const fanout: number[] = [];
      const cutoff = t0 + (FANOUT_S - 5) * 1000;
      for (const e of published.values()) {
        if (e.updatedAtMs < t0 || e.updatedAtMs > cutoff) continue;
        let last = 0;
        for (const c of clients) {
          const hit = c.arrivals.get(e.product)?.find(([n]) => n >= e.n);
          last = Math.max(last, hit ? hit[1] : Number.POSITIVE_INFINITY);
        }
        if (Number.isFinite(last)) fanout.push(last - e.updatedAtMs);
      }
      const postsPerS = messages / seconds;
      const cpuUsPerPost = ((busyCpu - idleCpu * (seconds / FANOUT_S)) / messages) * 1e6;
      const pushCost = pushViewerCostPerMonth(POLL_MS, { workerCpuUsPerPost: Math.max(0, cpuUsPerPost) });
      const context = {
        ...machineContext(),
        products: PRODUCTS,
        latencyWindowS: LATENCY_S,
        pushSamples: push.length,
        pollSamples: poll.length,
        pollMs: POLL_MS,
        pollPhase: 'each wait 300 ms +- 50 ms (uniform): the poll phase against the ticks spread evenly',
        tickCloseMs: { p50: quantile(close, 0.5), p99: quantile(close, 0.99) },
        watermarkLatenessMs: Number(process.env.WATERMARK_LATENESS_MS ?? LOCAL_TUNING.WATERMARK_LATENESS_MS),
        // Stream events (watermarks included) the worker handled while latency was measured, and how many came late.
        workerEvents: after.events - before.events,
        lateEvents: after.late - before.late,
        fanoutClients: clients.length,
        fanoutWindowS: seconds,
        fanoutEntries: fanout.length,
        entriesSeen: published.size,
        loadAverage: os.loadavg(),
        workerCpuS: { idle: idleCpu, with1000: busyCpu },
        rssMb: { none: rss0, with1000: rss1 },
        method:
          'npm start (1x real time, PUSH_MIN_MS 250) with NODE_OPTIONS=--expose-gc; clients in the bench process',
      };
      return [
        { name: 'push.exchange_to_browser_p50_ms', value: quantile(push, 0.5), unit: 'ms', context },
        { name: 'push.exchange_to_browser_p99_ms', value: quantile(push, 0.99), unit: 'ms', context },
        { name: 'poll.exchange_to_browser_p50_ms', value: quantile(poll, 0.5), unit: 'ms', context },
        { name: 'poll.exchange_to_browser_p99_ms', value: quantile(poll, 0.99), unit: 'ms', context },
        { name: 'push.fanout_1000_p99_ms', value: quantile(fanout, 0.99), unit: 'ms', context },
        { name: 'push.mgmt_posts_per_s', value: postsPerS, unit: 'posts/s', context },
        { name: 'push.worker_cpu_us_per_post', value: cpuUsPerPost, unit: 'µs', context },
        {
          name: 'push.rss_growth_mb_1000_clients',
          value: rss1.gateway + rss1.worker - rss0.gateway - rss0.worker,
          unit: 'MB',
          context,
        },
        {
          name: 'cost.push_usd_per_viewer_month',
          value: pushCost.usd,
          unit: 'USD/month',
          context: { ...context, parts: pushCost.parts },
        },
      ] satisfies BenchResult[];
    } finally {
      for (const c of clients) c.ws.terminate();
      await system.stop();
    }
  },
};
