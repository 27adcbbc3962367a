import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Shard } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient } from '../src/aws/clients.js';
import { ConfigError, readConsumerConfig } from '../src/config.js';
import { CheckpointStore, LeaseLostError } from '../src/worker/checkpoints.js';
import { consumerOptionsFrom } from '../src/worker/consumer.js';
import { LeaseTable, planLeases, readyShards } from '../src/worker/leases.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';
import {
  createStream,
  exactlyOnce,
  type Handled,
  localConsumer,
  outOfOrder,
  putTrades,
  runRecorded,
  TABLE,
} from './worker.consumer.support.js';

const local = withEmulators({ provision: true });

describe('planLeases', () => {
  const ready = ['s0', 's1', 's2', 's3'];
  it('takes free shards up to its share and no more', () => {
    expect(planLeases({ me: 'a', ready, mine: [], owners: new Map(), liveWorkers: [] })).toEqual({
      take: ready,
      shed: [],
    });
    const owners = new Map([['s0', 'b']]);
    expect(planLeases({ me: 'a', ready, mine: [], owners, liveWorkers: ['b'] }).take).toEqual(['s1', 's2']);
  });
  it('gives back what is above its share once another worker is alive', () => {
    expect(planLeases({ me: 'a', ready, mine: ready, owners: new Map(), liveWorkers: ['a', 'b'] })).toEqual({
      take: [],
      shed: ['s2', 's3'],
    });
  });
  it('gives one back when at the upper share while a live worker is starved (4 shards, 3 workers)', () => {
    const owners = new Map([
      ['s2', 'b'],
      ['s3', 'b'],
    ]);
    const plan = planLeases({ me: 'a', ready, mine: ['s0', 's1'], owners, liveWorkers: ['a', 'b', 'c'] });
    expect(plan).toEqual({ take: [], shed: ['s1'] });
    // Balanced within one: nothing moves.
    const settled = new Map([
      ['s2', 'b'],
      ['s3', 'c'],
    ]);
    expect(
      planLeases({ me: 'a', ready, mine: ['s0', 's1'], owners: settled, liveWorkers: ['b', 'c'] }),
    ).toEqual({
      take: [],
      shed: [],
    });
  });
  it('ignores shards that are not ready (a held shard that ended is not counted)', () => {
    expect(planLeases({ me: 'a', ready: ['s1'], mine: ['s0'], owners: new Map(), liveWorkers: [] })).toEqual({
      take: ['s1'],
      shed: [],
    });
  });
});

describe('consumer configuration', () => {
  it('defaults to polling with leases owned by a per-process id; CONSUMER_MODE=fanout selects fan-out', () => {
    const polling = consumerOptionsFrom(readConsumerConfig({}));
    expect(polling.fanOut).toBeUndefined();
    expect(polling.leases?.workerId).toContain(String(process.pid));
    expect(polling.leases?.leaseMs).toBe(10_000);
    expect(polling.idleMs).toBe(200);
    expect(consumerOptionsFrom(readConsumerConfig({ POLL_IDLE_MS: '15' })).idleMs).toBe(15);
    const fanout = consumerOptionsFrom(readConsumerConfig({ CONSUMER_MODE: 'fanout', WORKER_ID: 'w1' }));
    expect(fanout).toEqual({
      leases: { workerId: 'w1', leaseMs: 10_000 },
      idleMs: 200,
      checkpointMs: 1000,
      fanOut: { consumerName: 'quotewatch-worker' },
    });
    expect(() => readConsumerConfig({ CONSUMER_MODE: 'push' })).toThrow(ConfigError);
    expect(() => readConsumerConfig({ LEASE_MS: '10' })).toThrow(/LEASE_MS/);
    expect(() => readConsumerConfig({ POLL_IDLE_MS: '0' })).toThrow(/^POLL_IDLE_MS: /);
  });
});

describe('readyShards', () => {
  const shard = (id: string, parent?: string, adjacent?: string): Shard => ({
    ShardId: id,
    ParentShardId: parent,
    AdjacentParentShardId: adjacent,
    HashKeyRange: undefined,
    SequenceNumberRange: undefined,
  });
  const state = (id: string, ended: boolean) => ({ shardId: id, ended, leaseCounter: 0 });
  it('holds children back until every listed parent has ended', () => {
    const shards = [shard('p'), shard('q'), shard('c1', 'p'), shard('c2', 'p'), shard('m', 'c1', 'q')];
    const open = new Map([['p', state('p', false)]]);
    expect(readyShards(shards, open)).toEqual(['p', 'q']);
    const pEnded = new Map([['p', state('p', true)]]);
    expect(readyShards(shards, pEnded)).toEqual(['q', 'c1', 'c2']);
    const both = new Map([
      ['p', state('p', true)],
      ['c1', state('c1', true)],
      ['q', state('q', true)],
    ]);
    expect(readyShards(shards, both)).toEqual(['c2', 'm']);
  });
  it('treats a parent that aged out of the listing as done', () => {
    expect(readyShards([shard('c1', 'gone')], new Map())).toEqual(['c1']);
  });
});

describe('lease items in dynalite', () => {
  it('lets exactly one of two racing workers take a lease; the loser cannot renew or checkpoint it', async () => {
    const dynamo = dynamoClient(local.env);
    let now = 1_000_000;
    const store = new CheckpointStore(dynamo, TABLE, 'race-stream');
    const a = new LeaseTable(store, { workerId: 'a', leaseMs: 1000, now: () => now });
    const b = new LeaseTable(store, { workerId: 'b', leaseMs: 1000, now: () => now });
    const seen = await store.read('shard-0');
    const wins = await Promise.all([a.take(seen), b.take(seen)]);
    expect(wins.filter(Boolean)).toHaveLength(1);
    const [winner, loser] = wins[0] ? [a, b] : [b, a];
    expect(await loser.renew('shard-0')).toBe(false);
    await expect(store.write('shard-0', '1', { owner: loser.workerId })).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    await store.write('shard-0', '1', { owner: winner.workerId });

    // Not expired: the loser cannot take it; expired: it can, and the old owner is fenced off.
    expect(await loser.take(await store.read('shard-0'))).toBe(false);
    now += 1001;
    expect(await loser.take(await store.read('shard-0'))).toBe(true);
    expect(await winner.renew('shard-0')).toBe(false);
    await expect(store.write('shard-0', '2', { owner: winner.workerId })).rejects.toBeInstanceOf(
      LeaseLostError,
    );
    expect((await store.read('shard-0')).sequenceNumber).toBe('1');

    // Released: free for anyone at once.
    await loser.release('shard-0');
    expect(await winner.take(await store.read('shard-0'))).toBe(true);
  });
});

const consumerFor = (env: Record<string, string>, stream: string, workerId: string, leaseMs: number) =>
  localConsumer(env, stream, { leases: { workerId, leaseMs } });

describe('two consumers on a 4-shard stream', () => {
  it('split the shards, hand them over cleanly on stop, and handle every event exactly once in order', async () => {
    const env = local.env;
    const kinesis = kinesisClient(env);
    const stream = 'leases-balance';
    const shards = await createStream(kinesis, stream, 4);
    const products = ['AA-USD', 'BB-USD', 'CC-USD', 'DD-USD'];
    const keys = shards.map((s) => s.HashKeyRange!.StartingHashKey!);
    const log: Handled[] = [];
    const ids = await putTrades(kinesis, stream, products, [1, 2, 3, 4, 5], keys);

    const a = consumerFor(env, stream, 'worker-a', 3000);
    const runA = runRecorded(a, log, 'a');
    await until(
      'a reads all 4 shards and handled the first events',
      () => a.readingShards().length === 4 && log.length === ids.length,
    );

    const b = consumerFor(env, stream, 'worker-b', 3000);
    const runB = runRecorded(b, log, 'b');
    await until(
      'the shards are split 2/2',
      () => a.readingShards().length === 2 && b.readingShards().length === 2,
    );
    expect([...a.readingShards(), ...b.readingShards()].sort()).toEqual(shards.map((s) => s.ShardId).sort());

    ids.push(...(await putTrades(kinesis, stream, products, [6, 7, 8, 9, 10], keys)));
    await until('both handled the second round', () => log.length >= ids.length);
    const bShards = new Set(log.filter((h) => h.who === 'b').map((h) => h.shardId));
    expect(bShards).toEqual(new Set(b.readingShards()));

    // A stops gracefully: it checkpoints and releases, B takes its shards without waiting for expiry.
    await runA.stop();
    // Released on stop, not left to expire: no shard still names A once its run returned.
    const afterStop = await new CheckpointStore(dynamoClient(env), TABLE, stream).readMany(
      shards.map((s) => s.ShardId!),
    );
    expect([...afterStop.values()].filter((s) => s.leaseOwner === 'worker-a')).toEqual([]);
    await until('b reads all 4 shards', () => b.readingShards().length === 4);
    ids.push(...(await putTrades(kinesis, stream, products, [11, 12, 13], keys)));
    await until('b handled the third round', () => log.length >= ids.length);
    await runB.stop();

    expect(exactlyOnce(log, ids)).toEqual({ duplicated: [], missing: [] });
    expect(outOfOrder(log)).toEqual([]);
    expect(new Set(log.map((h) => h.who))).toEqual(new Set(['a', 'b']));
    // Both left: their leases are free.
    const store = new CheckpointStore(dynamoClient(env), TABLE, stream);
    const states = await store.readMany(shards.map((s) => s.ShardId!));
    expect([...states.values()].map((s) => s.leaseOwner)).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('a killed worker (separate process, SIGKILL) loses its shards after expiry; the other resumes from its checkpoints', async () => {
    const env = local.env;
    const kinesis = kinesisClient(env);
    const stream = 'leases-crash';
    const shards = await createStream(kinesis, stream, 4);
    const products = ['EE-USD', 'FF-USD', 'GG-USD', 'HH-USD'];
    const keys = shards.map((s) => s.HashKeyRange!.StartingHashKey!);
    const store = new CheckpointStore(dynamoClient(env), TABLE, stream);
    const log: Handled[] = [];
    const leaseMs = 1500;

    // Worker A in its own process: prints every event it handled as a JSON line.
    const script = join(local.dataDir, 'worker-a.mts');
    const src = (p: string) => pathToFileURL(join(import.meta.dirname, '..', p)).href;
    writeFileSync(
      script,
      `import { dynamoClient, kinesisClient } from ${JSON.stringify(src('src/aws/clients.ts'))};
import { KinesisConsumer } from ${JSON.stringify(src('src/worker/consumer.ts'))};
import { until } from './support/until.js';
const c = new KinesisConsumer({ kinesis: kinesisClient(), dynamo: dynamoClient(), streamName: ${JSON.stringify(stream)},
  checkpointTable: ${JSON.stringify(TABLE)}, idleMs: 20, syncMs: 100, leases: { workerId: 'worker-a', leaseMs: ${leaseMs} } });
await c.run(async (batch) => {
  for (const r of batch.records) for (const e of r.events)
    console.log(JSON.stringify({ who: 'a', shardId: batch.shardId, id: e.id, product: r.product, seq: e.seq }));
}, new AbortController().signal);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: join(import.meta.dirname, '..'),
      env: { ...process.env, ...env, NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('{')) log.push(JSON.parse(line) as Handled);
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const owners = async () =>
        [...(await store.readMany(shards.map((s) => s.ShardId!))).values()].map((s) => s.leaseOwner);
      await until(
        'a holds the 4 leases',
        async () => {
          if (child.exitCode !== null) throw new Error(`worker A exited early (${child.exitCode})`);
          return (await owners()).every((o) => o === 'worker-a');
        },
        30_000,
      );

      const b = consumerFor(env, stream, 'worker-b', leaseMs);
      const runB = runRecorded(b, log, 'b');
      await until(
        'the shards are split 2/2',
        async () =>
          b.readingShards().length === 2 && (await owners()).filter((o) => o === 'worker-a').length === 2,
      );
      const aShards = shards.map((s) => s.ShardId!).filter((id) => !b.readingShards().includes(id));

      const lastSeq = new Map<string, string>();
      const ids = await putTrades(kinesis, stream, products, [1, 2, 3, 4], keys, lastSeq);
      await until('both handled the first round', () => log.length >= ids.length);
      // A checkpointed everything it handled (the last record of each of its shards) before it dies.
      const checkpointed = async () =>
        (
          await Promise.all(
            aShards.map(async (id) => (await store.read(id)).sequenceNumber === lastSeq.get(id)),
          )
        ).every(Boolean);
      await until('a checkpointed its shards', checkpointed);

      child.kill('SIGKILL');
      await exited;
      // Killed, not released: the leases still name A until they expire.
      expect((await store.readMany(aShards)).get(aShards[0]!)?.leaseOwner).toBe('worker-a');
      const handledByA = log.length;

      ids.push(...(await putTrades(kinesis, stream, products, [5, 6, 7], keys)));
      await until('b took over and handled the second round', () => log.length >= ids.length, 20_000);
      await runB.stop();

      expect(exactlyOnce(log, ids)).toEqual({ duplicated: [], missing: [] });
      expect(outOfOrder(log)).toEqual([]);
      // After the kill every event, on A's former shards too, was B's; before it, A's shards were A's alone.
      expect(log.slice(handledByA).every((h) => h.who === 'b')).toBe(true);
      expect(new Set(log.slice(handledByA).map((h) => h.shardId))).toEqual(
        new Set(shards.map((s) => s.ShardId)),
      );
      expect(
        log
          .slice(0, handledByA)
          .filter((h) => aShards.includes(h.shardId))
          .every((h) => h.who === 'a'),
      ).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
