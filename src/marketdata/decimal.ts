/**
 * Decimal strings from the exchange, normalized so equal values are equal strings, and converted to exact
 * integers of 1e-8 units for the book (never compare floats for equality).
 */
import { QuoteWatchError } from '../errors.js';

export class DecimalError extends QuoteWatchError {
  constructor(value: unknown) {
    super(`not a decimal number: ${JSON.stringify(value)}`);
  }
}

const DECIMAL = /^(\d+)(?:\.(\d*))?$/;

const ZERO = 48;
const NINE = 57;
const DOT = 46;

/**
 * "8442.65000000" -> "8442.65", "0.00000000" -> "0", "007.10" -> "7.1".
 * Called for every level of every book frame (~92k times for one BTC-USD snapshot), so it scans the
 * characters once instead of running regexes, and returns the input itself when it is already normalized
 * (the common case). normalizeDecimalReference is the readable definition it must agree with.
 */
export function normalizeDecimal(value: string): string {
  const n = value.length;
  let dot = -1;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c >= ZERO && c <= NINE) continue;
    // One dot, after at least one digit.
    if (c === DOT && dot === -1 && i > 0) dot = i;
    else throw new DecimalError(value);
  }
  if (n === 0) throw new DecimalError(value);
  const intEnd = dot === -1 ? n : dot;
  let start = 0;
  while (start < intEnd - 1 && value.charCodeAt(start) === ZERO) start++;
  let end = n;
  if (dot !== -1) {
    while (end > dot + 1 && value.charCodeAt(end - 1) === ZERO) end--;
    if (end === dot + 1) end = dot; // no fraction left: drop the dot too
  }
  return start === 0 && end === n ? value : value.slice(start, end);
}

/** The regex definition of normalizeDecimal (kept for the property test that the fast scan equals it). */
export function normalizeDecimalReference(value: string): string {
  const m = DECIMAL.exec(value);
  if (!m) throw new DecimalError(value);
  const int = m[1]!.replace(/^0+(?=\d)/, '');
  const frac = (m[2] ?? '').replace(/0+$/, '');
  return frac ? `${int}.${frac}` : int;
}

/** True when the decimal string is zero ("0", "0.00000000"). */
export function isZeroDecimal(value: string): boolean {
  return /^0*(?:\.0*)?$/.test(value) && value.length > 0 && value !== '.';
}

export const UNITS_PER_ONE = 100_000_000;

/**
 * Exact integer in 1e-8 units: "65083.67" -> 6508367000000. Throws for more than 8 decimals or values
 * beyond 2^53 units (90 million), which no Coinbase price or size needs.
 */
export function toUnits(value: string): number {
  const m = DECIMAL.exec(value);
  if (!m) throw new DecimalError(value);
  const frac = (m[2] ?? '').replace(/0+$/, '');
  if (frac.length > 8) throw new DecimalError(value);
  const units = Number(m[1]) * UNITS_PER_ONE + Number(frac.padEnd(8, '0'));
  if (!Number.isSafeInteger(units)) throw new DecimalError(value);
  return units;
}

/** Inverse of toUnits, normalized. */
export function fromUnits(units: number): string {
  const int = Math.floor(units / UNITS_PER_ONE);
  const frac = String(units - int * UNITS_PER_ONE)
    .padStart(8, '0')
    .replace(/0+$/, '');
  return frac ? `${int}.${frac}` : String(int);
}
