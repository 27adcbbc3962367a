/**
 * Features-stream sink (FEATURES_STREAM, optional): every tick's features as a record of the features-stream
 * codec (src/stream/featuresRecord.ts), PutRecords in chunks of 500 (the API's limit), partitioned by product so
 * one product's ticks stay in order on one shard. Best effort: the lake is the record, this stream is a
 * convenience for other consumers.
 */
import { type KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { FeatureRow } from '../../features/types.js';
import type { Logger } from '../../log.js';
import { encodeFeaturesRecord } from '../../stream/featuresRecord.js';

export function kinesisFeaturesPublisher(
  kinesis: KinesisClient,
  streamName: string,
  log: Logger,
): (rows: readonly FeatureRow[]) => Promise<void> {
  return async (rows) => {
    for (let i = 0; i < rows.length; i += 500) {
      const Records = rows
        .slice(i, i + 500)
        .map((r) => ({ PartitionKey: r.product, Data: encodeFeaturesRecord(r) }));
      const out = await kinesis.send(new PutRecordsCommand({ StreamName: streamName, Records }));
      if (out.FailedRecordCount) {
        log('warn', 'features stream: records not accepted', {
          stream: streamName,
          failed: out.FailedRecordCount,
        });
      }
    }
  };
}
