import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeDecimal, normalizeDecimalReference } from '../src/marketdata/decimal.js';

/** The result or the error message, so valid and invalid inputs are compared alike. */
function outcome(f: (v: string) => string, value: string): string {
  try {
    return `ok:${f(value)}`;
  } catch (err) {
    return `error:${(err as Error).name}:${(err as Error).message}`;
  }
}

describe('normalizeDecimal (one-scan fast path) equals the regex reference', () => {
  it('on decimal-looking strings, including leading and trailing zeros', () => {
    const digits = (max: number) => fc.string({ unit: fc.constantFrom(...'0000123456789'), maxLength: max });
    const decimalish = fc
      .tuple(digits(12), fc.constantFrom('', '.', '..'), digits(12))
      .map(([i, dot, f]) => `${i}${dot}${f}`);
    let valid = 0;
    fc.assert(
      fc.property(decimalish, (value) => {
        const want = outcome(normalizeDecimalReference, value);
        if (want.startsWith('ok:')) valid++;
        expect(outcome(normalizeDecimal, value)).toBe(want);
      }),
      { numRuns: 2000 },
    );
    expect(valid).toBeGreaterThan(500);
  });

  it('on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), (value) => {
        expect(outcome(normalizeDecimal, value)).toBe(outcome(normalizeDecimalReference, value));
      }),
      { numRuns: 2000 },
    );
  });

  it('returns an already normalized value itself and normalizes the rest', () => {
    expect(normalizeDecimal('65083.67')).toBe('65083.67');
    expect(normalizeDecimal('0.00583')).toBe('0.00583');
    expect(normalizeDecimal('5.')).toBe('5');
    expect(normalizeDecimal('000')).toBe('0');
    expect(normalizeDecimal('0.10')).toBe('0.1');
  });
});
