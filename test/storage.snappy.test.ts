/**
 * The lake's SNAPPY compressor must give exactly the bytes of hyparquet-writer's built-in one (the lake's
 * objects must not change with it), and what it writes must decompress to the input.
 */
import fc from 'fast-check';
import { snappyUncompress } from 'hyparquet';
import { snappyCompress as librarySnappy } from 'hyparquet-writer/src/snappy.js';
import { describe, expect, it } from 'vitest';
import { snappyCompress } from '../src/storage/snappy.js';
import { simStream } from '../src/worker/simStream.js';

function roundTrip(input: Uint8Array): Uint8Array {
  const compressed = snappyCompress(input);
  const output = new Uint8Array(input.length);
  snappyUncompress(compressed, output);
  return output;
}

describe('snappyCompress', () => {
  it('equals the library compressor on random bytes, repetitive bytes and sizes around the hash-table steps', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 5000 }),
      // Few distinct symbols: long matches, copies of 64+ bytes, offsets past 2048.
      fc.uint8Array({ min: 0, max: 3, maxLength: 70_000 }),
      fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 3000 }))
        .map(([unit, times]) =>
          Uint8Array.from({ length: unit.length * times }, (_, i) => unit[i % unit.length]!),
        ),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        expect(snappyCompress(input)).toEqual(librarySnappy(input));
        expect(roundTrip(input)).toEqual(input);
      }),
      { numRuns: 120 },
    );
  });

  it('equals the library compressor on a stream JSON of the simulator (the raw zone pages)', () => {
    const [batch] = simStream({ seed: 2, products: ['BTC-USD'], seconds: 10, recordsPerBatch: 100 });
    const text = JSON.stringify(batch!.records);
    const input = new TextEncoder().encode(text);
    expect(input.length).toBeGreaterThan(100_000); // past the largest hash table and 64 KiB offsets
    expect(snappyCompress(input)).toEqual(librarySnappy(input));
    expect(new TextDecoder().decode(roundTrip(input))).toBe(text);
  });

  it('keeps earlier results intact when it reuses its buffers', () => {
    const a = new TextEncoder().encode('abcabcabcabcabcabcabcabc'.repeat(10));
    const first = snappyCompress(a);
    const copy = first.slice();
    snappyCompress(new Uint8Array(100_000).fill(7));
    expect(first).toEqual(copy);
  });
});
