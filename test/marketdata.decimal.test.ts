import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecimalError,
  fromUnits,
  isZeroDecimal,
  normalizeDecimal,
  toUnits,
} from '../src/marketdata/decimal.js';
import { isoToMicros, microsToIso } from '../src/marketdata/events.js';

describe('decimal normalization', () => {
  it('treats trailing zeros as the same level and zeros as removals', () => {
    expect(normalizeDecimal('8442.65000000')).toBe(normalizeDecimal('8442.65'));
    expect(normalizeDecimal('0.00000000')).toBe('0');
    expect(normalizeDecimal('007.10')).toBe('7.1');
    expect(isZeroDecimal('0.00000000')).toBe(true);
    expect(isZeroDecimal('0')).toBe(true);
    expect(isZeroDecimal('0.00000001')).toBe(false);
  });

  it('rejects what is not a plain decimal', () => {
    for (const bad of ['', '-1', '1e5', 'abc', '1.2.3', ' 1']) {
      expect(() => normalizeDecimal(bad)).toThrow(DecimalError);
    }
    expect(() => toUnits('0.000000001')).toThrow(DecimalError);
  });

  it('converts to exact 1e-8 units and back', () => {
    expect(toUnits('65083.67')).toBe(6_508_367_000_000);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 52 }), (units) => {
        const s = fromUnits(units);
        expect(toUnits(s)).toBe(units);
        expect(normalizeDecimal(s)).toBe(s);
      }),
    );
  });
});

describe('exchange times', () => {
  it('keeps microseconds of nanosecond ISO times', () => {
    expect(isoToMicros('2026-08-09T21:05:48.123456789Z')).toBe(
      Date.UTC(2026, 7, 9, 21, 5, 48) * 1000 + 123456,
    );
    expect(isoToMicros('2026-08-09T21:05:48Z')).toBe(Date.UTC(2026, 7, 9, 21, 5, 48) * 1000);
    expect(() => isoToMicros('yesterday')).toThrow(RangeError);
  });

  it('round-trips µs through ISO', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 4_000_000_000_000_000 }), (us) => {
        expect(isoToMicros(microsToIso(us))).toBe(us);
      }),
    );
  });
});
