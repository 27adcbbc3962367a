/**
 * A long-running component's ops port (OPS_PORT, loopback or the task's own interface):
 * - GET /metrics: its Prometheus registry as text (src/telemetry/telemetry.ts), for any Prometheus scraper, with
 *   the event loop's delay since the previous scrape (PROCESS);
 * - GET /metrics.json: the same as prom-client JSON, which the local gateway's /metrics aggregates across
 *   components (aggregateMetrics);
 * - GET /healthz: 200 while the component says it is healthy, else 503, with its reasons.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { AggregatorRegistry } from 'prom-client';
import { PROCESS } from './catalog.js';
import type { Telemetry } from './telemetry.js';

export interface Health {
  ok: boolean;
  [detail: string]: unknown;
}

export type HealthProbe = () => Health | Promise<Health>;

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

export async function startOpsServer(options: {
  port: number;
  host?: string;
  telemetry: Telemetry;
  health?: HealthProbe;
}): Promise<OpsServer> {
  const { telemetry } = options;
  // The event loop's delay between two scrapes (max and p99), what a soak run watches for stalls.
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const sampleLoop = () => {
    if (loop.count > 0) {
      telemetry.gauge(PROCESS.loopDelayMaxMs, loop.max / 1e6);
      telemetry.gauge(PROCESS.loopDelayP99Ms, loop.percentile(99) / 1e6);
    }
    loop.reset();
  };
  const server = createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end();
      } else if (path === '/metrics') {
        sampleLoop();
        res.writeHead(200, { 'content-type': telemetry.registry.contentType });
        res.end(await telemetry.registry.metrics());
      } else if (path === '/metrics.json') {
        sampleLoop();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(await telemetry.registry.getMetricsAsJSON()));
      } else if (path === '/healthz') {
        const health = (await options.health?.()) ?? { ok: true };
        res.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ service: telemetry.service, ...health }));
      } else {
        res.writeHead(404).end();
      }
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        loop.disable();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * One Prometheus text exposition of several components: this process's registry plus each `targets` ops port's
 * /metrics.json (every series keeps its `service` label, so nothing is summed across components). A target that
 * does not answer is left out and named in a comment, never a reason to fail.
 */
type MetricsJson = Awaited<ReturnType<Telemetry['registry']['getMetricsAsJSON']>>;

export async function aggregateMetrics(own: Telemetry, targets: readonly string[]): Promise<string> {
  const parts: MetricsJson[] = [await own.registry.getMetricsAsJSON()];
  const missing: string[] = [];
  await Promise.all(
    targets.map(async (url) => {
      try {
        const res = await fetch(`${url}/metrics.json`, { signal: AbortSignal.timeout(2000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        parts.push((await res.json()) as MetricsJson);
      } catch {
        missing.push(url);
      }
    }),
  );
  const text = await AggregatorRegistry.aggregate(parts).metrics();
  return missing.length ? `# unreachable: ${missing.join(' ')}\n${text}` : text;
}
