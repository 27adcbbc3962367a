/**
 * The frame meter (src/gateway/frameMeter.ts) reads RFC 6455 frame headers from a byte stream cut anywhere:
 * frames within the limit pass, the first frame over it is reported once with the length it announced.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameMeter } from '../src/gateway/frameMeter.js';

/** One client frame (masked, as clients send them) with `length` payload bytes. */
function frame(length: number, masked = true): Buffer {
  const ext = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  header[0] = 0x81;
  header[1] = (masked ? 0x80 : 0) | (ext === 0 ? length : ext === 2 ? 126 : 127);
  if (ext === 2) header.writeUInt16BE(length, 2);
  if (ext === 8) header.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([header, Buffer.alloc(length, 0x61)]);
}

/** Feeds `bytes` cut at `cuts` (positions), returns what the meter reported. */
function meter(limit: number, bytes: Buffer, cuts: number[]): number[] {
  const reported: number[] = [];
  const m = new FrameMeter(limit, (n) => reported.push(n));
  let from = 0;
  for (const cut of [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)) {
    m.push(bytes.subarray(from, cut));
    from = cut;
  }
  m.push(bytes.subarray(from));
  return reported;
}

describe('FrameMeter', () => {
  it('reports the first frame over the limit once, however the stream is cut', () => {
    const lengths = fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(lengths, fc.array(fc.nat(), { maxLength: 20 }), fc.boolean(), (ls, cuts, masked) => {
        const limit = 32 * 1024;
        const bytes = Buffer.concat(ls.map((l) => frame(l, masked)));
        const over = ls.find((l) => l > limit);
        expect(meter(limit, bytes, cuts)).toEqual(over === undefined ? [] : [over]);
      }),
      { numRuns: 200 },
    );
  });

  it('reads the 16- and 64-bit length forms', () => {
    expect(meter(100, frame(126), [])).toEqual([126]);
    expect(meter(70_000, frame(65_536), [1, 3, 7])).toEqual([]);
    expect(meter(65_535, frame(65_536), [1, 3, 7])).toEqual([65_536]);
  });
});
