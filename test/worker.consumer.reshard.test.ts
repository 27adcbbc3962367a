import { MergeShardsCommand, SplitShardCommand } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { CheckpointStore } from '../src/worker/checkpoints.js';
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
  TABLE,
  whenActive,
} from './worker.consumer.support.js';

const local = withEmulators({ provision: true });

describe.each([
  ['without leases', false],
  ['with leases', true],
])('resharding (kinesalite SplitShard + MergeShards), %s', (_name, leased) => {
  it('reads parents to their end before their children: every product stays in order', async () => {
    const env = local.env;
    const kinesis = kinesisClient(env);
    const stream = `reshard-${leased ? 'leased' : 'plain'}`;
    const [first] = await createStream(kinesis, stream, 1);
    const products = ['AA-USD', 'BB-USD', 'CC-USD', 'DD-USD', 'EE-USD', 'FF-USD'];
    const ids = await putTrades(kinesis, stream, products, [1, 2, 3, 4]);

    // Split the one shard in two, write, merge the two children back into one, write again.
    const mid = (2n ** 127n).toString();
    await kinesis.send(
      new SplitShardCommand({ StreamName: stream, ShardToSplit: first!.ShardId!, NewStartingHashKey: mid }),
    );
    await whenActive(kinesis, stream);
    ids.push(...(await putTrades(kinesis, stream, products, [5, 6, 7, 8])));
    const children = (await listShards(kinesis, stream)).filter((s) => s.ParentShardId === first!.ShardId);
    expect(children).toHaveLength(2);
    await kinesis.send(
      new MergeShardsCommand({
        StreamName: stream,
        ShardToMerge: children[0]!.ShardId!,
        AdjacentShardToMerge: children[1]!.ShardId!,
      }),
    );
    await whenActive(kinesis, stream);
    ids.push(...(await putTrades(kinesis, stream, products, [9, 10, 11])));
    const shards = await listShards(kinesis, stream);
    expect(shards).toHaveLength(4); // parent, two children, their merge

    // Only now a consumer starts: every shard exists at once, and the order must still hold.
    const log: Handled[] = [];
    const consumer = localConsumer(env, stream, {
      limit: 2, // small batches: shards read side by side would interleave
      ...(leased ? { leases: { workerId: 'solo', leaseMs: 2000 } } : {}),
    });
    const running = runRecorded(consumer, log, 'solo');
    await until('every event handled', () => log.length >= ids.length);
    await running.stop();

    expect(exactlyOnce(log, ids)).toEqual({ duplicated: [], missing: [] });
    expect(outOfOrder(log)).toEqual([]);
    const states = await new CheckpointStore(dynamoClient(env), TABLE, stream).readMany(
      shards.map((s) => s.ShardId!),
    );
    // The three closed shards are marked ended; the open merge is not.
    expect(shards.map((s) => states.get(s.ShardId!)?.ended)).toEqual([true, true, true, false]);
  });
});
