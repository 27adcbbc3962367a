/**
 * Parquet encoding of the lake's rows (features, labels, predictions): written with hyparquet-writer,
 * SNAPPY-compressed, read back with hyparquet (+ hyparquet-compressors). Tick times are INT64
 * TIMESTAMP(MICROS, UTC) columns named `ts`; the reader returns them as epoch µs numbers, not Dates (a Date
 * would drop the microseconds).
 */
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { type ColumnSource, parquetWriteBuffer, type SchemaElement } from 'hyparquet-writer';
import { QuoteWatchError } from '../errors.js';
import { FEATURE_SPEC } from '../features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../features/types.js';
import { snappyCompress } from './snappy.js';

export class ParquetFormatError extends QuoteWatchError {}

/**
 * One stream event as the worker consumed it, stored under raw/: enough to recompute the features offline
 * (snapshot_refs included: their S3 objects stay in the lake bucket). `event` is the event's full JSON.
 */
export interface RawRow {
  product: string;
  /** Stream time: the product's newest exchange time so far (never goes back; picks the lake window). */
  tsUs: number;
  exchUs: number;
  recvUs: number;
  seq: number;
  type: string;
  eventId: string;
  /** Kinesis sequence number of the record that carried the event, and the event's index in it. */
  record: string;
  index: number;
  event: string;
}

/** One model score of one feature row, as stored under predictions/. */
export interface PredictionRow {
  product: string;
  tsUs: number;
  target: string;
  modelVersion: string;
  probability: number;
  /** seq of the scored feature row (names lake objects). */
  seq?: number;
  /**
   * Its lineage (src/features/lineage.ts; absent in files from before it): why it abstains ('' when it does not), the
   * model's window (s), seconds since the last resync (NaN: none), resyncs and a data gap (1) inside the window, the
   * last book check's result and age (s; NaN before any), the feed's exchange → ingest latency (ms; NaN: none).
   */
  abstain?: string;
  windowS?: number;
  sinceResyncS?: number;
  windowResyncs?: number;
  windowGap?: number;
  verification?: string;
  verificationAgeS?: number;
  feedLatencyMs?: number;
}

/** PredictionRow's lineage fields (all present or all absent). */
export const PREDICTION_LINEAGE_FIELDS = [
  'abstain',
  'windowS',
  'sinceResyncS',
  'windowResyncs',
  'windowGap',
  'verification',
  'verificationAgeS',
  'feedLatencyMs',
] as const;

/**
 * A span of one product's predictions marked after the fact (#17, the lake's `corrections/` zone, append-only):
 * `suspect` = made on a book that a later check found different from the exchange's, between the last check that
 * matched (or the book's first tick) and that check.
 */
export interface CorrectionRow {
  product: string;
  /** The span [fromUs, toUs) of tick times, epoch µs. */
  fromUs: number;
  toUs: number;
  mark: 'suspect';
  /** The book_check event that found it. */
  checkId: string;
  reason: string;
}

type Kind = 'STRING' | 'TIMESTAMP_US' | 'INT64' | 'INT32' | 'DOUBLE' | 'FLOAT';
interface Column {
  name: string;
  kind: Kind;
  data: unknown[];
  /** PLAIN: the column never repeats a value, so the library would sample it and reject a dictionary anyway. */
  plain?: boolean;
}

/** One column of a zone's fixed schema: the Parquet column `name`, of type `kind`, holds the row's `field`. */
interface ColumnDef<R> {
  name: string;
  kind: Kind;
  field: keyof R & string;
  /** A column whose values are all distinct when the rows' event ids are: PLAIN, see encodeRawRows. */
  plain?: true;
  /** Written where the row has no such field (the column is REQUIRED). */
  empty?: string | number;
}

// Each zone's columns in file order; encoding and decoding both follow these tables.

/** The fixed columns of features files; after them comes one FLOAT column per feature of the spec (`values`). */
const FEATURE_COLUMNS: readonly ColumnDef<FeatureRow>[] = [
  { name: 'product', kind: 'STRING', field: 'product' },
  { name: 'ts', kind: 'TIMESTAMP_US', field: 'tsUs' },
  { name: 'seq', kind: 'INT64', field: 'seq' },
  { name: 'best_bid', kind: 'STRING', field: 'bestBid' },
  { name: 'best_ask', kind: 'STRING', field: 'bestAsk' },
  { name: 'mid', kind: 'DOUBLE', field: 'mid' },
  { name: 'spread', kind: 'DOUBLE', field: 'spread' },
];

const LABEL_COLUMNS: readonly ColumnDef<LabelRow>[] = [
  { name: 'product', kind: 'STRING', field: 'product' },
  { name: 'ts', kind: 'TIMESTAMP_US', field: 'tsUs' },
  { name: 'target', kind: 'STRING', field: 'target' },
  { name: 'value', kind: 'DOUBLE', field: 'value' },
];

const PREDICTION_COLUMNS: readonly ColumnDef<PredictionRow>[] = [
  { name: 'product', kind: 'STRING', field: 'product' },
  { name: 'ts', kind: 'TIMESTAMP_US', field: 'tsUs' },
  { name: 'target', kind: 'STRING', field: 'target' },
  { name: 'model_version', kind: 'STRING', field: 'modelVersion' },
  { name: 'probability', kind: 'FLOAT', field: 'probability' },
  { name: 'abstain', kind: 'STRING', field: 'abstain', empty: '' },
  { name: 'window_s', kind: 'INT32', field: 'windowS', empty: 0 },
  { name: 'since_resync_s', kind: 'DOUBLE', field: 'sinceResyncS', empty: Number.NaN },
  { name: 'window_resyncs', kind: 'INT32', field: 'windowResyncs', empty: 0 },
  { name: 'window_gap', kind: 'INT32', field: 'windowGap', empty: 0 },
  // '' marks a row without lineage: every lineage has a result, 'pending' at least.
  { name: 'verification', kind: 'STRING', field: 'verification', empty: '' },
  { name: 'verification_age_s', kind: 'DOUBLE', field: 'verificationAgeS', empty: Number.NaN },
  { name: 'feed_latency_ms', kind: 'DOUBLE', field: 'feedLatencyMs', empty: Number.NaN },
];

const CORRECTION_COLUMNS: readonly ColumnDef<CorrectionRow>[] = [
  { name: 'product', kind: 'STRING', field: 'product' },
  { name: 'from_ts', kind: 'TIMESTAMP_US', field: 'fromUs' },
  { name: 'to_ts', kind: 'TIMESTAMP_US', field: 'toUs' },
  { name: 'mark', kind: 'STRING', field: 'mark' },
  { name: 'check_id', kind: 'STRING', field: 'checkId' },
  { name: 'reason', kind: 'STRING', field: 'reason' },
];

const RAW_COLUMNS: readonly ColumnDef<RawRow>[] = [
  { name: 'product', kind: 'STRING', field: 'product' },
  { name: 'ts', kind: 'TIMESTAMP_US', field: 'tsUs' },
  { name: 'exch_ts', kind: 'TIMESTAMP_US', field: 'exchUs' },
  { name: 'recv_ts', kind: 'TIMESTAMP_US', field: 'recvUs' },
  { name: 'seq', kind: 'INT64', field: 'seq' },
  { name: 'type', kind: 'STRING', field: 'type' },
  { name: 'event_id', kind: 'STRING', field: 'eventId', plain: true },
  { name: 'shard_seq', kind: 'STRING', field: 'record' },
  { name: 'record_index', kind: 'INT32', field: 'index' },
  { name: 'event', kind: 'STRING', field: 'event', plain: true },
];

/** The rows as columns of `defs`; `plain`: declare the columns marked plain PLAIN. */
function columnsOf<R>(defs: readonly ColumnDef<R>[], rows: readonly R[], plain = false): Column[] {
  return defs.map((d) => ({
    name: d.name,
    kind: d.kind,
    data: d.empty === undefined ? rows.map((r) => r[d.field]) : rows.map((r) => r[d.field] ?? d.empty),
    ...(plain && d.plain ? { plain } : {}),
  }));
}

/** One row read back (see readParquetObjects: INT64 and timestamps as numbers) into the fields of `defs`. */
function rowOf<R>(defs: readonly ColumnDef<R>[], o: Record<string, unknown>): R {
  const row: Record<string, unknown> = {};
  for (const d of defs) row[d.field] = o[d.name];
  return row as R;
}

function schemaElement(c: Column): SchemaElement {
  const base = { name: c.name, repetition_type: 'REQUIRED' as const };
  switch (c.kind) {
    case 'STRING':
      return { ...base, type: 'BYTE_ARRAY', converted_type: 'UTF8' };
    case 'TIMESTAMP_US':
      return {
        ...base,
        type: 'INT64',
        logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MICROS' },
      };
    default:
      return { ...base, type: c.kind };
  }
}

function encode(columns: Column[], kv: Record<string, string> = {}): Uint8Array {
  const n = columns[0]?.data.length ?? 0;
  for (const c of columns) {
    if (c.data.length !== n)
      throw new ParquetFormatError(`column ${c.name} has ${c.data.length} values, expected ${n}`);
  }
  const columnData: ColumnSource[] = columns.map((c) => ({
    name: c.name,
    // INT64 columns take bigints; µs times are safe integers, so the conversion is exact.
    data: c.kind === 'INT64' || c.kind === 'TIMESTAMP_US' ? c.data.map((v) => BigInt(v as number)) : c.data,
    nullable: false,
    ...(c.plain ? { encoding: 'PLAIN' as const } : {}),
  }));
  const buf = parquetWriteBuffer({
    columnData,
    schema: [{ name: 'root', num_children: columns.length }, ...columns.map(schemaElement)],
    codec: 'SNAPPY',
    // Same bytes as the library's own SNAPPY compressor, faster (see snappy.ts).
    compressors: { SNAPPY: snappyCompress },
    kvMetadata: Object.entries(kv).map(([key, value]) => ({ key, value })),
    createdBy: 'quotewatch',
  });
  return new Uint8Array(buf);
}

/** Feature rows as Parquet: product, ts, seq, best_bid, best_ask, mid, spread, then one FLOAT per feature. */
export function encodeFeatureRows(rows: readonly FeatureRow[], spec: FeatureSpec = FEATURE_SPEC): Uint8Array {
  const F = spec.features.length;
  for (const r of rows) {
    if (r.values.length !== F) {
      throw new ParquetFormatError(`row ${r.product}@${r.tsUs} has ${r.values.length} values, spec has ${F}`);
    }
  }
  const columns: Column[] = [
    ...columnsOf(FEATURE_COLUMNS, rows),
    // FLOAT, as the model reads them (float32): training sees exactly what serving feeds.
    ...spec.features.map((f, i) => ({
      name: f.name,
      kind: 'FLOAT' as const,
      data: rows.map((r) => r.values[i]!),
    })),
  ];
  return encode(columns, { 'quotewatch.kind': 'features', 'quotewatch.feature_spec': JSON.stringify(spec) });
}

/** Label values are DOUBLE: 0/1 for quote_change_500ms, the continuous forward volatility for vol_spike_60s. */
export function encodeLabelRows(rows: readonly LabelRow[]): Uint8Array {
  return encode(columnsOf(LABEL_COLUMNS, rows), { 'quotewatch.kind': 'labels' });
}

export function encodePredictionRows(rows: readonly PredictionRow[]): Uint8Array {
  return encode(columnsOf(PREDICTION_COLUMNS, rows), { 'quotewatch.kind': 'predictions' });
}

/**
 * `event_id` and `event` (the event's JSON, which carries its id) repeat no value when the ids are distinct,
 * as the Worker makes them (each id applied once): then hyparquet-writer's dictionary sampling would always
 * reject a dictionary for them (it needs at least 10% repeated bytes), so they are declared PLAIN up front and
 * the sampling of ~400-byte strings is skipped: the same bytes, less work. `hints: false` leaves it to the
 * library (tests compare the two).
 */
export function encodeRawRows(rows: readonly RawRow[], options: { hints?: boolean } = {}): Uint8Array {
  let plain = options.hints !== false;
  if (plain) {
    const ids = new Set<string>();
    for (const r of rows) ids.add(r.eventId);
    plain = ids.size === rows.length;
  }
  return encode(columnsOf(RAW_COLUMNS, rows, plain), { 'quotewatch.kind': 'raw' });
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** All rows as objects; INT64 columns as numbers, `ts` as epoch µs. */
export async function readParquetObjects(bytes: Uint8Array): Promise<Record<string, unknown>[]> {
  try {
    const rows = await parquetReadObjects({
      file: toArrayBuffer(bytes),
      compressors,
      parsers: { timestampFromMicroseconds: (us: bigint) => Number(us) },
    });
    for (const r of rows) {
      for (const [k, v] of Object.entries(r)) if (typeof v === 'bigint') r[k] = Number(v);
    }
    return rows;
  } catch (cause) {
    throw new ParquetFormatError('not a readable Parquet file', { cause });
  }
}

/** The file's key-value metadata (e.g. quotewatch.feature_spec). */
export function readParquetMetadata(bytes: Uint8Array): Record<string, string> {
  try {
    const meta = parquetMetadata(toArrayBuffer(bytes));
    return Object.fromEntries((meta.key_value_metadata ?? []).map((kv) => [kv.key, kv.value ?? '']));
  } catch (cause) {
    throw new ParquetFormatError('not a readable Parquet file', { cause });
  }
}

/** Reads a features file back into FeatureRows (values as stored: float32 precision). */
export async function decodeFeatureRows(
  bytes: Uint8Array,
): Promise<{ spec: FeatureSpec; rows: FeatureRow[] }> {
  const specJson = readParquetMetadata(bytes)['quotewatch.feature_spec'];
  if (!specJson) throw new ParquetFormatError('features file lacks quotewatch.feature_spec metadata');
  const spec = JSON.parse(specJson) as FeatureSpec;
  const objects = await readParquetObjects(bytes);
  const rows = objects.map((o) => {
    const row = rowOf(FEATURE_COLUMNS, o);
    row.values = Float64Array.from(spec.features, (f) => o[f.name] as number);
    return row;
  });
  return { spec, rows };
}

export async function decodeLabelRows(bytes: Uint8Array): Promise<LabelRow[]> {
  return (await readParquetObjects(bytes)).map((o) => rowOf(LABEL_COLUMNS, o));
}

export function encodeCorrectionRows(rows: readonly CorrectionRow[]): Uint8Array {
  return encode(columnsOf(CORRECTION_COLUMNS, rows), { 'quotewatch.kind': 'corrections' });
}

export async function decodeCorrectionRows(bytes: Uint8Array): Promise<CorrectionRow[]> {
  return (await readParquetObjects(bytes)).map((o) => rowOf(CORRECTION_COLUMNS, o));
}

export async function decodePredictionRows(bytes: Uint8Array): Promise<PredictionRow[]> {
  return (await readParquetObjects(bytes)).map((o) => {
    const row = rowOf(PREDICTION_COLUMNS, o);
    // A row written without lineage (or a file from before it) reads back without the fields.
    if (!row.verification) for (const f of PREDICTION_LINEAGE_FIELDS) delete row[f];
    return row;
  });
}

export async function decodeRawRows(bytes: Uint8Array): Promise<RawRow[]> {
  return (await readParquetObjects(bytes)).map((o) => rowOf(RAW_COLUMNS, o));
}
