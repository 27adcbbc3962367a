/**
 * Container liveness (src/health/liveness.ts): the file a process writes while its loop progresses and the
 * check ECS runs on it. Time is injected (no wall-clock waits); the files are real.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, readLivenessConfig } from '../src/config.js';
import { checkLiveness, Liveness } from '../src/health/liveness.js';

const dir = mkdtempSync(join(tmpdir(), 'qw-liveness-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function setup(name: string, progress?: () => boolean) {
  let now = 1_000_000;
  const config = { path: join(dir, name), everyMs: 1000, stuckAfterMs: 10_000, maxAgeMs: 3000 };
  const liveness = new Liveness({ ...config, progress, now: () => now });
  return { config, liveness, advance: (ms: number) => (now += ms), now: () => now };
}

describe('liveness', () => {
  it('is healthy while the loop beats, unhealthy once it has not progressed for stuckAfterMs', async () => {
    const { config, liveness, advance, now } = setup('beats');
    liveness.write();
    expect(await checkLiveness(config, now())).toMatchObject({ ok: true });
    advance(9_000);
    liveness.beat();
    advance(9_000);
    liveness.write();
    expect(await checkLiveness(config, now())).toMatchObject({ ok: true });
    advance(2_000); // 11 s since the last beat
    liveness.write();
    const stuck = await checkLiveness(config, now());
    expect(stuck.ok).toBe(false);
    expect(stuck.reason).toMatch(/has not progressed for 11000 ms/);
  });

  it('asks the progress probe on every write (e.g. frames arrived, or reconnecting)', async () => {
    let moving = true;
    const { config, liveness, advance, now } = setup('probe', () => moving);
    for (let i = 0; i < 20; i++) {
      advance(1000);
      liveness.write();
    }
    expect(await checkLiveness(config, now())).toMatchObject({ ok: true });
    moving = false;
    advance(10_500);
    liveness.write();
    expect((await checkLiveness(config, now())).ok).toBe(false);
    moving = true;
    advance(1000);
    liveness.write();
    expect((await checkLiveness(config, now())).ok).toBe(true);
  });

  it('fails a file older than maxAgeMs: a blocked event loop or a dead process writes nothing', async () => {
    const { config, liveness, advance, now } = setup('old');
    liveness.write();
    advance(3_001);
    const verdict = await checkLiveness(config, now());
    expect(verdict.ok).toBe(false);
    expect(verdict.reason).toMatch(/3001 ms old .* hung or gone/);
  });

  it('fails without a file, with a file that is not a record, and after stop()', async () => {
    const { config, liveness, now } = setup('stopped');
    expect((await checkLiveness(config, now())).reason).toMatch(/no readable liveness file/);
    writeFileSync(config.path, '{"hello":1}');
    expect((await checkLiveness(config, now())).reason).toMatch(/not a liveness record/);
    liveness.start();
    expect((await checkLiveness(config, now())).ok).toBe(true);
    liveness.stop();
    expect((await checkLiveness(config, now())).reason).toMatch(/no readable liveness file/);
  });

  it('reads its settings per component, rejecting a max age below the write period', () => {
    expect(readLivenessConfig('worker', {})).toMatchObject({
      path: join(tmpdir(), 'quotewatch-worker.alive'),
      everyMs: 5000,
      stuckAfterMs: 60_000,
      maxAgeMs: 15_000,
    });
    expect(() =>
      readLivenessConfig('ingestor', { LIVENESS_EVERY_MS: '5000', LIVENESS_MAX_AGE_MS: '1000' }),
    ).toThrow(ConfigError);
  });
});
