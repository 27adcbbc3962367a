import { SplitShardCommand } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { type KinesisMock, startKinesisMock } from '../src/local/emulators.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';
import {
  createStream,
  exactlyOnce,
  type Handled,
  listShards,
  localConsumer,
  outOfOrder,
  putTrades,
  runRecorded,
} from './worker.consumer.support.js';

// dynalite keeps the checkpoints; kinesis-local (kinesis-mock) serves SubscribeToShard. It is slow at volume:
// a handful of records per test.
const local = withEmulators({ provision: true });
let mock: KinesisMock | undefined;
beforeAll(async () => {
  mock = await startKinesisMock();
}, 60_000);
afterAll(async () => {
  await mock?.stop();
});

const products = ['AA-USD', 'BB-USD', 'CC-USD', 'DD-USD'];

describe('enhanced fan-out consumer (kinesis-local over HTTP/1.1)', () => {
  it('is what a deployed client gets: the SDK default HTTP/2 handler without an endpoint override', () => {
    const deployed = kinesisClient({ AWS_REGION: 'us-east-1' });
    expect(deployed.config.requestHandler?.constructor.name).toBe('NodeHttp2Handler');
    expect(kinesisClient(mock!.env).config.requestHandler?.constructor.name).toBe('NodeHttpHandler');
  });

  it('delivers every record once and in order, renews its subscriptions, resumes from the checkpoint', async () => {
    const kinesis = kinesisClient(mock!.env);
    const stream = 'fanout-basic';
    await createStream(kinesis, stream, 2);
    const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
    const consumer = () =>
      localConsumer(local.env, stream, {
        kinesis,
        syncMs: 200,
        fanOut: { consumerName: 'qw-test', renewAfterMs: 1500, retryMs: 200 },
        log: (_level, msg, fields) => logs.push({ msg, fields }),
      });
    const handled: Handled[] = [];

    const ids = await putTrades(kinesis, stream, products, [1, 2]);
    const first = runRecorded(consumer(), handled, 'first');
    await until('first round handled', () => handled.length >= ids.length);
    // Let every subscription be renewed at least once before the second round arrives.
    await until(
      'renewed subscriptions',
      () => logs.filter((l) => l.msg === 'subscribed to shard').length >= 4,
    );
    ids.push(...(await putTrades(kinesis, stream, products, [3, 4])));
    await until('second round handled', () => handled.length >= ids.length);
    await first.stop();
    expect(exactlyOnce(handled, ids)).toEqual({ duplicated: [], missing: [] });
    expect(outOfOrder(handled)).toEqual([]);
    // Renewals start after the last delivered record, never at TRIM_HORIZON again once something arrived.
    const renewals = logs.filter((l) => l.msg === 'subscribed to shard' && l.fields?.from !== 'TRIM_HORIZON');
    expect(renewals.length).toBeGreaterThan(0);

    // A new consumer (a restart) resumes after the checkpoints: only what was put since is handed over.
    const more = await putTrades(kinesis, stream, products, [5]);
    const again: Handled[] = [];
    const second = runRecorded(consumer(), again, 'second');
    await until('restart handled the new records', () => again.length >= more.length);
    await second.stop();
    expect(exactlyOnce(again, more)).toEqual({ duplicated: [], missing: [] });
  }, 60_000);

  it('reads a split parent to its end before its children (kinesis-local sends no end-of-shard event: the GetRecords double-check ends it)', async () => {
    const kinesis = kinesisClient(mock!.env);
    const stream = 'fanout-split';
    const [parent] = await createStream(kinesis, stream, 1);
    const ids = await putTrades(kinesis, stream, products, [1, 2]);
    await kinesis.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: parent!.ShardId!,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    await until('split done', async () => (await listShards(kinesis, stream)).length === 3);
    ids.push(...(await putTrades(kinesis, stream, products, [3, 4])));
    const handled: Handled[] = [];
    const c = localConsumer(local.env, stream, {
      kinesis,
      syncMs: 200,
      fanOut: { consumerName: 'qw-test', retryMs: 200 },
    });
    const running = runRecorded(c, handled, 'c');
    await until('all handled', () => handled.length >= ids.length, 30_000);
    await running.stop();
    expect(exactlyOnce(handled, ids)).toEqual({ duplicated: [], missing: [] });
    expect(outOfOrder(handled)).toEqual([]);
  }, 60_000);
});
