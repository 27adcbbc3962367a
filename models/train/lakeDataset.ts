/**
 * The training data as the lake holds it: every features/ and labels/ Parquet object of LAKE_BUCKET, decoded,
 * checked against the code's feature spec and joined into labelled examples (dataset.ts, the pure part), less the
 * rows inside a span the corrections/ zone marks suspect (made on a book later found wrong; TRAIN_KEEP_SUSPECT
 * keeps them). vol_spike_60s examples get their spike value as y (targets.ts toSpikeValues: the forward
 * volatility over the row's trailing level). Rows whose windows hold a data gap are left out later, by
 * isCompleteRow (modelRows), as before.
 */
import { s3Client } from '../../src/aws/clients.js';
import { readResourceNames } from '../../src/config.js';
import type { FeatureSpec } from '../../src/features/types.js';
import { listLakeObjects, readLakeObjects, readLakeZone } from '../../src/storage/lakeReader.js';
import {
  type CorrectionRow,
  decodeCorrectionRows,
  decodeFeatureRows,
  decodeLabelRows,
} from '../../src/storage/parquet.js';
import { checkSpecs, DatasetError, type Example, joinLabels } from './dataset.js';
import { toSpikeValues } from './targets.js';

type Env = Record<string, string | undefined>;

export interface LakeExamples {
  /** Labelled examples of the target, whole lake rows in time order; vol_spike_60s: y = the spike value. */
  examples: Example[];
  featureObjects: number;
  labelObjects: number;
  /** Examples inside a span the lake's corrections mark suspect (#17), and whether they were left out. */
  suspect: { rows: number; marks: number; left: 'out' | 'in' };
}

/** Drops (or counts) the examples inside a suspect span of their product. */
export function withoutSuspect(
  examples: readonly Example[],
  marks: readonly CorrectionRow[],
  keep: boolean,
): { examples: Example[]; suspectRows: number } {
  const byProduct = new Map<string, CorrectionRow[]>();
  for (const m of marks) byProduct.set(m.product, [...(byProduct.get(m.product) ?? []), m]);
  const suspect = (e: Example) =>
    byProduct.get(e.product)?.some((m) => e.tsUs >= m.fromUs && e.tsUs < m.toUs) ?? false;
  let suspectRows = 0;
  const out: Example[] = [];
  for (const e of examples) {
    const isSuspect = suspect(e);
    if (isSuspect) suspectRows++;
    if (!isSuspect || keep) out.push(e);
  }
  return { examples: out, suspectRows };
}

/** Every labelled example of `target` in the lake, in time order, with features checked against `spec`. */
export async function loadLakeExamples(
  env: Env,
  target: string,
  spec: FeatureSpec,
  { keepSuspect = false }: { keepSuspect?: boolean } = {},
): Promise<LakeExamples> {
  const bucket = readResourceNames(env).lakeBucket;
  const s3 = s3Client(env);
  const [featureKeys, labelKeys] = await Promise.all([
    listLakeObjects(s3, bucket, 'features'),
    listLakeObjects(s3, bucket, 'labels'),
  ]);
  if (featureKeys.length === 0 || labelKeys.length === 0) {
    throw new DatasetError(
      `s3://${bucket} has ${featureKeys.length} features/ and ${labelKeys.length} labels/ objects; ` +
        'the worker writes them, nothing to train on yet',
    );
  }
  // An object that does not decode is bad data, named by its key.
  const decodeOrExplain = async <T>(key: string, decode: () => Promise<T>): Promise<T> => {
    try {
      return await decode();
    } catch (err) {
      throw new DatasetError(`s3://${bucket}/${key}: ${(err as Error).message}`, { cause: err });
    }
  };
  const featureFiles = await readLakeObjects(s3, bucket, featureKeys, async (bytes, key) => ({
    key,
    ...(await decodeOrExplain(key, () => decodeFeatureRows(bytes))),
  }));
  const labelFiles = await readLakeObjects(s3, bucket, labelKeys, (bytes, key) =>
    decodeOrExplain(key, () => decodeLabelRows(bytes)),
  );
  checkSpecs(featureFiles, spec);
  const marks = await readLakeZone(s3, bucket, 'corrections', (bytes, key) =>
    decodeOrExplain(key, () => decodeCorrectionRows(bytes)),
  );
  const joined = joinLabels(
    featureFiles.flatMap((f) => f.rows),
    labelFiles.flat(),
    target,
  );
  const { examples, suspectRows } = withoutSuspect(joined, marks, keepSuspect);
  return {
    examples: toSpikeValues(examples, target),
    featureObjects: featureKeys.length,
    labelObjects: labelKeys.length,
    suspect: { rows: suspectRows, marks: marks.length, left: keepSuspect ? 'in' : 'out' },
  };
}
