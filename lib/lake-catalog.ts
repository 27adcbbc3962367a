import { Stack } from 'aws-cdk-lib';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { FEATURE_SPEC } from '../src/features/spec.js';

export interface LakeCatalogProps {
  readonly lakeBucket: IBucket;
  /** Products the partitions are projected over (the lake's product=... folders). */
  readonly products: readonly string[];
  /** First date partitions are projected from (yyyy-MM-dd). @default 2024-01-01 */
  readonly since?: string;
}

type Column = CfnTable.ColumnProperty;
const col = (name: string, type: string, comment?: string): Column => ({ name, type, comment });

/**
 * Data columns of each zone, as src/storage/parquet.ts writes them. `product` is left out: it is the
 * partition key (Glue forbids a column and a partition key of the same name; Athena fills it from the path).
 */
export const LAKE_COLUMNS: Record<'raw' | 'features' | 'labels' | 'predictions', Column[]> = {
  raw: [
    col('ts', 'timestamp', 'stream time: newest exchange time of the product so far (UTC, µs)'),
    col('exch_ts', 'timestamp', 'exchange time of the event'),
    col('recv_ts', 'timestamp', 'receive time at the ingestor'),
    col('seq', 'bigint', 'feed sequence number'),
    col('type', 'string', 'event type (book_changes, trade, snapshot_ref, stats, ...)'),
    col('event_id', 'string', 'idempotency key'),
    col('shard_seq', 'string', 'Kinesis sequence number of the record'),
    col('record_index', 'int', 'position of the event in the record'),
    col('event', 'string', 'the full event as JSON'),
  ],
  features: [
    col('ts', 'timestamp', 'tick time (UTC, µs)'),
    col('seq', 'bigint', 'last feed sequence applied before the tick'),
    col('best_bid', 'string'),
    col('best_ask', 'string'),
    col('mid', 'double'),
    col('spread', 'double'),
    ...FEATURE_SPEC.features.map((f) => col(f.name, 'float', f.description.slice(0, 255))),
  ],
  labels: [
    col('ts', 'timestamp', 'tick time the label belongs to'),
    col('target', 'string'),
    col('value', 'double', '0/1, or the continuous forward volatility of vol_spike_60s'),
  ],
  predictions: [
    col('ts', 'timestamp', 'tick time scored'),
    col('target', 'string'),
    col('model_version', 'string'),
    col('probability', 'float'),
    col(
      'abstain',
      'string',
      "why not to act on it ('' when it can): a mismatch not yet repaired, a resync or a data gap in its window",
    ),
    col('window_s', 'int', "the model's lookback: the longest window of its inputs, s"),
    col('since_resync_s', 'double', "s since the product's last resync (NaN: none lately)"),
    col('window_resyncs', 'int', "resyncs inside the model's window"),
    col('window_gap', 'int', "1: a data gap inside the model's window"),
    col(
      'verification',
      'string',
      "the last book check's result at the tick ('' in files from before lineage)",
    ),
    col('verification_age_s', 'double', 'age of that check, s (NaN: none yet)'),
    col(
      'feed_latency_ms',
      'double',
      "exchange -> ingest latency of the product's newest event before the tick, ms (NaN: none yet)",
    ),
  ],
};

/**
 * Glue database + one external Parquet table per lake zone, with partition projection over
 * product/date/hour so Athena finds new partitions without crawlers or MSCK REPAIR.
 */
export class LakeCatalog extends Construct {
  readonly database: CfnDatabase;
  readonly databaseName: string;
  readonly tables: Record<keyof typeof LAKE_COLUMNS, CfnTable>;

  constructor(scope: Construct, id: string, props: LakeCatalogProps) {
    super(scope, id);
    const account = Stack.of(this).account;
    this.databaseName = 'quotewatch_lake';
    this.database = new CfnDatabase(this, 'Database', {
      catalogId: account,
      databaseInput: {
        name: this.databaseName,
        description: 'QuoteWatch Parquet lake (raw, features, labels, predictions)',
      },
    });
    const bucket = props.lakeBucket.bucketName;
    const tables = {} as Record<keyof typeof LAKE_COLUMNS, CfnTable>;
    for (const [zone, columns] of Object.entries(LAKE_COLUMNS) as [keyof typeof LAKE_COLUMNS, Column[]][]) {
      const table = new CfnTable(this, `${zone[0]!.toUpperCase()}${zone.slice(1)}Table`, {
        catalogId: account,
        databaseName: this.databaseName,
        tableInput: {
          name: zone,
          tableType: 'EXTERNAL_TABLE',
          partitionKeys: [col('product', 'string'), col('date', 'string'), col('hour', 'string')],
          parameters: {
            classification: 'parquet',
            'projection.enabled': 'true',
            'projection.product.type': 'enum',
            'projection.product.values': props.products.join(','),
            'projection.date.type': 'date',
            'projection.date.format': 'yyyy-MM-dd',
            'projection.date.range': `${props.since ?? '2024-01-01'},NOW`,
            'projection.hour.type': 'integer',
            'projection.hour.range': '0,23',
            'projection.hour.digits': '2',
            'storage.location.template': `s3://${bucket}/${zone}/product=\${product}/date=\${date}/hour=\${hour}`,
          },
          storageDescriptor: {
            columns,
            location: `s3://${bucket}/${zone}/`,
            inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
            serdeInfo: {
              serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
            },
          },
        },
      });
      table.addDependency(this.database);
      tables[zone] = table;
    }
    this.tables = tables;
  }
}
