/**
 * Decimal string -> integer 1e-8 units, on the book's hot path. Same grammar and results as toUnits
 * (src/marketdata/decimal.ts) but one pass over the characters with no regex and no allocation: on the
 * real capture the conversion cost more than the book update itself.
 *
 * Values above 2^53 units (about 90 million) are still exact whenever the double holds the integer exactly,
 * which is true of every multiple of 64 units there; a price on a 0.01 grid (10^6 units) qualifies up to
 * ~5.7 billion. Only a huge value with sub-grid decimals (e.g. "123816365.00000001") cannot be held.
 */

import { fromUnits } from '../marketdata/decimal.js';

/** Well-formed, but its exact unit count is not a double. */
export const NOT_EXACT = -1;

const UNITS_PER_ONE = 100_000_000;
const SCALE = [1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1];
const ZERO = 48;
const DOT = 46;

/**
 * Exact units of a decimal string ("65083.67" -> 6508367000000), NaN when malformed (the grammar is
 * digits, optionally "." and digits; at most 8 significant decimals), NOT_EXACT when well-formed but not
 * exactly representable.
 */
export function parseUnits(s: string): number {
  const n = s.length;
  let i = 0;
  let int = 0;
  for (; i < n; i++) {
    const d = s.charCodeAt(i) - ZERO;
    if (d < 0 || d > 9) break;
    int = int * 10 + d;
  }
  if (i === 0) return Number.NaN;
  const intEnd = i;
  let frac = 0;
  let fracDigits = 0;
  if (i < n) {
    if (s.charCodeAt(i) !== DOT) return Number.NaN;
    i++;
    // Digits past the eighth must be zeros ("0.100000000000" is fine, "0.000000001" is not).
    for (; i < n; i++) {
      const d = s.charCodeAt(i) - ZERO;
      if (d < 0 || d > 9) return Number.NaN;
      if (fracDigits < 8) {
        frac = frac * 10 + d;
        fracDigits++;
      } else if (d !== 0) {
        return Number.NaN;
      }
    }
  }
  // 15 digits or fewer: `int` was accumulated exactly, and so is the product while it stays safe.
  if (intEnd <= 15) {
    const units = int * UNITS_PER_ONE + frac * SCALE[fracDigits]!;
    if (units <= Number.MAX_SAFE_INTEGER) return units;
  }
  return exactOrNot(s, intEnd, frac * SCALE[fracDigits]!);
}

/** Slow path for values past 2^53 units: exact BigInt arithmetic decides whether the double is exact. */
function exactOrNot(s: string, intEnd: number, fracUnits: number): number {
  const exact = BigInt(s.slice(0, intEnd)) * BigInt(UNITS_PER_ONE) + BigInt(fracUnits);
  const asDouble = Number(exact);
  return BigInt(asDouble) === exact ? asDouble : NOT_EXACT;
}

/** The double nearest to a well-formed value's unit count (for values parseUnits calls NOT_EXACT). */
export function nearestUnits(s: string): number {
  const dot = s.indexOf('.');
  const int = dot === -1 ? s : s.slice(0, dot);
  const frac = dot === -1 ? '' : s.slice(dot + 1, dot + 9);
  return Number(BigInt(int) * BigInt(UNITS_PER_ONE) + BigInt(frac.padEnd(8, '0') || '0'));
}

/** Units as a normalized decimal string, exact beyond 2^53 too (BigInt there, where division would round). */
export function formatUnits(units: number): string {
  if (units <= Number.MAX_SAFE_INTEGER) return fromUnits(units);
  const big = BigInt(units);
  const one = BigInt(UNITS_PER_ONE);
  const frac = String(big % one)
    .padStart(8, '0')
    .replace(/0+$/, '');
  return frac ? `${big / one}.${frac}` : String(big / one);
}
