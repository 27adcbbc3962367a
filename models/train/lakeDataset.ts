/**
 * The training data as the lake holds it: every features/ and labels/ Parquet object of LAKE_BUCKET, decoded,
 * checked against the code's feature spec and joined into labelled examples (dataset.ts, the pure part).
 */
import { s3Client } from '../../src/aws/clients.js';
import { readResourceNames } from '../../src/config.js';
import type { FeatureSpec } from '../../src/features/types.js';
import { listLakeObjects, readLakeObjects } from '../../src/storage/lakeReader.js';
import { decodeFeatureRows, decodeLabelRows } from '../../src/storage/parquet.js';
import { checkSpecs, DatasetError, type Example, joinLabels } from './dataset.js';

type Env = Record<string, string | undefined>;

export interface LakeExamples {
  /** Labelled examples of the target, in time order. */
  examples: Example[];
  featureObjects: number;
  labelObjects: number;
}

/** Every labelled example of `target` in the lake, in time order, with features checked against `spec`. */
export async function loadLakeExamples(env: Env, target: string, spec: FeatureSpec): Promise<LakeExamples> {
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
  return {
    examples: joinLabels(
      featureFiles.flatMap((f) => f.rows),
      labelFiles.flat(),
      target,
    ),
    featureObjects: featureKeys.length,
    labelObjects: labelKeys.length,
  };
}
