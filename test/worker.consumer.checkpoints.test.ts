/**
 * The checkpoint cadence (kinesalite + dynalite): with CHECKPOINT_MS a shard's checkpoint is written at most once
 * per interval, always at the newest handled record, and on stop whatever was handled since is written before
 * the lease goes, so the next consumer resumes exactly after it (nothing skipped, nothing handed over twice).
 */
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { readConsumerConfig } from '../src/config.js';
import { startFaultProxy } from '../src/local/faultProxy.js';
import type { Logger } from '../src/log.js';
import { CheckpointStore } from '../src/worker/checkpoints.js';
import { consumerOptionsFrom } from '../src/worker/consumer.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';
import {
  createStream,
  type Handled,
  localConsumer,
  putTrades,
  runRecorded,
  TABLE,
} from './worker.consumer.support.js';

const local = withEmulators({ provision: true });

describe('checkpoint cadence', () => {
  it('CHECKPOINT_MS defaults to once a second and reaches the consumer; 0 means every batch', () => {
    expect(consumerOptionsFrom(readConsumerConfig({})).checkpointMs).toBe(1000);
    expect(readConsumerConfig({ CHECKPOINT_MS: '0' }).checkpointMs).toBe(0);
    expect(() => readConsumerConfig({ CHECKPOINT_MS: '-5' })).toThrow(/CHECKPOINT_MS/);
  });

  it('writes the newest handled position at most once per interval, and the rest on stop', async () => {
    const kinesis = kinesisClient(local.env);
    const store = new CheckpointStore(dynamoClient(local.env), TABLE, 'checkpoint-cadence');
    const [shard] = await createStream(kinesis, 'checkpoint-cadence', 1);
    const shardId = shard!.ShardId!;
    const last = new Map<string, string>();
    const handled: Handled[] = [];
    // An interval no test run outlasts: only the first batch's write and the stop's are due.
    const consumer = localConsumer(local.env, 'checkpoint-cadence', { checkpointMs: 3_600_000 });
    const written: (string | undefined)[] = [];
    const write = consumer.store.write.bind(consumer.store);
    consumer.store.write = (id, sequenceNumber, opts) => {
      written.push(sequenceNumber); // observed, then written for real
      return write(id, sequenceNumber, opts);
    };
    const running = runRecorded(consumer, handled, 'a');

    const first = await putTrades(kinesis, 'checkpoint-cadence', ['AA-USD'], [1, 2], undefined, last);
    await until('first round handled', () => handled.length === first.length);
    const afterFirst = last.get(shardId)!;
    await until('first checkpoint', async () => (await store.read(shardId)).sequenceNumber === afterFirst);

    const second = await putTrades(kinesis, 'checkpoint-cadence', ['AA-USD'], [3, 4, 5], undefined, last);
    await until('second round handled', () => handled.length === first.length + second.length);
    // Handled, but within the interval: still the first round's position.
    expect((await store.read(shardId)).sequenceNumber).toBe(afterFirst);

    await running.stop();
    expect((await store.read(shardId)).sequenceNumber).toBe(last.get(shardId));
    expect(written).toEqual([afterFirst, last.get(shardId)]);

    // A new consumer resumes after the stop's checkpoint: only what came later is handed over.
    const third = await putTrades(kinesis, 'checkpoint-cadence', ['AA-USD'], [6], undefined, last);
    const again: Handled[] = [];
    const next = runRecorded(localConsumer(local.env, 'checkpoint-cadence'), again, 'b');
    await until('third round handled', () => again.length >= third.length);
    await next.stop();
    expect(again.map((h) => h.id)).toEqual(third);
    expect(handled.map((h) => h.id)).toEqual([...first, ...second]);
  }, 30_000);

  it('a position held back by the interval is written once the interval is up, while reading goes on', async () => {
    const kinesis = kinesisClient(local.env);
    const store = new CheckpointStore(dynamoClient(local.env), TABLE, 'checkpoint-timer');
    const [shard] = await createStream(kinesis, 'checkpoint-timer', 1);
    const shardId = shard!.ShardId!;
    const last = new Map<string, string>();
    const handled: Handled[] = [];
    const running = runRecorded(
      localConsumer(local.env, 'checkpoint-timer', { checkpointMs: 200 }),
      handled,
      'a',
    );
    let put = 0;
    for (const round of [[1], [2, 3], [4]]) {
      put += (await putTrades(kinesis, 'checkpoint-timer', ['BB-USD'], round, undefined, last)).length;
      await until('round handled', () => handled.length === put);
    }
    await until('the held-back position written', async () => {
      return (await store.read(shardId)).sequenceNumber === last.get(shardId);
    });
    await running.stop();
  }, 30_000);

  it('a checkpoint write failing while DynamoDB restarts is waited out: the consumer reads on, the position lands', async () => {
    // The fault proxy stands for dynalite restarting: its UpdateItem answers 500 for a while (more failures than the
    // SDK's own 3 attempts). Before, the first failed write ended the consumer at its next batch.
    const proxy = await startFaultProxy({ target: local.env.AWS_ENDPOINT_URL_DYNAMODB! });
    try {
      const kinesis = kinesisClient(local.env);
      const store = new CheckpointStore(dynamoClient(local.env), TABLE, 'checkpoint-retry');
      const [shard] = await createStream(kinesis, 'checkpoint-retry', 1);
      const shardId = shard!.ShardId!;
      const last = new Map<string, string>();
      const handled: Handled[] = [];
      const warnings: string[] = [];
      const log: Logger = (level, message) => {
        if (level === 'warn') warnings.push(message);
      };
      const consumer = localConsumer(
        { ...local.env, AWS_ENDPOINT_URL_DYNAMODB: proxy.url },
        'checkpoint-retry',
        {
          checkpointMs: 0,
          log,
        },
      );
      const running = runRecorded(consumer, handled, 'a');
      const first = await putTrades(kinesis, 'checkpoint-retry', ['CC-USD'], [1], undefined, last);
      await until('first round handled', () => handled.length === first.length);
      await until(
        'first checkpoint',
        async () => (await store.read(shardId)).sequenceNumber === last.get(shardId),
      );

      const outage = proxy.add({
        operation: 'UpdateItem',
        times: 8,
        action: { kind: 'error', status: 500, errorType: 'InternalFailure' },
      });
      let put = first.length;
      for (const round of [[2], [3, 4], [5]]) {
        put += (await putTrades(kinesis, 'checkpoint-retry', ['CC-USD'], round, undefined, last)).length;
        await until('round handled during the outage', () => handled.length === put);
      }
      await until('the outage over', () => outage.hits === 8);
      await until('the newest position written', async () => {
        return (await store.read(shardId)).sequenceNumber === last.get(shardId);
      });
      expect(warnings).toContain('checkpoint write failed; retrying');
      await running.stop();
      expect(handled.map((h) => h.seq)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
