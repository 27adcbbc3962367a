/** The handlers' short caches (src/api/cache.ts), on a hand-moved clock. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cached, cachedByKey } from '../src/api/cache.js';

function counter() {
  let loads = 0;
  let fail = false;
  return {
    load: async (key = '') => {
      loads++;
      if (fail) throw new Error(`load ${key} failed`);
      return `${key}#${loads}`;
    },
    get loads() {
      return loads;
    },
    set fail(v: boolean) {
      fail = v;
    },
  };
}

describe('cached', () => {
  it('serves one load for the TTL, shared by concurrent callers, then loads again', async () => {
    let t = 0;
    const c = counter();
    const get = cached(
      100,
      () => c.load(),
      () => t,
    );
    expect(await Promise.all([get(), get(), get()])).toEqual(['#1', '#1', '#1']);
    t = 99;
    expect(await get()).toBe('#1');
    t = 100;
    expect(await get()).toBe('#2');
    expect(c.loads).toBe(2);
  });

  it('never keeps a failure', async () => {
    let t = 0;
    const c = counter();
    const get = cached(
      1000,
      () => c.load(),
      () => t,
    );
    c.fail = true;
    await expect(get()).rejects.toThrow(/failed/);
    c.fail = false;
    t = 1;
    expect(await get()).toBe('#2');
  });

  it('with a TTL of 0 loads every time', async () => {
    const c = counter();
    const get = cached(
      0,
      () => c.load(),
      () => 0,
    );
    await Promise.all([get(), get()]);
    expect(c.loads).toBe(2);
  });

  it('loads exactly once per TTL window touched, whatever the call times (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 40 }),
        async (ttl, steps) => {
          let t = 0;
          let expected = 0;
          let windowStart = Number.NEGATIVE_INFINITY;
          const c = counter();
          const get = cached(
            ttl,
            () => c.load(),
            () => t,
          );
          for (const step of steps) {
            t += step;
            if (t - windowStart >= ttl) {
              expected++;
              windowStart = t;
            }
            expect(await get()).toBe(`#${expected}`);
          }
          expect(c.loads).toBe(expected);
        },
      ),
    );
  });
});

describe('cachedByKey', () => {
  it('keeps each key on its own clock', async () => {
    let t = 0;
    const c = counter();
    const get = cachedByKey(
      10,
      (k) => c.load(k),
      () => t,
    );
    expect(await get('a')).toBe('a#1');
    t = 5;
    expect(await get('b')).toBe('b#2');
    t = 10;
    expect(await get('a')).toBe('a#3');
    expect(await get('b')).toBe('b#2');
  });
});
