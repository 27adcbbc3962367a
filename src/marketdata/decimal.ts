/**
 * Decimal strings from the exchange, normalized so equal values are equal strings, and converted to exact
 * integers of 1e-8 units for the book (never compare floats for equality).
 */

export class DecimalError extends Error {
  constructor(value: unknown) {
    super(`not a decimal number: ${JSON.stringify(value)}`);
    this.name = 'DecimalError';
  }
}

const DECIMAL = /^(\d+)(?:\.(\d*))?$/;

/** "8442.65000000" -> "8442.65", "0.00000000" -> "0", "007.10" -> "7.1". */
export function normalizeDecimal(value: string): string {
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
