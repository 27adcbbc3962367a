/**
 * Expanding walk-forward folds over time-ordered rows, never shuffled.
 *
 * The span of the rows is cut into K + 1 equal stretches of time; fold k (1..K) tests on stretch k and learns
 * from everything before it:
 *
 *   |-------- train --------|purge|-- validation --|---- embargo ----|---- test (stretch k) ----|
 *
 * - test: the rows of stretch k.
 * - embargo: rows closer than `embargoUs` before the test are used by no one. It is at least the longest
 *   feature window plus the label horizon, so no training or validation row's label — nor any window of the
 *   data behind it — reaches the data the test rows' features are computed from.
 * - validation: the newest `validationFraction` of the remaining time (hyper-parameters, early stopping).
 * - purge: training rows whose label horizon reaches the validation part are dropped (their labels were
 *   computed from validation data). Validation only picks settings, so a horizon is enough there.
 */
import { QuoteWatchError } from '../../src/errors.js';
import { binOf } from '../../src/model/inputs.js';

export class FoldError extends QuoteWatchError {}

export interface FoldOptions {
  folds: number;
  /** Label horizon of the target, µs (labelHorizonUs). */
  horizonUs: number;
  /** Rows used by neither side just before each test stretch, µs; at least longest window + horizon. */
  embargoUs: number;
  /** Share of each fold's learning time used for validation. */
  validationFraction: number;
}

/** Row index ranges [from, to) of one fold, into the time-ordered rows. */
export interface Fold {
  index: number;
  train: [number, number];
  validation: [number, number];
  test: [number, number];
  /** Rows dropped between train and validation (purge) and before the test (embargo). */
  purged: number;
  embargoed: number;
  testWindow: { fromUs: number; toUs: number };
}

/** The first index whose time is >= t (rows sorted by time): the number of times below t. */
const lowerBound = (tsUs: ArrayLike<number>, t: number): number => binOf(tsUs, t);

export function walkForwardFolds(tsUs: ArrayLike<number>, o: FoldOptions): Fold[] {
  if (!(Number.isInteger(o.folds) && o.folds >= 1)) throw new FoldError(`folds must be >= 1, got ${o.folds}`);
  if (!(o.embargoUs >= o.horizonUs)) {
    throw new FoldError(
      `the embargo (${o.embargoUs} µs) must be at least the label horizon (${o.horizonUs} µs)`,
    );
  }
  if (!(o.validationFraction > 0 && o.validationFraction < 1)) {
    throw new FoldError(`validationFraction must be in (0, 1), got ${o.validationFraction}`);
  }
  for (let i = 1; i < tsUs.length; i++) {
    if (tsUs[i]! < tsUs[i - 1]!) throw new FoldError('rows are not in time order');
  }
  if (tsUs.length === 0) throw new FoldError('no rows');
  const first = tsUs[0]!;
  const span = tsUs[tsUs.length - 1]! + 1 - first;
  const stretch = span / (o.folds + 1);
  const folds: Fold[] = [];
  for (let k = 1; k <= o.folds; k++) {
    const testFromUs = first + Math.round(k * stretch);
    const testToUs = k === o.folds ? Number.POSITIVE_INFINITY : first + Math.round((k + 1) * stretch);
    const test: [number, number] = [lowerBound(tsUs, testFromUs), lowerBound(tsUs, testToUs)];
    const learnEnd = lowerBound(tsUs, testFromUs - o.embargoUs);
    const learnToUs = testFromUs - o.embargoUs;
    const validationFromUs = first + Math.round((learnToUs - first) * (1 - o.validationFraction));
    const validation: [number, number] = [lowerBound(tsUs, validationFromUs), learnEnd];
    const train: [number, number] = [0, lowerBound(tsUs, validationFromUs - o.horizonUs)];
    const fold: Fold = {
      index: k,
      train,
      validation,
      test,
      purged: validation[0] - train[1],
      embargoed: test[0] - learnEnd,
      testWindow: { fromUs: tsUs[test[0]] ?? testFromUs, toUs: tsUs[test[1] - 1] ?? testFromUs },
    };
    for (const part of ['train', 'validation', 'test'] as const) {
      if (fold[part][1] <= fold[part][0]) {
        throw new FoldError(
          `fold ${k} of ${o.folds} has no ${part} rows: ${(span / 60e6).toFixed(1)} min of data is too short ` +
            `for ${o.folds} folds with a ${(o.embargoUs / 1e6).toFixed(1)} s embargo`,
        );
      }
    }
    folds.push(fold);
  }
  return folds;
}
