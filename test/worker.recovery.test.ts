/**
 * Crash recovery with real processes: simulator (in this process, so its book can be asked) -> ingestor ->
 * kinesalite -> worker -> s3rver/dynalite. The worker is SIGKILLed mid-stream and restarted by the supervisor;
 * afterwards the lake must hold every tick exactly once (contiguous tick times per product, no duplicates, in
 * features and predictions alike), every raw event once, and the book after recovery must equal the simulator's.
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { dynamoClient, s3Client } from '../src/aws/clients.js';
import { BUCKETS, TABLES } from '../src/resources.js';
import { getLatest } from '../src/storage/latest.js';
import { decodeFeatureRows, decodeRawRows } from '../src/storage/parquet.js';
import { expectSimulatorTop, withSimulatedSystem } from './support/system.js';
import { until as untilWithin } from './support/until.js';

const until = <T>(what: string, probe: () => Promise<T | undefined>) => untilWithin(what, probe, 90_000);

const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const OBJECT_TICKS = 10; // 1 s objects: several close before and after the crash
const fixture = await withSimulatedSystem({
  simulator: { seed: 11, products: PRODUCTS },
  components: ['ingestor', 'worker'],
  seed: false,
  env: { LAKE_OBJECT_TICKS: String(OBJECT_TICKS) },
  backoff: { initialMs: 200, maxMs: 400 },
});
// The crash and the supervisor's restart come on top of the usual waits.

describe('worker crash recovery', () => {
  it('leaves every tick in the lake exactly once and the book equal to the simulator after a SIGKILL', async () => {
    const s3 = s3Client(fixture.system.env);
    const bucket = BUCKETS.lake.localName;
    const list = async (prefix: string) => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const out = await s3.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        keys.push(...(out.Contents ?? []).map((o) => o.Key!));
        token = out.NextContinuationToken;
      } while (token);
      return keys.sort();
    };
    const read = async (key: string) =>
      (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray();

    const product = 'ETH-USD';
    await until('three feature objects', async () =>
      (await list(`features/product=${product}/`)).length >= 3 ? true : undefined,
    );
    const crashedAt = Date.now();
    await fixture.system.crash('worker');
    await fixture.system.waitForLog('worker', (l) => l.includes('replay done'), 60_000);
    // Wait until windows well after the crash are closed.
    const crashTickUs = crashedAt * 1000;
    await until('objects after the crash', async () => {
      const keys = await list(`features/product=${product}/`);
      const windows = keys.map((k) => Number(/-(\d+)\.parquet$/.exec(k)![1]) * 1000);
      return windows.filter((w) => w > crashTickUs + 3_000_000).length >= 2 ? true : undefined;
    });

    for (const p of PRODUCTS) {
      const ticks: number[] = [];
      for (const key of await list(`features/product=${p}/`)) {
        const { rows } = await decodeFeatureRows(await read(key));
        for (const r of rows) {
          ticks.push(r.tsUs);
          expectSimulatorTop(fixture.sim, p, r.seq, r.bestBid, r.bestAsk);
        }
      }
      ticks.sort((a, b) => a - b);
      expect(ticks.length).toBeGreaterThan(50);
      expect(ticks[0]!).toBeLessThan(crashTickUs);
      expect(ticks[ticks.length - 1]!).toBeGreaterThan(crashTickUs + 3_000_000);
      const steps = new Set(ticks.slice(1).map((t, i) => t - ticks[i]!));
      expect([...steps], `tick steps of ${p}: no gap, no duplicate`).toEqual([100_000]);

      const ids = new Set<string>();
      let raw = 0;
      for (const key of await list(`raw/product=${p}/`)) {
        for (const r of await decodeRawRows(await read(key))) {
          ids.add(r.eventId);
          raw++;
        }
      }
      expect(ids.size, `raw events of ${p} stored once`).toBe(raw);
    }

    // The book served after recovery is the simulator's at the same sequence.
    const latest = await until('a latest snapshot after the restart', async () => {
      const snap = await getLatest(product, {
        client: dynamoClient(fixture.system.env),
        table: TABLES.latest.localName,
      });
      return snap && snap.updatedAtMs > crashedAt ? snap : undefined;
    });
    expectSimulatorTop(fixture.sim, product, latest.seq, latest.bestBid, latest.bestAsk);
  });
});
