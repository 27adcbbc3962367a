/**
 * Where a consumer starts a shard that has no checkpoint (kinesalite + dynalite): a brand-new worker group starts
 * at its start time (AT_TIMESTAMP), a checkpoint wins over it, a child shard whose parents were read by workers
 * starts at TRIM_HORIZON, and a start time after every record waits at the tip (kinesalite needed a fix for that:
 * src/local/launch-kinesalite.cjs).
 */
import { SplitShardCommand } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { startFaultProxy } from '../src/local/faultProxy.js';
import { CheckpointStore } from '../src/worker/checkpoints.js';
import { type ConsumerOptions, type KinesisConsumer, startPositionFrom } from '../src/worker/consumer.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';
import {
  createStream,
  type Handled,
  listShards,
  localConsumer,
  putTrades,
  runRecorded,
  TABLE,
  whenActive,
} from './worker.consumer.support.js';

const local = withEmulators({ provision: true });
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Hooks = Pick<ConsumerOptions, 'log' | 'onIdle'>;

/** Runs a consumer until `done` holds and it is caught up, then stops it; what it handled and logged. */
async function consume(consumer: (hooks: Hooks) => KinesisConsumer, done: (handled: Handled[]) => boolean) {
  const handled: Handled[] = [];
  const logs: { msg: string; fields?: Record<string, unknown> }[] = [];
  let idle = false;
  const c = consumer({
    log: (_level, msg, fields) => logs.push({ msg, fields }),
    onIdle: () => {
      idle = true;
    },
  });
  const running = runRecorded(c, handled, 'c');
  await until('consumer done', () => done(handled) && idle);
  await running.stop();
  return { handled, ids: handled.map((h) => h.id), logs };
}

describe('start position', () => {
  it('WORKER_START selects AT_TIMESTAMP now - lookback or TRIM_HORIZON', () => {
    expect(startPositionFrom({ start: 'lookback', startLookbackMs: 5000 })).toEqual({
      at: 'timestamp',
      lookbackMs: 5000,
    });
    expect(startPositionFrom({ start: 'trim_horizon', startLookbackMs: 5000 })).toEqual({
      at: 'trim_horizon',
    });
  });

  it('a brand-new consumer starts at its start time; a checkpoint wins over it', async () => {
    const kinesis = kinesisClient(local.env);
    const dynamo = dynamoClient(local.env);
    const stream = 'start-at-timestamp';
    await createStream(kinesis, stream, 1);
    await putTrades(kinesis, stream, ['AA-USD'], [1, 2]);
    await pause(400);
    const mid = Date.now(); // strictly between the two rounds' arrival times
    await pause(400);
    const recent = await putTrades(kinesis, stream, ['AA-USD'], [3, 4]);
    // The clock says `mid + 1000`, so a lookback of 1000 ms starts exactly at `mid`.
    const consumer = (streamName: string) => (hooks: Hooks) =>
      localConsumer(local.env, streamName, {
        start: { at: 'timestamp', lookbackMs: 1000 },
        now: () => mid + 1000,
        ...hooks,
      });
    const fresh = await consume(consumer(stream), (h) => h.length >= recent.length);
    expect(fresh.ids).toEqual(recent);
    const started = fresh.logs.find((l) => l.msg === 'shard started')!;
    expect(started.fields?.from).toBe(`AT_TIMESTAMP ${new Date(mid).toISOString()}`);

    // Same start time on a second stream whose shard has a checkpoint (after the first record): it resumes there.
    const stream2 = 'start-checkpoint-wins';
    const [shard] = await createStream(kinesis, stream2, 1);
    const last = new Map<string, string>();
    await putTrades(kinesis, stream2, ['BB-USD'], [1], undefined, last);
    const rest = await putTrades(kinesis, stream2, ['BB-USD'], [2, 3]);
    await new CheckpointStore(dynamo, TABLE, stream2).write(shard!.ShardId!, last.get(shard!.ShardId!)!);
    // Every record of stream2 arrived after `mid`: with the start time the first one would be handed over too.
    const resumed = await consume(consumer(stream2), (h) => h.length >= rest.length);
    expect(resumed.ids).toEqual(rest);
  }, 30_000);

  it('a start time after every record waits at the tip and hands over what arrives next', async () => {
    const kinesis = kinesisClient(local.env);
    const stream = 'start-at-tip';
    await createStream(kinesis, stream, 1);
    await putTrades(kinesis, stream, ['CC-USD'], [1, 2]);
    await pause(100);
    const handled: Handled[] = [];
    const c = localConsumer(local.env, stream, { start: { at: 'timestamp', lookbackMs: 0 } });
    const running = runRecorded(c, handled, 'c');
    await until('the shard is read', () => c.readingShards().length === 1);
    const next = await putTrades(kinesis, stream, ['CC-USD'], [3]);
    await until('the new record handled', () => handled.length >= 1);
    await running.stop();
    expect(handled.map((h) => h.id)).toEqual(next);
  }, 30_000);

  it('a child shard whose parent was read by workers starts at TRIM_HORIZON, not at the start time', async () => {
    const kinesis = kinesisClient(local.env);
    const dynamo = dynamoClient(local.env);
    const stream = 'start-child';
    const [parent] = await createStream(kinesis, stream, 1);
    const last = new Map<string, string>();
    await putTrades(kinesis, stream, ['DD-USD'], [1], undefined, last);
    await kinesis.send(
      new SplitShardCommand({
        StreamName: stream,
        ShardToSplit: parent!.ShardId!,
        NewStartingHashKey: (2n ** 127n).toString(),
      }),
    );
    await whenActive(kinesis, stream);
    const inChildren = await putTrades(kinesis, stream, ['DD-USD', 'EE-USD'], [2, 3]);
    await pause(100);
    // Workers read the parent to its end before this consumer came: its state says so.
    await new CheckpointStore(dynamo, TABLE, stream).write(parent!.ShardId!, last.get(parent!.ShardId!)!, {
      ended: true,
    });
    // Start time = now: every child record is older, so only TRIM_HORIZON hands them over.
    const { ids, logs } = await consume(
      (hooks) => localConsumer(local.env, stream, { start: { at: 'timestamp', lookbackMs: 0 }, ...hooks }),
      (h) => h.length >= inChildren.length,
    );
    expect([...ids].sort()).toEqual([...inChildren].sort());
    const children = (await listShards(kinesis, stream)).filter((s) => s.ParentShardId);
    // Each child's first start (on a loaded machine a lease can lapse and the shard resume from its checkpoint:
    // a later start, from a sequence number, is not what this is about).
    const first = new Map<unknown, unknown>();
    for (const l of logs)
      if (l.msg === 'shard started' && !first.has(l.fields?.shardId))
        first.set(l.fields?.shardId, l.fields?.from);
    expect([...first].sort()).toEqual(children.map((s) => [s.ShardId, 'TRIM_HORIZON']).sort());
  }, 30_000);

  it('GetShardIterator and GetRecords failing on the server side (a restarting Kinesis) are waited out: every record handed over once', async () => {
    const stream = 'qw-getrecords-5xx';
    await createStream(kinesisClient(local.env), stream, 1);
    const ids = await putTrades(kinesisClient(local.env), stream, ['A-B'], [1, 2, 3, 4, 5]);
    const proxy = await startFaultProxy({ target: local.env.AWS_ENDPOINT_URL_KINESIS! });
    // More failures in a row than the SDK's own retries: the error reaches the shard loop.
    const rule = proxy.add({
      operation: 'GetRecords',
      times: 6,
      action: { kind: 'error', status: 502, errorType: 'BadGateway' },
    });
    // The first call of a read (and of a recovery replay) too: its iterator.
    const iteratorRule = proxy.add({
      operation: 'GetShardIterator',
      times: 6,
      action: { kind: 'error', status: 503, errorType: 'ServiceUnavailable' },
    });
    try {
      const env = { ...local.env, AWS_ENDPOINT_URL_KINESIS: proxy.url };
      const { ids: handled } = await consume(
        (hooks) => localConsumer(env, stream, { ...hooks, start: { at: 'trim_horizon' } }),
        (h) => h.length >= ids.length,
      );
      expect(rule.hits).toBe(6);
      expect(iteratorRule.hits).toBe(6);
      expect(handled).toEqual(ids);
    } finally {
      await proxy.close();
    }
  });
});
