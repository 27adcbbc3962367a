/** `npm run soak`'s options (bench/soak.ts): the run is long, so a bad option must fail before anything starts. */
import { describe, expect, it } from 'vitest';
import { soakOptions } from '../bench/soak.js';

describe('npm run soak -- --minutes N --products P', () => {
  it('defaults to 4 minutes of 20 products and reads both among the runner own --only', () => {
    expect(soakOptions(['--only', 'soak'])).toEqual({ minutes: 4, products: 20 });
    expect(soakOptions(['--only', 'soak', '--minutes', '30', '--products', '8'])).toEqual({
      minutes: 30,
      products: 8,
    });
  });

  it('refuses what it cannot run, naming the option', () => {
    expect(() => soakOptions(['--minutes', '1'])).toThrow(/--minutes/);
    expect(() => soakOptions(['--minutes', 'ten'])).toThrow(/--minutes/);
    expect(() => soakOptions(['--products', '21'])).toThrow(
      /--products: expected a whole number from 2 to 20/,
    );
    expect(() => soakOptions(['--products', '2.5'])).toThrow(/--products/);
    expect(() => soakOptions(['--hours', '2'])).toThrow(/hours/);
  });
});
