import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  readCoreConfig,
  readFeedUrl,
  readResourceNames,
  readWorkerConfig,
} from '../src/config.js';

describe('config', () => {
  it('has the design defaults', () => {
    expect(readCoreConfig({})).toEqual({
      symbols: ['BTC-USD', 'ETH-USD'],
      tickMs: 100,
      deltaMs: 500,
      modelUri: 's3://quotewatch-models/registry',
    });
    expect(readResourceNames({}).streamName).toBe('quotewatch-market');
  });

  it('parses SYMBOLS lists with spaces', () => {
    expect(readCoreConfig({ SYMBOLS: ' SOL-USD , BTC-EUR' }).symbols).toEqual(['SOL-USD', 'BTC-EUR']);
  });

  it.each([
    ['SYMBOLS', 'btc usd'],
    ['SYMBOLS', ','],
    ['TICK_MS', 'fast'],
    ['TICK_MS', '2.5'],
    ['TICK_MS', '0'],
    ['DELTA_MS', '-500'],
    ['MODEL_URI', 'http://example.com/model'],
  ])('rejects %s=%s with an error naming the variable', (variable, value) => {
    const read = () => readCoreConfig({ [variable]: value });
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(new RegExp(`^${variable}: invalid value`));
  });

  it('rejects a feed URL that is not a WebSocket URL', () => {
    expect(() => readFeedUrl({ FEED_URL: 'http://x' })).toThrow(/^FEED_URL: /);
  });

  it('accepts every whole TICK_MS in range and round-trips it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 60_000 }), (ms) => {
        expect(readCoreConfig({ TICK_MS: String(ms) }).tickMs).toBe(ms);
      }),
    );
  });
});

describe('worker config', () => {
  it('defaults to one-minute lake objects for the tick', () => {
    expect(readWorkerConfig({}).lakeObjectTicks).toBe(600);
    expect(readWorkerConfig({ TICK_MS: '250' }).lakeObjectTicks).toBe(240);
  });

  it('rejects object sizes that do not divide the hour, naming the variable', () => {
    expect(() => readWorkerConfig({ LAKE_OBJECT_TICKS: '7' })).toThrow(
      /^LAKE_OBJECT_TICKS: 7 ticks of 100 ms/,
    );
    expect(readWorkerConfig({ LAKE_OBJECT_TICKS: '20' }).lakeObjectTicks).toBe(20);
  });
});
