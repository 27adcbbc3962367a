/**
 * `quotewatch cost`: the monthly cost table of a deployment, polling and enhanced fan-out side by side, from the
 * same context the stack reads (cdk.json's "context" and `-c key=value`, src/config.ts readDeploymentContext).
 *
 *   quotewatch cost [-c key=value ...] [--viewers N] [--requests N] [--json]
 */
import { readFileSync } from 'node:fs';
import { type DeploymentSettings, readDeploymentContext } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import {
  apiCostPerMillion,
  type CostReport,
  latencyEstimate,
  monthlyCost,
  pushViewerCostPerMonth,
  type Service,
  trainingRunCost,
  viewerCostPerMonth,
} from './model.js';
import { PRICES } from './prices.js';
import { USAGE } from './usage.js';

/** cdk.json or a `-c` pair that cannot be read. */
export class CostUsageError extends QuoteWatchError {}

/** cdk.json's context (feature flags included: the reader ignores keys that are not deployment settings). */
export function cdkJsonContext(file: string): Record<string, unknown> {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { context?: Record<string, unknown> }).context ?? {};
  } catch (err) {
    throw new CostUsageError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** `-c key=value` pairs, as the CDK CLI takes them. */
export function contextArgs(values: readonly string[]): Record<string, string> {
  const context: Record<string, string> = {};
  for (const pair of values) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CostUsageError(`-c expects key=value, got "${pair}"`);
    context[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return context;
}

export interface CostTable {
  deployment: DeploymentSettings;
  polling: CostReport;
  fanout: CostReport;
  apiPerMillion: ReturnType<typeof apiCostPerMillion>;
  viewer: ReturnType<typeof viewerCostPerMonth>;
  /** The same tab by push, at the same cadence. */
  pushViewer: ReturnType<typeof pushViewerCostPerMonth>;
  trainingRun: ReturnType<typeof trainingRunCost>;
  extra: { requests: number; viewers: number; usd: number };
}

export function costTable(deployment: DeploymentSettings, traffic = { requests: 0, viewers: 0 }): CostTable {
  const apiPerMillion = apiCostPerMillion(deployment);
  const viewer = viewerCostPerMonth(deployment);
  return {
    deployment,
    polling: monthlyCost(deployment, 'polling'),
    fanout: monthlyCost(deployment, 'fanout'),
    apiPerMillion,
    viewer,
    pushViewer: pushViewerCostPerMonth(),
    trainingRun: trainingRunCost(),
    extra: {
      ...traffic,
      usd: (traffic.requests / 1e6) * apiPerMillion.read + traffic.viewers * viewer.usd,
    },
  };
}

const money = (n: number) => `$${n.toFixed(2)}`;

export function formatCostTable(t: CostTable): string {
  const d = t.deployment;
  const out: string[] = [];
  const chosen = d.consumer;
  out.push(
    `QuoteWatch on AWS, monthly (${PRICES.hoursPerMonth} h), ${PRICES.region} list prices of ${PRICES.asOf} (check them when deploying)`,
    `products ${d.products.join(', ')}; ${d.shards} shard(s); ingestor ${d.ingestorTask.cpu / 1024} vCPU / ${d.ingestorTask.memoryMiB / 1024} GB; ` +
      `${d.workers} worker(s) ${d.workerTask.cpu / 1024} vCPU / ${d.workerTask.memoryMiB / 1024} GB; DynamoDB ${d.dynamoCapacity}; ` +
      `latest item every ${d.latestWriteMs} ms, history ${d.historyWriteMs ? `every ${d.historyWriteMs} ms` : 'off'}; deployed consumer: ${chosen}`,
    '',
  );
  const services = [...new Set([...t.polling.lines, ...t.fanout.lines].map((l) => l.service))] as Service[];
  const rows: string[][] = [['service', 'item', 'polling', 'fan-out', 'basis']];
  for (const service of services) {
    const items = [
      ...new Set(
        [...t.polling.lines, ...t.fanout.lines].filter((l) => l.service === service).map((l) => l.item),
      ),
    ];
    for (const item of items) {
      const pl = t.polling.lines.find((l) => l.service === service && l.item === item);
      const fl = t.fanout.lines.find((l) => l.service === service && l.item === item);
      const basis = (chosen === 'fanout' ? (fl ?? pl) : (pl ?? fl))?.basis ?? '';
      rows.push([service, item, pl ? money(pl.usd) : '-', fl ? money(fl.usd) : '-', basis]);
    }
  }
  rows.push(['', '', '', '', '']);
  for (const service of services) {
    rows.push([
      service,
      'subtotal',
      money(t.polling.byService[service] ?? 0),
      money(t.fanout.byService[service] ?? 0),
      '',
    ]);
  }
  rows.push(['total', 'without API traffic', money(t.polling.total), money(t.fanout.total), 'lake full']);
  rows.push([
    'total',
    'first month',
    money(t.polling.firstMonthTotal),
    money(t.fanout.firstMonthTotal),
    'lake 30 days old',
  ]);
  if (t.extra.usd > 0) {
    rows.push([
      'total',
      `with ${t.extra.requests.toLocaleString('en-US')} requests, ${t.extra.viewers} viewer(s)`,
      money(t.polling.total + t.extra.usd),
      money(t.fanout.total + t.extra.usd),
      '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) {
    out.push(
      r
        .map((cell, i) =>
          i === 2 || i === 3 ? cell.padStart(widths[i]!) : i === 4 ? cell : cell.padEnd(widths[i]!),
        )
        .join('  ')
        .trimEnd(),
    );
  }
  const a = t.apiPerMillion;
  out.push(
    '',
    `API traffic: ${money(a.read)} per million read requests (/latest, /health, /version, /), ${money(a.predict)} per million POST /predict`,
    `  (${a.basis})`,
    `A dashboard tab open all month polls /latest every 300 ms: ${(t.viewer.requests / 1e6).toFixed(1)} M requests, ${money(t.viewer.usd)} a month.`,
    `By push at the same cadence: ${(t.pushViewer.messages / 1e6).toFixed(1)} M WebSocket messages, ${money(t.pushViewer.usd)} a month ` +
      `(${Object.entries(t.pushViewer.parts)
        .map(([k, v]) => `${k} ${money(v)}`)
        .join(', ')}); the publisher sends only when values change, so this is the most it costs.`,
    `A training run (both targets): ${money(t.trainingRun.usd)} (${t.trainingRun.basis}); times the runs the schedule makes.`,
    '',
    'Latency, modelled (averages from published figures, not measured here):',
  );
  for (const mode of ['polling', 'fanout'] as const) {
    const l = latencyEstimate(d, mode);
    out.push(
      `  ${mode.padEnd(7)} exchange -> DynamoDB ~${Math.round(l.toDynamoMs)} ms, -> dashboard ~${Math.round(l.toDashboardMs)} ms: ` +
        l.parts.map(([what, ms]) => `${what} ${Math.round(ms)}`).join(', '),
    );
  }
  out.push(
    '',
    `Usage measured ${USAGE.measuredAt} (src/cost/usage.ts, npm run bench -- --only cost); storage at steady state, the lake full.`,
  );
  return out.join('\n');
}

/** `quotewatch cost` (arguments checked by the CLI): prints the table, or JSON. */
export function costCommand(
  options: { context: readonly string[]; requests: number; viewers: number; json: boolean },
  repoRoot: string,
): number {
  const context = { ...cdkJsonContext(`${repoRoot}/cdk.json`), ...contextArgs(options.context) };
  const deployment = readDeploymentContext(context);
  const table = costTable(deployment, { requests: options.requests, viewers: options.viewers });
  console.log(options.json ? JSON.stringify(table, null, 2) : formatCostTable(table));
  return 0;
}
