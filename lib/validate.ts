/**
 * Props checks shared by the constructs. Every construct validates its props before creating anything, so a bad
 * value fails synth with the construct and the prop named instead of a CloudFormation error at deploy time.
 */

import { ConfigError, type CoreSettings, coreEnv, readCoreConfig } from '../src/config.js';
import { QuoteWatchError } from '../src/errors.js';

export class InvalidPropError extends QuoteWatchError {
  constructor(
    readonly construct: string,
    readonly prop: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${construct}: invalid prop '${prop}': ${message}`, options);
  }
}

export function requireInt(construct: string, prop: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidPropError(construct, prop, `expected a whole number in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/**
 * Runs one of src/config.ts's readers on the values a construct is about to hand a process, so synth rejects
 * what the process would reject at start, with the same message (ConfigError becomes InvalidPropError).
 */
export function requireConfig<T>(construct: string, prop: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) throw new InvalidPropError(construct, prop, err.message, { cause: err });
    throw err;
  }
}

/** Core settings as the processes check them (readCoreConfig), returned as the environment that carries them. */
export function requireCoreSettings(construct: string, core: CoreSettings): ReturnType<typeof coreEnv> {
  const env = coreEnv(core);
  requireConfig(construct, 'core', () => readCoreConfig(env));
  return env;
}
