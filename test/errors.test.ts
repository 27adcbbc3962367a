import { describe, expect, it } from 'vitest';
import { ConfigError, readCoreConfig } from '../src/config.js';
import { QuoteWatchError } from '../src/errors.js';
import { MalformedFrameError } from '../src/marketdata/advancedTrade.js';
import { MalformedExchangeFrameError } from '../src/marketdata/exchange.js';
import { LakeWriteError } from '../src/storage/lake.js';

describe('QuoteWatchError', () => {
  it('names an error after its class and keeps the cause, without a constructor in the subclass', () => {
    const cause = new Error('socket hang up');
    const err = new LakeWriteError('cannot write s3://lake/x.parquet', { cause });
    expect(err).toBeInstanceOf(LakeWriteError);
    expect(err).toBeInstanceOf(QuoteWatchError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('LakeWriteError');
    expect(err.message).toBe('cannot write s3://lake/x.parquet');
    expect(err.cause).toBe(cause);
    expect(String(err)).toBe('LakeWriteError: cannot write s3://lake/x.parquet');
    expect(err.stack?.split('\n')[0]).toBe('LakeWriteError: cannot write s3://lake/x.parquet');
    expect(new LakeWriteError('no cause')).not.toHaveProperty('cause');
  });

  it('a subclass of a subclass gets its own name and stays an instance of both', () => {
    const err = new MalformedExchangeFrameError('no type', '{"x":1}');
    expect(err.name).toBe('MalformedExchangeFrameError');
    expect(err).toBeInstanceOf(MalformedFrameError);
    expect(new MalformedFrameError('no type', '{}').name).toBe('MalformedFrameError');
  });

  it('keeps the extra fields of a class with its own constructor (ConfigError)', () => {
    let thrown: unknown;
    try {
      readCoreConfig({ TICK_MS: 'fast' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toMatchObject({ name: 'ConfigError', variable: 'TICK_MS' });
    expect((thrown as Error).message).toMatch(/^TICK_MS: invalid value "fast"/);
  });
});
