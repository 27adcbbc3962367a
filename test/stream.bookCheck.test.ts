import { describe, expect, it } from 'vitest';
import { MAX_BOOK_CHECK_DEPTH } from '../src/config.js';
import {
  type BookCheckEvent,
  decodeRecord,
  encodeRecord,
  eventKey,
  RecordFormatError,
} from '../src/stream/record.js';

const check: BookCheckEvent = {
  type: 'book_check',
  product: 'BTC-USD',
  exchUs: 1_700_000_000_123_456,
  recvUs: 1_700_000_000_300_000,
  seq: -1,
  source: 'advanced_trade',
  depth: 50,
  bids: [['100.5', '1']],
  asks: [['101', '0.25']],
};

describe('book_check records', () => {
  it('round-trip through the codec', () => {
    const e = { ...check, id: eventKey(check, 'line-a') };
    expect(decodeRecord(encodeRecord('BTC-USD', [e], 'line-a')).events).toEqual([e]);
  });

  it('fit one Kinesis record inline at the deepest check allowed, with the longest decimals: no claim-check', () => {
    const level = (i: number): [string, string] => [
      `${1_000_000 + i}.12345678`,
      `${100_000_000 + i}.12345678`,
    ];
    const deepest: BookCheckEvent = {
      ...check,
      depth: MAX_BOOK_CHECK_DEPTH,
      bids: Array.from({ length: MAX_BOOK_CHECK_DEPTH }, (_, i) => level(-i)),
      asks: Array.from({ length: MAX_BOOK_CHECK_DEPTH }, (_, i) => level(i + 1)),
    };
    const bytes = encodeRecord('BTC-USD', [{ ...deepest, id: eventKey(deepest, 'line-a') }], 'line-a').length;
    // A tenth of Kinesis' 1 MiB record: inline is cheap, and the producer's limit is never near.
    expect(bytes).toBeLessThan((1024 * 1024) / 10);
    expect(bytes).toBeGreaterThan(MAX_BOOK_CHECK_DEPTH * 2 * 30);
  });

  it('get the same id from any ingestor for the same exchange book, their own for a failed fetch', () => {
    expect(eventKey(check, 'line-a')).toBe(eventKey(check, 'line-b'));
    expect(eventKey({ ...check, bids: [['100.5', '2']] }, 'line-a')).not.toBe(eventKey(check, 'line-a'));
    const failed = { ...check, bids: [], asks: [], unavailable: 'timeout' };
    expect(eventKey(failed, 'line-a', 1)).not.toBe(eventKey(failed, 'line-b', 1));
  });

  it('are refused when a level is not a normalized decimal or the depth is not positive', () => {
    for (const bad of [{ bids: [['100.50', '1']] }, { asks: [['-1', '1']] }, { depth: 0 }]) {
      const e = { ...check, ...bad, id: 'v:x' };
      expect(() => decodeRecord(encodeRecord('BTC-USD', [e as never]))).toThrow(RecordFormatError);
    }
  });
});
