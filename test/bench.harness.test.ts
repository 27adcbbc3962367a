import { describe, expect, it } from 'vitest';
import { formatTable, mergeResults, quantile } from '../bench/harness.js';

describe('bench harness', () => {
  it('replaces only the keys a run measured', () => {
    const old = [
      { name: 'a.x', value: 1, unit: 's', context: {} },
      { name: 'b.y', value: 2, unit: 's', context: {} },
    ];
    const merged = mergeResults(old, [{ name: 'b.y', value: 3, unit: 's', context: {} }]);
    expect(merged.map((r) => [r.name, r.value])).toEqual([
      ['a.x', 1],
      ['b.y', 3],
    ]);
  });

  it('interpolates quantiles', () => {
    expect(quantile([4, 1, 3, 2], 0.5)).toBe(2.5);
    expect(quantile([5], 0.99)).toBe(5);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('prints one aligned row per result', () => {
    const out = formatTable([
      { name: 'x', value: 1.23456, unit: 'ms', context: {} },
      { name: 'longer.key', value: 1000, unit: 'ops/s', context: {} },
    ]);
    const lines = out.split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('1.235');
    expect(lines[1]).toContain('1000');
  });
});
