/**
 * The cost model (src/cost) and `quotewatch cost`: the table prices the deployment the context describes, the
 * goals it is held to, how each choice moves it, and the CLI's output and errors. The inventory is compared
 * with the synthesized template in test/cdk/deployment.test.ts; the usage figures are re-measured by
 * `npm run bench -- --only cost`. Also: the lake prefixes the IAM policies and lifecycle rules use are the ones
 * the writers' key functions produce.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DYNAMO_RATES, readDeploymentContext } from '../src/config.js';
import { apiCostPerMillion, latencyEstimate, monthlyCost, viewerCostPerMonth } from '../src/cost/model.js';
import { PRICES } from '../src/cost/prices.js';
import { contextArgs, costTable, formatCostTable } from '../src/cost/report.js';
import { archiveKey } from '../src/ingest/archive.js';
import { LAKE_PREFIXES } from '../src/resources.js';
import { LAKE_KINDS, lakeKey } from '../src/storage/lake.js';
import { snapshotKey } from '../src/stream/claimCheck.js';

const REPO = join(import.meta.dirname, '..');
const TEN = 'BTC-USD,ETH-USD,SOL-USD,XRP-USD,DOGE-USD,ADA-USD,AVAX-USD,LINK-USD,LTC-USD,DOT-USD';

describe('cost model', () => {
  const d = readDeploymentContext({});

  it('at the defaults for two products: within $60, DynamoDB within $10, polling under fan-out, every service priced', () => {
    const polling = monthlyCost(d, 'polling');
    const fanout = monthlyCost(d, 'fanout');
    expect(polling.total).toBeLessThanOrEqual(60);
    expect(polling.byService.DynamoDB!).toBeLessThanOrEqual(10);
    expect(fanout.total).toBeGreaterThan(polling.total);
    // Fan-out adds a consumer-shard-hour per shard and the GB it delivers; checkpoints stay once a second.
    const extra = fanout.total - polling.total;
    const consumer = d.shards * PRICES.hoursPerMonth * PRICES.kinesis.fanoutConsumerShardHour;
    expect(extra).toBeGreaterThan(consumer);
    expect(Object.keys(polling.byService).sort()).toEqual(
      [
        'CloudWatch',
        'DynamoDB',
        'ECR',
        'Fargate',
        'KMS + Secrets Manager',
        'Kinesis',
        'Public IPv4',
        'S3',
      ].sort(),
    );
    expect(polling.total).toBeCloseTo(
      polling.lines.reduce((s, l) => s + l.usd, 0),
      6,
    );
    // The first month pays for a lake of 30 days only.
    expect(polling.firstMonthTotal).toBeLessThan(polling.total);
  });

  it('each choice moves the figure the way it should', () => {
    const base = monthlyCost(d).total;
    const at = (context: Record<string, string>) => monthlyCost(readDeploymentContext(context)).total;
    expect(at({ products: TEN })).toBeGreaterThan(base * 2);
    expect(at({ latestWriteMs: '100' })).toBeGreaterThan(base); // every tick
    expect(at({ historyWriteMs: '0' })).toBeLessThan(base);
    expect(at({ dynamoCapacity: 'on-demand' })).toBeGreaterThan(base);
    expect(at({ containerInsights: 'false', lakeRetentionDays: '90' })).toBeLessThan(base);
    expect(at({ lakeObjectMinutes: '1' })).toBeGreaterThan(base);
    expect(at({ streamRetentionHours: '48' })).toBeGreaterThan(base);
    expect(at({ coinbaseKeySecret: 'x' })).toBeCloseTo(base + PRICES.secretsManager.secretMonth, 6);
    // The worker on demand instead of Spot: the same task at the on-demand rate, nothing else.
    const { cpu, memoryMiB } = d.workerTask;
    const rateGap =
      (cpu / 1024) * (PRICES.fargate.vcpuHour - PRICES.fargateSpot.vcpuHour) +
      (memoryMiB / 1024) * (PRICES.fargate.gbHour - PRICES.fargateSpot.gbHour);
    expect(d.workerCapacity).toBe('spot');
    expect(at({ workerCapacity: 'on-demand' })).toBeCloseTo(
      base + d.workers * PRICES.hoursPerMonth * rateGap,
      6,
    );
    // A hot-standby ingestor: its task and address, and a second copy of every PUT, snapshot and archive object.
    const two = monthlyCost(readDeploymentContext({ ingestors: '2' }));
    const one = monthlyCost(d);
    const line = (r: typeof one, item: string) => r.lines.find((l) => l.item === item)!.usd;
    expect(two.inventory.tasks.find((t) => t.name === 'ingestor')!.count).toBe(2);
    expect(line(two, 'ingestor')).toBeCloseTo(2 * line(one, 'ingestor'), 6);
    expect(line(two, 'PUT payload units')).toBeCloseTo(2 * line(one, 'PUT payload units'), 6);
    expect(line(two, 'task addresses')).toBeCloseTo(line(one, 'task addresses') * 1.5, 6);
    expect(two.byService.DynamoDB).toBeCloseTo(one.byService.DynamoDB!, 6);
    expect(() => readDeploymentContext({ ingestors: '3' })).toThrow(/-c ingestors.*<= 2/);
  });

  it("prices the book check on the latest table: each ingestor reads every product's verdict and tries the lease", () => {
    const one = readDeploymentContext({ products: TEN });
    const two = readDeploymentContext({ products: TEN, ingestors: '2' });
    const verdictReads = 10 * DYNAMO_RATES.verdictReadUnitsPerSPerProductPerIngestor;
    expect(verdictReads).toBeCloseTo(1, 9); // half a unit per key every 5 s
    expect(one.tables.latest.readUnitsPerS).toBeCloseTo(verdictReads, 9);
    expect(two.tables.latest.readUnitsPerS).toBeCloseTo(2 * verdictReads, 9);
    expect(two.tables.latest.writeUnitsPerS - one.tables.latest.writeUnitsPerS).toBeCloseTo(
      DYNAMO_RATES.bookCheckLeaseWritesPerSPerIngestor,
      9,
    );
    const onDemand = (ingestors: string) =>
      monthlyCost(
        readDeploymentContext({ products: TEN, ingestors, dynamoCapacity: 'on-demand' }),
      ).lines.find((l) => l.item === 'on-demand reads')!.usd;
    expect(onDemand('2')).toBeGreaterThan(onDemand('1'));
  });

  it('prices API traffic per million requests and an always-open dashboard tab', () => {
    const api = apiCostPerMillion(d);
    expect(api.read).toBeGreaterThan(PRICES.httpApi.requestsPerMillion + PRICES.lambda.requestsPerMillion);
    expect(api.predict).toBeGreaterThan(api.read - 0.5);
    const viewer = viewerCostPerMonth(d);
    expect(viewer.requests).toBeCloseTo((PRICES.hoursPerMonth * 3600 * 1000) / 300, -3);
    expect(viewer.usd).toBeCloseTo((viewer.requests / 1e6) * api.read, 6);
  });

  it('models latency with its assumptions: fan-out ahead of polling by the propagation difference', () => {
    const polling = latencyEstimate(d, 'polling');
    const fanout = latencyEstimate(d, 'fanout');
    expect(polling.toDynamoMs - fanout.toDynamoMs).toBe(130);
    expect(polling.parts.map(([what]) => what)).toContain('Kinesis propagation (polling, published average)');
    expect(polling.toDashboardMs).toBeGreaterThan(polling.toDynamoMs);
  });

  it('formats the table with both columns and the totals', () => {
    const text = formatCostTable(costTable(d, { requests: 1_000_000, viewers: 1 }));
    expect(text).toContain(`us-east-1 list prices of ${PRICES.asOf}`);
    expect(text).toMatch(/service +item +polling +fan-out +basis/);
    expect(text).toMatch(/total +without API traffic +\$\d+\.\d\d +\$\d+\.\d\d/);
    expect(text).toMatch(/total +with 1,000,000 requests, 1 viewer\(s\)/);
    expect(text).toContain('Latency, modelled');
  });

  it('takes -c pairs as the CDK CLI does, and refuses malformed ones', () => {
    expect(contextArgs(['products=BTC-USD,ETH-USD', 'shards=2'])).toEqual({
      products: 'BTC-USD,ETH-USD',
      shards: '2',
    });
    expect(() => contextArgs(['shards'])).toThrow(/-c expects key=value, got "shards"/);
  });
});

describe('quotewatch cost', () => {
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'bin/quotewatch.ts', 'cost', ...args], {
      cwd: REPO,
    }).then(
      (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        out: e.stdout,
        err: e.stderr,
      }),
    );

  it('prints the table for cdk.json plus -c, and JSON with --json', async () => {
    const table = await run(['-c', `products=${TEN}`]);
    expect(table.code).toBe(0);
    expect(table.out).toContain(`products ${TEN.split(',').join(', ')}; 3 shard(s)`);
    const json = JSON.parse((await run(['--json'])).out) as {
      polling: { total: number };
      deployment: { shards: number };
    };
    expect(json.deployment.shards).toBe(1);
    expect(json.polling.total).toBeCloseTo(monthlyCost(readDeploymentContext({})).total, 6);
  }, 60_000);

  it('names the context key of a bad value, and rejects unknown options', async () => {
    const bad = await run(['-c', 'shards=0']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('-c shards: invalid value "0" (must be >= 1)');
    const option = await run(['--frobnicate']);
    expect(option.code).toBe(2);
    expect(option.err).toMatch(/usage: quotewatch cost/);
  }, 60_000);
});

describe('lake prefixes', () => {
  it("are the prefixes the writers' keys start with (IAM and lifecycle rules are scoped by them)", () => {
    expect(snapshotKey('BTC-USD', 1, 's', 2).startsWith(LAKE_PREFIXES.snapshots)).toBe(true);
    expect(archiveKey('s', 1_750_000_000_000_000, 1).startsWith(LAKE_PREFIXES.archive)).toBe(true);
    for (const kind of LAKE_KINDS) {
      expect(
        lakeKey(kind, 'BTC-USD', 1_750_000_000_000_000, 'shard-0', 1, 2).startsWith(LAKE_PREFIXES[kind]),
      ).toBe(true);
    }
  });
});
