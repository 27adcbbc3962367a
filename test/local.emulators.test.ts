import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  PutRecordCommand,
} from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { dynamoClient, kinesisClient, s3Client } from '../src/aws/clients.js';
import { type EmulatorName, EmulatorStartError, startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { BUCKETS, STREAM, TABLES, type TableDef } from '../src/resources.js';
import { tempDataDir, withEmulators } from './support/system.js';

const local = withEmulators();

async function readStream(env: Record<string, string>): Promise<string[]> {
  const kinesis = kinesisClient(env);
  const { Shards = [] } = await kinesis.send(new ListShardsCommand({ StreamName: STREAM.localName }));
  const data: string[] = [];
  for (const shard of Shards) {
    const { ShardIterator } = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: STREAM.localName,
        ShardId: shard.ShardId,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const { Records = [] } = await kinesis.send(new GetRecordsCommand({ ShardIterator }));
    data.push(...Records.map((r) => Buffer.from(r.Data!).toString('utf8')));
  }
  return data;
}

async function readItem(env: Record<string, string>) {
  const { Item } = await dynamoClient(env).send(
    new GetCommand({ TableName: TABLES.latest.localName, Key: { pk: 'BTC-USD', sk: 'latest' } }),
  );
  return Item;
}

const objectKey = 'raw/product=BTC-USD/date=2024-01-02/part-0001.json';

async function readObject(env: Record<string, string>) {
  const s3 = s3Client(env);
  // s3rver omits sub-folder CommonPrefixes, so list with the full prefix.
  const listing = await s3.send(
    new ListObjectsV2Command({
      Bucket: BUCKETS.lake.localName,
      Prefix: 'raw/product=BTC-USD/date=2024-01-02/',
    }),
  );
  const body = await s3.send(new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: objectKey }));
  return { keys: (listing.Contents ?? []).map((o) => o.Key), body: await body.Body!.transformToString() };
}

describe('local emulators', () => {
  it('provisions the resources of src/resources.ts, idempotently', async () => {
    const first = await provision(local.env, { seed: false });
    const second = await provision(local.env, { seed: false });

    const resourceCount = 1 + Object.keys(TABLES).length + Object.keys(BUCKETS).length;
    expect(first.created).toHaveLength(resourceCount);
    expect(second.created).toEqual([]);
    expect(second.existing).toHaveLength(resourceCount);

    const { StreamDescriptionSummary } = await kinesisClient(local.env).send(
      new DescribeStreamSummaryCommand({ StreamName: STREAM.localName }),
    );
    expect(StreamDescriptionSummary?.StreamStatus).toBe('ACTIVE');
    expect(StreamDescriptionSummary?.OpenShardCount).toBe(STREAM.shardCount);

    for (const def of Object.values(TABLES) as TableDef[]) {
      const { Table } = await dynamoClient(local.env).send(
        new DescribeTableCommand({ TableName: def.localName }),
      );
      const expected: { AttributeName: string; KeyType: string }[] = [
        { AttributeName: def.partitionKey.name, KeyType: 'HASH' },
      ];
      if (def.sortKey) expected.push({ AttributeName: def.sortKey.name, KeyType: 'RANGE' });
      expect(Table?.KeySchema).toEqual(expected);
    }
  });

  it('keeps stored data when an emulator is killed and restarted', async () => {
    const env = local.env;
    const record = JSON.stringify({ v: 1, product: 'BTC-USD', marker: Math.random() });
    const item = { pk: 'BTC-USD', sk: 'latest', mid: '42000.5' };
    const body = JSON.stringify({ hello: 'lake' });

    await kinesisClient(env).send(
      new PutRecordCommand({
        StreamName: STREAM.localName,
        PartitionKey: 'BTC-USD',
        Data: Buffer.from(record),
      }),
    );
    await dynamoClient(env).send(new PutCommand({ TableName: TABLES.latest.localName, Item: item }));
    await s3Client(env).send(
      new PutObjectCommand({ Bucket: BUCKETS.lake.localName, Key: objectKey, Body: body }),
    );

    const reads: Record<EmulatorName, () => Promise<unknown>> = {
      kinesis: () => readStream(env),
      dynamodb: () => readItem(env),
      s3: () => readObject(env),
    };
    for (const name of ['kinesis', 'dynamodb', 's3'] as const) {
      await local.emulators.kill(name);
      // Proves the restart below really brings back a dead process, not a still-running one.
      await expect(reads[name](), `${name} should be down`).rejects.toThrow();
      await local.emulators.restart(name);
    }

    expect(await readStream(env)).toContain(record);
    expect(await readItem(env)).toEqual(item);
    expect(await readObject(env)).toEqual({ keys: [objectKey], body });
  });

  it('fails with an EmulatorStartError naming the emulator when its port is taken', async () => {
    // A silent TCP listener: it accepts connections but never answers, so only the emulator's own exit tells.
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    const port = (blocker.address() as AddressInfo).port;
    const dataDir = tempDataDir();
    try {
      const failure = startEmulators({ dataDir, ports: { dynamodb: port } });
      await expect(failure).rejects.toThrow(EmulatorStartError);
      await expect(failure).rejects.toThrow(`dynamodb emulator: port ${port} is already in use`);
    } finally {
      blocker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
