/** Shared by the ingest tests: read a whole stream back from the Kinesis emulator. */
import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { decodeRecord, type StreamRecord } from '../src/stream/record.js';

export interface ReadRecord extends StreamRecord {
  shardId: string;
  partitionKey: string;
}

/** Every record of every shard, from the start, in shard order. */
export async function readStream(client: KinesisClient, streamName: string): Promise<ReadRecord[]> {
  const shards = (await client.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? [];
  const out: ReadRecord[] = [];
  for (const shard of shards) {
    let iterator = (
      await client.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shard.ShardId!,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator, Limit: 1000 }));
      for (const r of page.Records ?? []) {
        out.push({ ...decodeRecord(r.Data!), shardId: shard.ShardId!, partitionKey: r.PartitionKey! });
      }
      if ((page.Records ?? []).length === 0) break;
      iterator = page.NextShardIterator;
    }
  }
  return out;
}
