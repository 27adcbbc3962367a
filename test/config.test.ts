import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bookRestUrlFor,
  COINBASE_FEEDS,
  COINBASE_REST,
  ConfigError,
  coreEnv,
  DEFAULT_CORE,
  DEFAULT_PORTS,
  DEFAULT_TRAIN_L2,
  DEFAULT_WATERMARK_LATENESS_MS,
  feedKindOf,
  PRODUCT_ID_PATTERN,
  readBookCheckConfig,
  readCoreConfig,
  readFeatureConfig,
  readFeedConfig,
  readFeedUrl,
  readLocalConfig,
  readPromotionConfig,
  readResourceNames,
  readSimulatorConfig,
  readTrainingConfig,
  readWorkerConfig,
} from '../src/config.js';
import { DEFAULT_GAP_LIMIT_MS } from '../src/features/spec.js';
import { defaultComponents } from '../src/local/supervisor.js';

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

describe('shared definitions', () => {
  it('the core defaults are what a process reads when nothing is set', () => {
    const { symbols, tickMs, deltaMs } = readCoreConfig({});
    expect({ symbols, tickMs, deltaMs }).toEqual(DEFAULT_CORE);
  });

  it('coreEnv carries any valid core settings to a process unchanged', () => {
    const product = fc
      .tuple(fc.stringMatching(/^[A-Z0-9]{2,10}$/), fc.stringMatching(/^[A-Z0-9]{2,10}$/))
      .map(([base, quote]) => `${base}-${quote}`);
    fc.assert(
      fc.property(
        fc.array(product, { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 10, max: 60_000 }),
        fc.integer({ min: 10, max: 600_000 }),
        (symbols, tickMs, deltaMs) => {
          const read = readCoreConfig(coreEnv({ symbols, tickMs, deltaMs }));
          expect({ symbols: read.symbols, tickMs: read.tickMs, deltaMs: read.deltaMs }).toEqual({
            symbols,
            tickMs,
            deltaMs,
          });
        },
      ),
    );
  });

  it('one product pattern for SYMBOLS (and the API, which imports it)', () => {
    for (const ok of ['BTC-USD', 'ETH-EUR', 'USDC-USD']) expect(PRODUCT_ID_PATTERN.test(ok), ok).toBe(true);
    for (const bad of ['btc-usd', 'BTCUSD', 'B-USD', 'BTC-USD-X', ' BTC-USD']) {
      expect(PRODUCT_ID_PATTERN.test(bad), bad).toBe(false);
    }
  });

  it('the feeds are told apart by their host, and the local defaults are the fixed ports', () => {
    expect(feedKindOf(COINBASE_FEEDS.advancedTrade)).toBe('advanced');
    expect(feedKindOf(COINBASE_FEEDS.exchange)).toBe('exchange');
    expect(readFeedUrl({})).toBe(`ws://127.0.0.1:${DEFAULT_PORTS.simulator}`);
    expect(readSimulatorConfig({}).port).toBe(DEFAULT_PORTS.simulator);
    expect(readLocalConfig({}).gatewayPort).toBe(DEFAULT_PORTS.gateway);
    expect(new Set(Object.values(DEFAULT_PORTS)).size).toBe(Object.keys(DEFAULT_PORTS).length);
  });

  it('INGESTORS and WORKERS (1 or 2) add the second ingestor and the second worker to what `start` runs', () => {
    expect(readLocalConfig({})).toMatchObject({ ingestors: 1, workers: 1 });
    const two = readLocalConfig({ INGESTORS: '2', WORKERS: '2' });
    expect(defaultComponents(two)).toEqual([
      'simulator',
      'ingestor',
      'ingestor2',
      'worker',
      'worker2',
      'gateway',
    ]);
    expect(defaultComponents({ live: true, workers: 2 })).toEqual([
      'ingestor',
      'worker',
      'worker2',
      'gateway',
    ]);
    expect(() => readLocalConfig({ WORKERS: '3' })).toThrow(/WORKERS: .*must be 1 or 2/);
  });
});

describe('watermark config', () => {
  it('defaults WATERMARK_LATENESS_MS per feed (measured on the captures), takes off and whole ms, refuses the rest', () => {
    expect(readFeedConfig({}).watermarkLatenessMs).toBe(DEFAULT_WATERMARK_LATENESS_MS.advanced);
    expect(readFeedConfig({ FEED_KIND: 'exchange' }).watermarkLatenessMs).toBe(
      DEFAULT_WATERMARK_LATENESS_MS.exchange,
    );
    expect(DEFAULT_WATERMARK_LATENESS_MS.advanced).not.toBe(DEFAULT_WATERMARK_LATENESS_MS.exchange);
    expect(readFeedConfig({ WATERMARK_LATENESS_MS: 'off' }).watermarkLatenessMs).toBeUndefined();
    expect(readFeedConfig({ WATERMARK_LATENESS_MS: '0' }).watermarkLatenessMs).toBe(0);
    expect(readFeedConfig({ WATERMARK_LATENESS_MS: '20' }).watermarkLatenessMs).toBe(20);
    for (const bad of ['-1', '2.5', 'no', '10001'])
      expect(() => readFeedConfig({ WATERMARK_LATENESS_MS: bad })).toThrow(/^WATERMARK_LATENESS_MS: /);
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

describe('book check config', () => {
  it('has the defaults, the REST base derived from the feed', () => {
    expect(readBookCheckConfig({})).toEqual({
      everyS: 60,
      depth: 50,
      jitter: 0.2,
      timeoutMs: 2000,
      restUrl: 'http://127.0.0.1:8765',
      verdictPollMs: 5000,
    });
    expect(readWorkerConfig({}).bookCheckSkewMs).toBe(1000);
    expect(readWorkerConfig({ BOOK_CHECK_SKEW_MS: '250' }).bookCheckSkewMs).toBe(250);
  });

  it('derives BOOK_REST_URL from FEED_URL: the simulator, Advanced Trade, the Exchange feed', () => {
    expect(bookRestUrlFor('ws://127.0.0.1:9000')).toBe('http://127.0.0.1:9000');
    expect(bookRestUrlFor('wss://feed.example.com:444/ws')).toBe('https://feed.example.com:444');
    expect(bookRestUrlFor(COINBASE_FEEDS.advancedTrade)).toBe(COINBASE_REST.advancedTrade);
    expect(bookRestUrlFor(COINBASE_FEEDS.exchange)).toBe(COINBASE_REST.exchange);
    expect(readBookCheckConfig({ FEED_URL: COINBASE_FEEDS.exchange }).restUrl).toBe(
      'https://api.exchange.coinbase.com',
    );
    expect(readBookCheckConfig({ BOOK_REST_URL: 'http://localhost:1' }).restUrl).toBe('http://localhost:1');
  });

  it('takes 0 as off', () => {
    const off = readBookCheckConfig({ BOOK_CHECK_S: '0', BOOK_VERDICT_POLL_MS: '0' });
    expect([off.everyS, off.verdictPollMs]).toEqual([0, 0]);
  });

  it.each([
    ['BOOK_CHECK_S', '-1'],
    ['BOOK_CHECK_S', '1.5'],
    ['BOOK_CHECK_DEPTH', '0'],
    ['BOOK_CHECK_DEPTH', '5000'],
    ['BOOK_CHECK_JITTER', '0.9'],
    ['BOOK_CHECK_JITTER', 'lots'],
    ['BOOK_CHECK_TIMEOUT_MS', '10'],
    ['BOOK_REST_URL', 'ftp://x'],
    ['BOOK_REST_URL', 'https://api.coinbase.com/api/v3'],
    ['BOOK_VERDICT_POLL_MS', '5'],
  ])('rejects %s=%s naming the variable', (variable, value) => {
    expect(() => readBookCheckConfig({ [variable]: value })).toThrow(new RegExp(`^${variable}: `));
  });
});

describe('feature config', () => {
  it('defaults GAP_LIMIT_MS to the pipeline default and reads whole milliseconds', () => {
    expect(readFeatureConfig({}).gapLimitMs).toBe(DEFAULT_GAP_LIMIT_MS);
    expect(readFeatureConfig({ GAP_LIMIT_MS: '2500' }).gapLimitMs).toBe(2500);
    expect(readFeatureConfig({ GAP_LIMIT_MS: '100' }).gapLimitMs).toBe(100);
  });

  it.each(['99', '3600001', '1.5', 'soon', '-5000'])(
    'rejects GAP_LIMIT_MS=%s naming the variable',
    (value) => {
      const read = () => readFeatureConfig({ GAP_LIMIT_MS: value });
      expect(read).toThrow(ConfigError);
      expect(read).toThrow(new RegExp(`^GAP_LIMIT_MS: invalid value "${value.replace('.', '\\.')}"`));
    },
  );
});

describe('training config', () => {
  const base = { CANDIDATE_VERSION: 'v-1' };

  it('has the defaults, with the L2 penalty of the target', () => {
    expect(readTrainingConfig(base)).toEqual({
      target: 'quote_change_500ms',
      set: 'l2',
      candidateVersion: 'v-1',
      trainFraction: 0.7,
      l2: DEFAULT_TRAIN_L2.quote_change_500ms,
      minRows: 100,
      algorithm: 'auto',
      keepSuspect: false,
    });
    expect(readTrainingConfig({ ...base, TRAIN_SET: 'ticker' }).set).toBe('ticker');
    expect(readTrainingConfig({ ...base, TRAIN_ALGORITHM: 'logistic' }).algorithm).toBe('logistic');
    expect(readTrainingConfig({ ...base, TRAIN_ALGORITHM: 'gbdt' }).algorithm).toBe('gbdt');
    expect(readTrainingConfig({ ...base, TRAIN_KEEP_SUSPECT: 'true' }).keepSuspect).toBe(true);
    expect(() => readTrainingConfig({ ...base, TRAIN_KEEP_SUSPECT: 'yes' })).toThrow(/TRAIN_KEEP_SUSPECT/);
    const vol = readTrainingConfig({ ...base, TARGET: 'vol_spike_60s' });
    expect(vol.l2).toBe(DEFAULT_TRAIN_L2.vol_spike_60s);
    expect(vol.l2).not.toBe(DEFAULT_TRAIN_L2.quote_change_500ms);
    // An explicit TRAIN_L2 wins over the target's default.
    expect(readTrainingConfig({ ...base, TARGET: 'vol_spike_60s', TRAIN_L2: '0' }).l2).toBe(0);
  });

  it.each([
    ['TARGET', 'vol_spike'],
    ['CANDIDATE_VERSION', ''],
    ['CANDIDATE_VERSION', 'a/b'],
    ['CANDIDATE_VERSION', 'x'.repeat(129)],
    ['TRAIN_FRACTION', '0'],
    ['TRAIN_FRACTION', '1'],
    ['TRAIN_FRACTION', 'most'],
    ['TRAIN_L2', '-0.1'],
    ['TRAIN_L2', 'strong'],
    ['TRAIN_MIN_ROWS', '1'],
    ['TRAIN_MIN_ROWS', '10.5'],
    ['TRAIN_ALGORITHM', 'forest'],
    ['TRAIN_SET', 'depth'],
    ['TARGET', 'vol_spike_60s.ticker'],
  ])('rejects %s=%s with an error naming the variable', (variable, value) => {
    const read = () => readTrainingConfig({ ...base, [variable]: value });
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(new RegExp(`^${variable}: invalid value`));
  });

  it('requires CANDIDATE_VERSION', () => {
    expect(() => readTrainingConfig({})).toThrow(/^CANDIDATE_VERSION: invalid value undefined \(required\)/);
  });
});

describe('promotion config', () => {
  it('has the defaults the issue names and rejects bad values naming the variable', () => {
    expect(readPromotionConfig({})).toEqual({
      margin: 0,
      maxCalibrationError: 0.05,
      minHorizons: 30,
      minPositives: 20,
      blockS: 60,
      resamples: 1000,
      folds: 5,
    });
    expect(readPromotionConfig({ PROMOTE_MARGIN: '0.01' }).margin).toBe(0.01);
    for (const [variable, value] of [
      ['PROMOTE_MARGIN', '-1'],
      ['PROMOTE_MAX_ECE', '0'],
      ['PROMOTE_MIN_HORIZONS', '2.5'],
      ['PROMOTE_MIN_POSITIVES', '0'],
      ['PROMOTE_BLOCK_S', 'long'],
      ['PROMOTE_RESAMPLES', '10'],
      ['PROMOTE_FOLDS', '0'],
      ['PROMOTE_FOLDS', '2.5'],
    ] as const) {
      expect(() => readPromotionConfig({ [variable]: value })).toThrow(
        new RegExp(`^${variable}: invalid value`),
      );
    }
  });
});
