/**
 * Field readers shared by the feed mappers (advancedTrade.ts, exchange.ts). Each check fails with the path of
 * the field, so the error names exactly what was wrong; the mapper decides which error class is thrown.
 */
import { DecimalError, normalizeDecimal } from './decimal.js';
import { isoToMicros } from './events.js';

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The mapper's malformed-frame error class (MalformedFrameError or a subclass). */
export type FrameErrorClass = new (reason: string, frame: string, options?: { cause?: unknown }) => Error;

export class FrameReader {
  constructor(
    readonly frame: string,
    private readonly errorClass: FrameErrorClass,
  ) {}

  fail(reason: string, cause?: unknown): never {
    throw new this.errorClass(reason, this.frame, cause === undefined ? undefined : { cause });
  }

  obj(v: unknown, path: string): Json {
    return isObject(v) ? v : this.fail(`${path} is not an object`);
  }

  arr(v: unknown, path: string): unknown[] {
    return Array.isArray(v) ? v : this.fail(`${path} is not an array`);
  }

  /** `path` is where `o` sits in the frame. */
  str(o: Json, key: string, path = 'frame'): string {
    const v = o[key];
    return typeof v === 'string' ? v : this.fail(`${path}.${key} is not a string`);
  }

  /** An identifier (a product, a trade): a non-empty string of at most 64 characters, as a stream record holds. */
  id(o: Json, key: string, path = 'frame'): string {
    const v = this.str(o, key, path);
    return v.length > 0 && v.length <= 64 ? v : this.fail(`${path}.${key} is not an id (1 to 64 characters)`);
  }

  /** A decimal string, normalized; `path` is the value's own path. */
  decimalValue(v: unknown, path: string): string {
    if (typeof v !== 'string') this.fail(`${path} is not a string`);
    try {
      return normalizeDecimal(v);
    } catch (err) {
      if (err instanceof DecimalError) this.fail(`${path} is not a decimal`, err);
      throw err;
    }
  }

  decimal(o: Json, key: string, path = 'frame'): string {
    return this.decimalValue(o[key], `${path}.${key}`);
  }

  /** Absent or "" reads as undefined. */
  optionalDecimal(o: Json, key: string, path = 'frame'): string | undefined {
    return o[key] === undefined || o[key] === '' ? undefined : this.decimal(o, key, path);
  }

  /** An ISO time as epoch µs. */
  time(o: Json, key: string, path = 'frame'): number {
    const v = this.str(o, key, path);
    try {
      return isoToMicros(v);
    } catch (err) {
      return this.fail(`${path}.${key} is not an ISO time`, err);
    }
  }
}
