/**
 * `npm run soak -- --minutes N --products P` (defaults 4 and 20): load and soak. The real processes — a realtime
 * simulator of P products in this process, one ingestor, two workers splitting the stream's shards by lease
 * (WORKERS=2 locally), kinesalite, dynalite behind a tap, s3rver — run for N minutes:
 *   warm-up (the first quarter, at least 40 s): start-up, the books filling, the JIT warming;
 *   then the measured part: at 5% of it `worker2` is killed (SIGKILL, kept down) and the other worker takes its
 *   shard over once the lease expires (LEASE_MS 10 s); at 20% `worker2` comes back and takes its share again;
 *   from 30% to 40% the market runs at 10x real time (a burst of ten times the event rate); from 50% on, nothing
 *   happens but the market: the steady part, over which memory must stay flat.
 * Figures (bench/results.json):
 *   soak.rss_growth_pct         resident memory growth over the steady part, the worst of the ingestor and the
 *                               worker that stays up (each after a full GC); the growth since warm-up, which
 *                               includes the takeover (one worker holding both shards' books), is in the context
 *   soak.max_loop_lag_ms        the longest event-loop delay of any component after warm-up (each ops port's
 *                               EventLoopDelayMaxMs, scraped every 5 s)
 *   soak.events_per_s_per_core  market events the workers handled per CPU second they used
 *   soak.exchange_to_ddb_p50_ms / _p99_ms  exchange time -> latest item acked, every latest item after warm-up
 *   soak.iterator_age_p99_ms    the workers' iterator age (WorkerIteratorAgeMs: a batch's newest record's age when
 *                               handled; kinesalite's MillisBehindLatest is always 0), p99 as a histogram bucket
 * The context has the takeover time, memory over time (RSS at every scrape, without GC), the CPU and the slowest
 * latency samples with their time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../src/local/ports.js';
import { type ComponentName, LOCAL_WORKER_ID, startSystem } from '../src/local/supervisor.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { PROCESS, WORKER } from '../src/telemetry/catalog.js';
import { prometheusName } from '../src/telemetry/telemetry.js';
import { dynamoTap } from './dynamoTap.js';
import { BENCH_PRODUCTS, type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';
import { childPid, children, cpuSeconds, rssAfterGc, rssMb } from './procs.js';

const SCRAPE_MS = 5000;
const BURST_SPEED = 10;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SoakOptions {
  minutes: number;
  products: number;
}

/** `--minutes N --products P` among the bench runner's own arguments. */
export function soakOptions(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: { minutes: { type: 'string' }, products: { type: 'string' }, only: { type: 'string' } },
    strict: true,
  });
  const minutes = Number(values.minutes ?? 4);
  const products = Number(values.products ?? 20);
  if (!(minutes >= 2 && minutes <= 24 * 60))
    throw new Error(`--minutes: expected 2 to 1440, got ${values.minutes}`);
  if (!Number.isInteger(products) || products < 2 || products > BENCH_PRODUCTS.length) {
    throw new Error(
      `--products: expected a whole number from 2 to ${BENCH_PRODUCTS.length}, got ${values.products}`,
    );
  }
  return { minutes, products };
}

/** A histogram's cumulative bucket counts in a component's Prometheus text, by upper bound (+Inf last). */
function buckets(text: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(
    new RegExp(`^${name}_bucket\\{le="([^"]+)",service="[^"]+"\\} (\\S+)$`, 'gm'),
  )) {
    out.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return out;
}

/** The smallest bucket bound under which a share `q` of the counts lies. */
function bucketQuantile(counts: Map<number, number>, q: number): number {
  const bounds = [...counts.keys()].sort((a, b) => a - b);
  const total = counts.get(Number.POSITIVE_INFINITY) ?? 0;
  for (const b of bounds) if ((counts.get(b) ?? 0) >= q * total) return b;
  return Number.POSITIVE_INFINITY;
}

/** One sample of a component's Prometheus text: the value of `name` (service label only), or undefined. */
function metric(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}\\{service="[^"]+"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function scrape(url: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2000) });
    return res.ok ? await res.text() : undefined;
  } catch {
    return undefined; // down (killed on purpose) or busy
  }
}

/** CPU seconds used since `since` by the processes matching `file`, those born or gone meanwhile included. */
class CpuMeter {
  private readonly seen = new Map<number, { first: number; last: number }>();
  constructor(
    private readonly file: string,
    private readonly ppid: number,
  ) {
    this.sample(true);
  }
  sample(initial = false): void {
    for (const c of children(this.ppid)) {
      if (!c.args.includes(this.file)) continue;
      try {
        const now = cpuSeconds(c.pid);
        const s = this.seen.get(c.pid);
        if (s) s.last = now;
        else this.seen.set(c.pid, { first: initial ? now : 0, last: now }); // born during the span: all of it
      } catch {
        // exited meanwhile: its last sample stands
      }
    }
  }
  get seconds(): number {
    let total = 0;
    for (const s of this.seen.values()) total += s.last - s.first;
    return total;
  }
}

export const soakGroup: BenchGroup = {
  name: 'soak',
  description: 'load and soak: many products, two workers (one killed and back), a 10x burst',
  async run(): Promise<BenchResult[]> {
    const opts = soakOptions(process.argv.slice(2));
    const products = BENCH_PRODUCTS.slice(0, opts.products);
    const totalMs = opts.minutes * 60_000;
    const warmMs = Math.max(40_000, totalMs / 4);
    const at = (share: number) => warmMs + (totalMs - warmMs) * share;
    const log = (line: string) => console.log(`  [soak] ${line}`);

    const simPort = await freePort();
    const sim = await startSimulator({
      port: simPort,
      seed: 29,
      products: productSpecs(products),
      mode: 'realtime',
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'qw-soak-'));
    const dynamoPort = await freePort();
    const tap = await dynamoTap(dynamoPort);
    const ops = { ingestor: await freePort(), worker: await freePort(), worker2: await freePort() };
    const system = await startSystem({
      dataDir,
      freePorts: true,
      ports: {
        dynamodb: dynamoPort,
        ingestorOps: ops.ingestor,
        workerOps: ops.worker,
        worker2Ops: ops.worker2,
      },
      quiet: true,
      components: ['ingestor', 'worker', 'worker2'],
      env: {
        FEED_URL: `ws://127.0.0.1:${simPort}`,
        SYMBOLS: products.join(','),
        AWS_ENDPOINT_URL_DYNAMODB: tap.url,
        // SIGUSR2 collects (src/local/gcSignal.ts): memory is compared after a full GC.
        NODE_OPTIONS: '--expose-gc',
      },
    });
    const started = Date.now();
    const elapsed = () => Date.now() - started;
    const urls: Partial<Record<ComponentName, string>> = {
      ingestor: `http://127.0.0.1:${ops.ingestor}`,
      worker: `http://127.0.0.1:${ops.worker}`,
      worker2: `http://127.0.0.1:${ops.worker2}`,
    };
    try {
      log(`${products.length} products, ${opts.minutes} min; warming up ${Math.round(warmMs / 1000)} s`);
      await sleep(warmMs);
      const ingestorPid = childPid('containers/ingestor/main.ts');
      // Both workers run the same program: `worker` (the one that stays up) is told apart by its WORKER_ID.
      const survivor = childPid('containers/worker/main.ts', process.pid, { WORKER_ID: LOCAL_WORKER_ID });
      const rss0 = { ingestor: await rssAfterGc(ingestorPid), worker: await rssAfterGc(survivor) };
      let rssSteady: typeof rss0 | undefined;
      const cpu = new CpuMeter('containers/worker/main.ts', process.pid);
      tap.recording = true;
      const t0 = Date.now();
      let events = 0;
      const lastEvents = new Map<string, number>();
      // The workers' iterator-age histogram over the measured part, summed across restarts.
      const ageCounts = new Map<number, number>();
      const lastAge = new Map<string, Map<number, number>>();
      let maxLoopMs = 0;
      const loopBy: Record<string, number> = {};
      let takeoverS: number | undefined;
      const rssSeries: { atS: number; ingestor: number; worker: number }[] = [];
      let phase = 0;
      const plan: [number, string, () => Promise<void>][] = [
        [
          at(0.05),
          'kill -9 worker2 (kept down)',
          async () => {
            const killedAt = Date.now();
            const takeover = system.waitForLog('worker', (l) => l.includes('shard started'), 120_000);
            await system.kill('worker2');
            void takeover.then(
              () => {
                takeoverS = (Date.now() - killedAt) / 1000;
                log(`worker took the orphaned shard over after ${takeoverS.toFixed(1)} s`);
              },
              () => log('no takeover seen within 120 s'),
            );
          },
        ],
        [at(0.2), 'worker2 back', () => system.restart('worker2')],
        [at(0.3), `burst: the market at ${BURST_SPEED}x`, async () => sim.setSpeed(BURST_SPEED)],
        [at(0.4), 'burst over', async () => sim.setSpeed(1)],
        [
          at(0.5),
          'steady part: memory after a full GC',
          async () => {
            rssSteady = { ingestor: await rssAfterGc(ingestorPid), worker: await rssAfterGc(survivor) };
          },
        ],
      ];
      while (elapsed() < totalMs) {
        await sleep(SCRAPE_MS);
        const next = plan[phase];
        if (next && elapsed() >= next[0]) {
          log(next[1]);
          await next[2]();
          phase++;
        }
        cpu.sample();
        const atS = Math.round((Date.now() - t0) / 1000);
        for (const [name, url] of Object.entries(urls)) {
          const text = await scrape(url!);
          if (!text) continue;
          const loop = metric(text, prometheusName(PROCESS.loopDelayMaxMs));
          if (loop !== undefined) {
            maxLoopMs = Math.max(maxLoopMs, loop);
            loopBy[name] = Math.max(loopBy[name] ?? 0, loop);
          }
          if (name === 'ingestor') continue;
          const handled = metric(text, prometheusName(WORKER.events)) ?? 0;
          const previous = lastEvents.get(name);
          // A restarted worker counts from 0 again: its new total is all new.
          if (previous !== undefined) events += handled >= previous ? handled - previous : handled;
          lastEvents.set(name, handled);
          const age = buckets(text, prometheusName(WORKER.iteratorAgeMs));
          const before = lastAge.get(name);
          const restarted =
            before !== undefined &&
            (age.get(Number.POSITIVE_INFINITY) ?? 0) < (before.get(Number.POSITIVE_INFINITY) ?? 0);
          if (before !== undefined) {
            for (const [le, n] of age)
              ageCounts.set(le, (ageCounts.get(le) ?? 0) + (restarted ? n : n - (before.get(le) ?? 0)));
          }
          lastAge.set(name, age);
        }
        try {
          rssSeries.push({ atS, ingestor: rssMb(ingestorPid), worker: rssMb(survivor) });
        } catch {
          // a process restarted by the supervisor meanwhile
        }
      }
      tap.recording = false;
      const spanS = (Date.now() - t0) / 1000;
      cpu.sample();
      const rss1 = { ingestor: await rssAfterGc(ingestorPid), worker: await rssAfterGc(survivor) };
      const pct = (from: number, to: number) => ((to - from) / from) * 100;
      const steady = rssSteady ?? rss0;
      const growth = {
        ingestor: pct(steady.ingestor, rss1.ingestor),
        worker: pct(steady.worker, rss1.worker),
      };
      const sinceWarmup = {
        ingestor: pct(rss0.ingestor, rss1.ingestor),
        worker: pct(rss0.worker, rss1.worker),
      };
      const samples = Float64Array.from(tap.samples);
      const context = {
        ...machineContext(),
        products: products.length,
        minutes: opts.minutes,
        warmupS: warmMs / 1000,
        spanS,
        plan: plan.map(([ms, what]) => ({ atS: Math.round(ms / 1000), what })),
        takeoverS,
        rssMb: { afterWarmup: rss0, steadyStart: rssSteady, end: rss1 },
        rssGrowthPct: { steadyPart: growth, sinceWarmup },
        iteratorAgeBucketsMs: Object.fromEntries([...ageCounts].map(([le, n]) => [String(le), n])),
        loopDelayMaxMs: loopBy,
        events,
        workerCpuS: cpu.seconds,
        eventsPerS: events / spanS,
        latencySamples: samples.length,
        latencyMaxMs: samples.length ? Math.max(...samples) : null,
        rssSeriesMb: rssSeries,
        slowestLatency: tap.samples
          .map((ms, i) => ({ atS: Math.round((tap.times[i]! - t0) / 1000), ms: Math.round(ms) }))
          .sort((a, b) => b.ms - a.ms)
          .slice(0, 10),
        method:
          'realtime simulator in the bench process -> ingestor -> kinesalite -> worker + worker2 (leases) -> tap -> dynalite, s3rver; local tuning as npm start; ops ports scraped every 5 s',
      };
      return [
        { name: 'soak.rss_growth_pct', value: Math.max(growth.ingestor, growth.worker), unit: '%', context },
        { name: 'soak.max_loop_lag_ms', value: maxLoopMs, unit: 'ms', context },
        {
          name: 'soak.events_per_s_per_core',
          value: cpu.seconds > 0 ? events / cpu.seconds : 0,
          unit: 'events/s/core',
          context,
        },
        { name: 'soak.exchange_to_ddb_p50_ms', value: quantile(samples, 0.5), unit: 'ms', context },
        { name: 'soak.exchange_to_ddb_p99_ms', value: quantile(samples, 0.99), unit: 'ms', context },
        {
          name: 'soak.iterator_age_p99_ms',
          value: bucketQuantile(ageCounts, 0.99),
          unit: 'ms (bucket bound)',
          context,
        },
      ];
    } finally {
      await system.stop();
      await sim.close();
      await tap.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
