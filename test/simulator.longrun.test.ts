/**
 * `quotewatch simulate`: the in-process path (mapper, record codec, worker) fills a real S3 lake (s3rver) with
 * every zone for every product and minute, deterministically (same seed: the same object names and bytes),
 * and bad arguments exit with code 2.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Client } from '../src/aws/clients.js';
import { simulateToLake } from '../src/simulator/longrun.js';
import { decodeFeatureRows } from '../src/storage/parquet.js';
import { withEmulators } from './support/system.js';

const fixture = withEmulators();

async function keys(s3: S3Client, bucket: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.push(o.Key!);
    token = page.NextContinuationToken;
  } while (token);
  return out.sort();
}

async function bytes(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return out.Body!.transformToByteArray();
}

const run = async (s3: S3Client, bucket: string) => {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return simulateToLake({
    hours: 3 / 60,
    products: ['BTC-USD', 'ETH-USD'],
    seed: 5,
    s3,
    lakeBucket: bucket,
    tickMs: 100,
    deltaMs: 500,
    snapshotIntervalMs: 30_000,
    models: () => [],
  });
};

describe('simulate: N hours of simulated market into the lake', () => {
  it('writes every zone for every product and minute, and the same seed writes the same bytes', async () => {
    const s3 = s3Client(fixture.env);
    const summary = await run(s3, 'sim-a');
    expect(summary.simulatedHours).toBe(0.05);
    const a = await keys(s3, 'sim-a');
    for (const product of ['BTC-USD', 'ETH-USD']) {
      for (const zone of ['raw', 'features', 'labels'])
        expect(
          a.filter((k) => k.startsWith(`${zone}/product=${product}/`)).length,
          `${zone} ${product}`,
        ).toBeGreaterThanOrEqual(3);
      // Snapshots claim-checked as the ingestor does: the first and one every 30 s of exchange time.
      expect(a.filter((k) => k.startsWith(`snapshots/${product}/`))).toHaveLength(7);
    }
    // Three minutes of 100 ms ticks per product in the features zone.
    let rows = 0;
    for (const key of a.filter((k) => k.startsWith('features/product=BTC-USD/')))
      rows += (await decodeFeatureRows(await bytes(s3, 'sim-a', key))).rows.length;
    expect(rows).toBe(1800);

    await run(s3, 'sim-b');
    const b = await keys(s3, 'sim-b');
    expect(b).toEqual(a);
    for (const key of a.filter((k) => !k.startsWith('snapshots/')).slice(0, 12))
      expect(
        Buffer.from(await bytes(s3, 'sim-b', key)).equals(Buffer.from(await bytes(s3, 'sim-a', key))),
        key,
      ).toBe(true);
  }, 120_000);

  it('bad arguments: exit code 2 and the usage', () => {
    const cli = join(import.meta.dirname, '../bin/quotewatch.ts');
    const quotewatch = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', cli, 'simulate', ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...fixture.env },
      });
    for (const [args, message] of [
      [[], /--hours: expected a number of hours > 0 \(usage: quotewatch simulate --hours N/],
      [['--hours=-1'], /--hours: expected a number of hours > 0/],
      [['--hours', '1', '--products', 'btc'], /SYMBOLS/],
      [['--hours', '1', '--bogus'], /unknown option --bogus/],
    ] as const) {
      const r = quotewatch(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
