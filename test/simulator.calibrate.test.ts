/**
 * `quotewatch calibrate`: a round trip (record the simulator with a non-default profile as the live archive
 * would, calibrate on the recording, and the fitted profile's simulation matches the recording), the 25 s
 * real capture (runs, says what it is too short for), and bad input (exit code 2 with a clear message).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { STAT_DEFS, type StatKey } from '../src/marketdata/stats.js';
import {
  CalibrateError,
  type CalibrationResult,
  calibrate,
  calibrateCommand,
} from '../src/simulator/calibrate.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { defaultProfile, loadProfile, type Profile } from '../src/simulator/profile.js';
import { describeCapture } from './support/captures.js';
import { recordSimulation } from './support/simulator.js';

const dir = mkdtempSync(join(tmpdir(), 'qw-calibrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A market unlike the default: busier BTC with a 4-tick spread, wider ETH, thinner tails, weaker factor. */
function otherProfile(): Profile {
  const p = structuredClone(defaultProfile());
  Object.assign(p.products['BTC-USD']!, {
    volBps: 1.0,
    halfSpreadTicks: 2,
    updateEventsPerSecond: 9,
    tradesPerSecond: 2.5,
    factorLoading: 0.8,
    moveSizeTail: 0.6,
  });
  Object.assign(p.products['ETH-USD']!, {
    volBps: 1.6,
    halfSpreadTicks: 5,
    movesPerSecond: 0.4,
    factorLoading: 0.8,
    moveSizeTail: 0.6,
  });
  return p;
}

/**
 * What the fitted profile must reproduce: every statistic both the recording and the simulation measure, within
 * ±20%, and the correlations within ±0.1 — autocorrelations and the OFI regressions' R², the square of the
 * correlation between order-flow imbalance and the mid change (the next second's is near 0, where a ratio means
 * nothing), compared on the correlation scale.
 */
const CORRELATIONS = new Set<StatKey>(['abs_ret_acf_lag1', 'rv5m_acf_lag12', 'trade_sign_acf_lag1']);
const SQUARED_CORRELATIONS = new Set<StatKey>(['ofi_r2_same_s', 'ofi_r2_next_s']);
function matches(key: StatKey, recorded: number, simulated: number): boolean {
  if (CORRELATIONS.has(key)) return Math.abs(simulated - recorded) <= 0.1;
  if (SQUARED_CORRELATIONS.has(key)) return Math.abs(Math.sqrt(simulated) - Math.sqrt(recorded)) <= 0.1;
  return simulated >= recorded * 0.8 && simulated <= recorded * 1.2;
}

describe('calibrate: round trip on a recording of the simulator', () => {
  const original = otherProfile();
  const path = join(dir, 'sim.ndjson.gz');
  let result: CalibrationResult;

  it('records 40 simulated minutes and recovers a profile that reproduces them', async () => {
    await recordSimulation(path, productSpecs(['BTC-USD', 'ETH-USD'], original), 11, 40 * 60);
    // The recording's seed: the search then compares like with like (common random numbers), so what is left
    // is the fit, not two different 40-minute draws of a heavy-tailed market.
    result = await calibrate({ path, seed: 11 });
    expect(result.seconds).toBeGreaterThanOrEqual(40 * 60 - 2);
    const off: string[] = [];
    let compared = 0;
    for (const rec of result.recorded.products) {
      const sim = result.simulated.products.find((p) => p.product === rec.product)!;
      for (const { key } of STAT_DEFS) {
        const [r, s] = [rec.figures[key], sim.figures[key]];
        if (r === undefined || s === undefined) continue;
        compared++;
        if (!matches(key, r, s)) off.push(`${rec.product} ${key}: recording ${r}, simulated ${s}`);
      }
    }
    // 40 minutes measure all but the statistics that need hours (hourly spread, 5-min vol over 24 h).
    expect(compared).toBeGreaterThanOrEqual(2 * 20);
    expect(off).toEqual([]);
    const [rec, sim] = [result.recorded.pairs[0]!, result.simulated.pairs[0]!];
    expect(Math.abs(sim.corr1m! - rec.corr1m!)).toBeLessThan(0.1);
  }, 120_000);

  it('the profile it recovers is near the original where the recording pins it down', () => {
    for (const product of ['BTC-USD', 'ETH-USD']) {
      const got = result.profile.products[product]!;
      const want = original.products[product]!;
      expect(got.tick).toBe(0.01);
      expect(got.halfSpreadTicks, product).toBeCloseTo(want.halfSpreadTicks, 0);
      expect(Math.abs(got.factorLoading - want.factorLoading), product).toBeLessThan(0.1);
      for (const key of ['volBps', 'updateEventsPerSecond', 'tradesPerSecond'] as const) {
        expect(got[key] / want[key], `${product} ${key}`).toBeGreaterThan(0.8);
        expect(got[key] / want[key], `${product} ${key}`).toBeLessThan(1.25);
      }
    }
  });

  it('writes a profile the simulator loads (--out), and prints both columns', async () => {
    const short = join(dir, 'short.ndjson.gz');
    await recordSimulation(short, productSpecs(['SOL-USD'], original), 4, 6 * 60);
    const out = join(dir, 'fitted.json');
    const lines: string[] = [];
    const code = await calibrateCommand({ path: short, out, seed: 3, format: 'auto' }, (l) => lines.push(l));
    expect(code).toBe(0);
    expect(Object.keys(loadProfile(out).products)).toEqual(['SOL-USD']);
    const text = lines.join('\n');
    expect(text).toMatch(/statistic\s+recording\s+simulated/);
    for (const def of STAT_DEFS.slice(0, 5)) expect(text).toContain(def.label);
    expect(text).toContain(`profile written to ${out}`);
    expect(text).toMatch(/one product: no cross-product correlation/);
  }, 120_000);
});

describeCapture('advancedTrade', 'calibrate on the 25 s Advanced Trade capture', (c) => {
  it('runs, fits what 25 s show and says which statistics the recording is too short for', async () => {
    const result = await calibrate({ path: c.path, rounds: 2 });
    const btc = result.recorded.products.find((p) => p.product === 'BTC-USD')!;
    const eth = result.recorded.products.find((p) => p.product === 'ETH-USD')!;
    expect(btc.figures.spread_median_ticks).toBe(1);
    expect(eth.figures.spread_median_ticks).toBeGreaterThanOrEqual(5); // README table: 7 on 100 ms samples
    expect(eth.figures.spread_median_ticks).toBeLessThanOrEqual(8);
    for (const key of ['ret1s_sd_bps', 'kurtosis_1s', 'ofi_r2_same_s', 'hourly_sd_max_over_min'] as const)
      expect(btc.missing[key]).toMatch(/recording too short: needs .*, has 2\d s/);
    expect(result.recorded.pairs[0]!.note).toMatch(/too short/);
    // The simulation runs at least 10 minutes and matches the microstructure the capture does show.
    expect(result.seconds).toBe(600);
    const sim = result.simulated.products.find((p) => p.product === 'ETH-USD')!;
    expect(sim.figures.spread_median_ticks).toBe(eth.figures.spread_median_ticks);
    expect(sim.figures.update_events_per_s! / eth.figures.update_events_per_s!).toBeGreaterThan(0.8);
    expect(sim.figures.update_events_per_s! / eth.figures.update_events_per_s!).toBeLessThan(1.2);
  }, 60_000);
});

describe('calibrate: bad input', () => {
  const run = async (path: string) => {
    const errors: string[] = [];
    const spy = vi.spyOn(console, 'error').mockImplementation((line: string) => void errors.push(line));
    try {
      return {
        code: await calibrateCommand({ path, format: 'auto', seed: 1 }, () => {}),
        error: errors.join('\n'),
      };
    } finally {
      spy.mockRestore();
    }
  };

  it('a missing file: exit code 2 and a message naming it', async () => {
    const { code, error } = await run(join(dir, 'nope.ndjson'));
    expect(code).toBe(2);
    expect(error).toMatch(/cannot read the recording .*nope\.ndjson/);
  });

  it('a file that is not a recording, or holds no market data: exit code 2', async () => {
    const junk = join(dir, 'junk.txt');
    writeFileSync(junk, 'hello\nworld\n');
    expect((await run(junk)).error).toMatch(/cannot read the recording .*junk\.txt.*neither JSON/);
    const empty = join(dir, 'empty.ndjson');
    writeFileSync(
      empty,
      `${JSON.stringify({ recvUs: 1, conn: 'c', frame: '{"channel":"subscriptions","events":[]}' })}\n`,
    );
    const { code, error } = await run(empty);
    expect(code).toBe(2);
    expect(error).toMatch(/no market events/);
    await expect(calibrate({ path: empty })).rejects.toBeInstanceOf(CalibrateError);
  });

  it('the CLI wires it: usage errors and a missing file exit with 2, naming what is wrong', () => {
    const cli = join(import.meta.dirname, '../bin/quotewatch.ts');
    const quotewatch = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', cli, 'calibrate', ...args], { encoding: 'utf8' });
    for (const [args, message] of [
      [[join(dir, 'missing.gz')], /cannot read the recording/],
      [[], /missing RECORDING \(usage: quotewatch calibrate RECORDING/],
      [['a', '--format', 'csv'], /--format: expected one of auto, /],
      [['a', '--seed=-1'], /--seed: expected a whole number/],
      [['a', '--seed', '1.5'], /--seed: expected a whole number/],
    ] as const) {
      const r = quotewatch(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });
});
