/**
 * Props checks shared by the constructs. Every construct validates its props before creating anything, so a bad
 * value fails synth with the construct and the prop named instead of a CloudFormation error at deploy time.
 */

export class InvalidPropError extends Error {
  constructor(
    readonly construct: string,
    readonly prop: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${construct}: invalid prop '${prop}': ${message}`, options);
    this.name = 'InvalidPropError';
  }
}

export function requireInt(construct: string, prop: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidPropError(construct, prop, `expected a whole number in [${min}, ${max}], got ${value}`);
  }
  return value;
}

export function requireNonEmpty<T>(construct: string, prop: string, values: readonly T[]): readonly T[] {
  if (values.length === 0) throw new InvalidPropError(construct, prop, 'expected at least one entry');
  return values;
}
