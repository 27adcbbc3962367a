/**
 * Deterministic L2-regularized logistic regression, trained by Newton's method (IRLS).
 *
 * Features are standardized inside the model (mean/std from the training rows) so the same numbers can be
 * baked into the ONNX graph (Sub -> Div -> MatMul -> Add -> Sigmoid) and the caller never standardizes by hand.
 * No randomness anywhere: same data in, same model out.
 */
import { QuoteWatchError } from '../../src/errors.js';

export interface LogisticModel {
  weights: number[];
  bias: number;
  /** Per-feature training mean, subtracted before the weights apply. */
  mean: number[];
  /** Per-feature training standard deviation (1 where a feature is constant), divided after the mean. */
  std: number[];
  /**
   * Inputs on a log scale (focused.ts): where floor[j] > 0 the input is ln(max(x, 0) + floor[j]) before the mean
   * and std apply; 0 leaves it as it is. Absent: every input as it is.
   */
  logFloor?: number[];
}

export interface TrainOptions {
  /** Maximum Newton iterations (each one a full pass over the data). Default 50; usually converges in < 10. */
  epochs?: number;
  /** Step size multiplier for each Newton step (1 = full Newton step). Default 1. */
  learningRate?: number;
  /** L2 penalty on the weights (not the bias), per training row: loss = mean logloss + l2/2 * |w|^2. Default 1e-3. */
  l2?: number;
}

export class TrainingDataError extends QuoteWatchError {}

/** A tiny ridge on the bias keeps the Hessian invertible when every label is the same. */
const BIAS_RIDGE = 1e-9;
const CONVERGED = 1e-10;

export function sigmoid(z: number): number {
  // Split by sign so exp never overflows.
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

export function trainLogisticRegression(X: number[][], y: number[], opts: TrainOptions = {}): LogisticModel {
  const epochs = opts.epochs ?? 50;
  const learningRate = opts.learningRate ?? 1;
  const l2 = opts.l2 ?? 1e-3;
  validate(X, y, l2);

  const n = X.length;
  const f = X[0]!.length;
  const { mean, std, constant } = standardization(X);
  // Constant columns are exactly zero after centering; rounding noise must not become a huge weight.
  const Z = X.map((row) => row.map((v, j) => (constant[j] ? 0 : (v - mean[j]!) / std[j]!)));

  // theta = [w_0 .. w_{f-1}, bias]
  let theta = new Array<number>(f + 1).fill(0);
  let loss = objective(Z, y, theta, l2);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const { gradient, hessian } = derivatives(Z, y, theta, l2);
    const step = solveSymmetric(hessian, gradient);
    // Damped Newton: halve the step until the objective does not increase (it is convex, so this terminates).
    let scale = learningRate;
    let next = theta;
    let nextLoss = loss;
    for (let tries = 0; tries < 30; tries++) {
      next = theta.map((t, k) => t - scale * step[k]!);
      nextLoss = objective(Z, y, next, l2);
      if (nextLoss <= loss) break;
      scale /= 2;
    }
    if (!(nextLoss <= loss)) break;
    const improvement = loss - nextLoss;
    theta = next;
    loss = nextLoss;
    if (improvement < CONVERGED * Math.max(1, n)) break;
  }

  return { weights: theta.slice(0, f), bias: theta[f]!, mean, std };
}

/** An input as a model with a log floor reads it (LogisticModel.logFloor): ln(max(x, 0) + floor), or x for floor 0. */
export function onLogScale(x: number, floor: number): number {
  return floor > 0 ? Math.log(Math.max(x, 0) + floor) : x;
}

/** The log-odds of one raw (unstandardized) feature row. */
export function logisticMargin(model: LogisticModel, x: ArrayLike<number>): number {
  if (x.length !== model.weights.length) {
    throw new RangeError(`expected ${model.weights.length} features, got ${x.length}`);
  }
  let z = model.bias;
  const floor = model.logFloor;
  for (let j = 0; j < x.length; j++) {
    const v = onLogScale(x[j]!, floor?.[j] ?? 0);
    z += model.weights[j]! * ((v - model.mean[j]!) / model.std[j]!);
  }
  return z;
}

/** Probability of the positive class for one raw (unstandardized) feature row. */
export function predictLogistic(model: LogisticModel, x: ArrayLike<number>): number {
  return sigmoid(logisticMargin(model, x));
}

function validate(X: number[][], y: number[], l2: number): void {
  if (X.length === 0) throw new TrainingDataError('no training rows');
  if (X.length !== y.length)
    throw new TrainingDataError(`X has ${X.length} rows but y has ${y.length} labels`);
  if (!(l2 >= 0)) throw new TrainingDataError(`l2 must be >= 0, got ${l2}`);
  const f = X[0]!.length;
  X.forEach((row, i) => {
    if (row.length !== f) throw new TrainingDataError(`row ${i} has ${row.length} features, expected ${f}`);
    row.forEach((v, j) => {
      if (!Number.isFinite(v)) throw new TrainingDataError(`row ${i} feature ${j} is not finite (${v})`);
    });
  });
  y.forEach((label, i) => {
    if (label !== 0 && label !== 1) throw new TrainingDataError(`label ${i} must be 0 or 1, got ${label}`);
  });
}

function standardization(X: number[][]): { mean: number[]; std: number[]; constant: boolean[] } {
  const n = X.length;
  const f = X[0]!.length;
  const sum = new Array<number>(f).fill(0);
  for (const row of X) for (let j = 0; j < f; j++) sum[j]! += row[j]!;
  const mean = sum.map((s) => s / n);
  const squares = new Array<number>(f).fill(0);
  for (const row of X) for (let j = 0; j < f; j++) squares[j]! += (row[j]! - mean[j]!) ** 2;
  // A constant feature carries no signal; std 1 keeps the division harmless.
  const std = squares.map((s, j) => {
    const sd = Math.sqrt(s / n);
    return sd > 1e-12 * Math.max(1, Math.abs(mean[j]!)) ? sd : 1;
  });
  const constant = squares.map((s, j) => Math.sqrt(s / n) <= 1e-12 * Math.max(1, Math.abs(mean[j]!)));
  return { mean, std, constant };
}

function linear(row: number[], theta: number[]): number {
  const f = row.length;
  let z = theta[f]!;
  for (let j = 0; j < f; j++) z += theta[j]! * row[j]!;
  return z;
}

/** Mean log loss plus the L2 penalty, computed stably from the logit. */
function objective(Z: number[][], y: number[], theta: number[], l2: number): number {
  let total = 0;
  for (let i = 0; i < Z.length; i++) {
    const z = linear(Z[i]!, theta);
    // log(1 + e^z) - y*z, without overflow
    total += Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))) - y[i]! * z;
  }
  const f = theta.length - 1;
  let penalty = BIAS_RIDGE * theta[f]! ** 2;
  for (let j = 0; j < f; j++) penalty += l2 * theta[j]! ** 2;
  return total / Z.length + penalty / 2;
}

function derivatives(Z: number[][], y: number[], theta: number[], l2: number) {
  const n = Z.length;
  const d = theta.length;
  const gradient = new Array<number>(d).fill(0);
  const hessian = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (let i = 0; i < n; i++) {
    const row = Z[i]!;
    const p = sigmoid(linear(row, theta));
    const r = (p - y[i]!) / n;
    const w = (p * (1 - p)) / n;
    for (let a = 0; a < d; a++) {
      const xa = a < d - 1 ? row[a]! : 1;
      gradient[a]! += r * xa;
      for (let b = 0; b <= a; b++) {
        const xb = b < d - 1 ? row[b]! : 1;
        hessian[a]![b]! += w * xa * xb;
      }
    }
  }
  for (let a = 0; a < d; a++) {
    const ridge = a < d - 1 ? l2 : BIAS_RIDGE;
    gradient[a]! += ridge * theta[a]!;
    hessian[a]![a]! += ridge;
    for (let b = 0; b < a; b++) hessian[b]![a] = hessian[a]![b]!;
  }
  return { gradient, hessian };
}

/** Solves H x = g by Gaussian elimination with partial pivoting (H is small: features + 1). */
function solveSymmetric(H: number[][], g: number[]): number[] {
  const d = g.length;
  const A = H.map((row, i) => [...row, g[i]!]);
  for (let col = 0; col < d; col++) {
    let pivot = col;
    for (let r = col + 1; r < d; r++) if (Math.abs(A[r]![col]!) > Math.abs(A[pivot]![col]!)) pivot = r;
    [A[col], A[pivot]] = [A[pivot]!, A[col]!];
    const p = A[col]![col]!;
    if (Math.abs(p) < 1e-300) continue; // singular direction: leave that coordinate unchanged
    for (let r = 0; r < d; r++) {
      if (r === col) continue;
      const factor = A[r]![col]! / p;
      if (factor === 0) continue;
      for (let c = col; c <= d; c++) A[r]![c]! -= factor * A[col]![c]!;
    }
  }
  return A.map((row, i) => (Math.abs(row[i]!) < 1e-300 ? 0 : row[d]! / row[i]!));
}
