import { describe, expect, it } from 'vitest';
import { FeaturePipeline } from '../src/features/pipeline.js';
import { FEATURE_NAMES } from '../src/features/spec.js';
import type { LabelRow } from '../src/features/types.js';
import { forwardVolBps, VOL_SPIKE_TARGET, VolSpikeLabeler } from '../src/labels/volSpike.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { midPath, quoteSnapshot, runPipeline } from './support/pipeline.js';

const S0 = 1_700_000_000; // a whole second, epoch s
const T0 = S0 * 1e6;
const P = 'ETH-USD';

/** A fake series: the return of second k is given (NaN = unknown). */
const series = (ret: (k: number) => number) => ({ returnOf: ret });

describe('VolSpikeLabeler', () => {
  it('labels the RMS of the 60 returns from the first second boundary >= t, once they have closed', () => {
    const r = (k: number) => (k % 2 === 0 ? 0.001 : -0.002); // RMS over any 60 consecutive = sqrt(2.5e-6)
    const l = new VolSpikeLabeler(P);
    l.addTick(T0, 1); // on a boundary: seconds S0 .. S0+59
    l.addTick(T0 + 100_000, 2); // inside second S0: seconds S0+1 .. S0+60
    const out: LabelRow[] = [];
    l.resolve(S0 + 59, series(r), out);
    expect(out).toEqual([]); // second S0+59 not closed yet
    l.resolve(S0 + 60, series(r), out);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ product: P, tsUs: T0, target: VOL_SPIKE_TARGET, seq: 1 });
    expect(out[0]!.value).toBeCloseTo(Math.sqrt(2.5e-6) * 1e4, 10);
    l.resolve(S0 + 61, series(r), out);
    expect(out.map((x) => x.tsUs)).toEqual([T0, T0 + 100_000]);
    expect(l.pendingCount).toBe(0);
  });

  it('drops a label whose forward window holds one unknown return (a gap), and only those', () => {
    const gapAt = S0 + 65;
    const r = (k: number) => (k === gapAt ? Number.NaN : 0.001);
    const l = new VolSpikeLabeler(P);
    for (const s of [5, 6, 7]) l.addTick(T0 + s * 1e6);
    const out: LabelRow[] = [];
    l.resolve(S0 + 200, series(r), out);
    // Tick at S0+5 covers S0+5 .. S0+64: clear of the gap; S0+6 covers S0+6 .. S0+65: hits it.
    expect(out.map((x) => (x.tsUs - T0) / 1e6)).toEqual([5]);
    expect(out[0]!.value).toBeCloseTo(10, 10); // 0.001 = 10 bps every second
    expect(l.dropped).toBe(2);
  });

  it('forwardVolBps is exact for a known sequence and NaN across a gap', () => {
    const rets = Array.from({ length: 60 }, (_, i) => (i - 30) * 1e-4);
    const expected = Math.sqrt(rets.reduce((a, x) => a + x * x, 0) / 60) * 1e4;
    expect(
      forwardVolBps(
        series((k) => rets[k - 100] ?? Number.NaN),
        100,
      ),
    ).toBeCloseTo(expected, 10);
    expect(
      forwardVolBps(
        series((k) => rets[k - 100] ?? Number.NaN),
        101,
      ),
    ).toBeNaN();
  });
});

// Through the pipeline: a snapshot every second at j s + 500 ms sets the mid to m(j), so the quote at the
// second boundary j + 1 is m(j) and the 1 s return of second k is ln(m(k) / m(k - 1)) (k >= 1).
const m = midPath;
let seq = 0;
const quoteAt = (j: number, atUs = T0 + j * 1e6 + 500_000) => quoteSnapshot(P, m(j), atUs, ++seq);
const heartbeat = (atUs: number): MarketEvent => ({
  type: 'heartbeat',
  product: P,
  exchUs: atUs,
  recvUs: atUs,
  seq: ++seq,
  counter: seq,
});

/** The mid at second boundary k: that of the last quote before it (quotes at j + 0.5 s, some silent). */
function midAt(k: number, silent: (j: number) => boolean): number {
  let j = k - 1;
  while (silent(j)) j--;
  return m(j);
}

/** The reference: RMS of the 1 s log returns of seconds from .. from+59, bps. */
function expectedVol(from: number, silent: (j: number) => boolean = () => false): number {
  let s = 0;
  for (let k = from; k < from + 60; k++) s += Math.log(midAt(k + 1, silent) / midAt(k, silent)) ** 2;
  return Math.sqrt(s / 60) * 1e4;
}

const run = (events: MarketEvent[]) =>
  runPipeline({ tickMs: 100, deltaMs: 500, topLevels: 0, gapLimitMs: 5000 }, events);
const vol = (labels: LabelRow[]) => labels.filter((l) => l.target === VOL_SPIKE_TARGET);
const sec = (tsUs: number) => (tsUs - T0) / 1e6;

describe('vol_spike_60s through the pipeline', () => {
  const events = Array.from({ length: 131 }, (_, j) => quoteAt(j));
  const { rows, labels } = run(events);
  const labelled = vol(labels);

  it('labels each tick with the forward RV of the seconds from its next boundary (known answers)', () => {
    expect(labelled.length).toBeGreaterThan(600);
    for (const l of labelled) expect(l.value).toBeCloseTo(expectedVol(Math.ceil(sec(l.tsUs))), 9);
    // The first tick (0.6 s) and a tick on a boundary (1.0 s) share the window of seconds 1 .. 60.
    const at = (s: number) => labelled.find((l) => Math.abs(sec(l.tsUs) - s) < 1e-9)!;
    expect(at(0.6).value).toBe(at(1).value);
    expect(at(1.1).value).not.toBe(at(1).value);
  });

  it('emits labels only once the horizon has passed: last label is the tick whose window ends by 130.5 s', () => {
    // Watermark 130.5 s closes seconds up to 129; a tick at t needs seconds up to ceil(t) + 59.
    expect(Math.max(...labelled.map((l) => sec(l.tsUs)))).toBeCloseTo(70, 9);
  });

  it('equals the rv_60s_bps feature of the tick at the end of its window, bit for bit', () => {
    const rv = FEATURE_NAMES.indexOf('rv_60s_bps');
    const byTs = new Map(rows.map((r) => [r.tsUs, r]));
    let checked = 0;
    for (const l of labelled) {
      const end = byTs.get((Math.ceil(sec(l.tsUs)) + 60) * 1e6 + T0);
      if (!end) continue;
      expect(end.values[rv]).toBe(l.value);
      checked++;
    }
    expect(checked).toBe(labelled.length);
  });

  it('the horizon edge: a label appears with the first event at or after its window end, not 1 µs before', () => {
    seq = 0;
    const p = new FeaturePipeline({ tickMs: 100, deltaMs: 500, topLevels: 0 });
    for (let j = 0; j <= 60; j++) p.push(quoteAt(j));
    p.drain();
    const tick1s = (ls: LabelRow[]) => vol(ls).filter((l) => l.tsUs === T0 + 1e6);
    p.push(heartbeat(T0 + 61e6 - 1)); // second 60 not closed yet (boundary 61 s)
    expect(tick1s(p.drain().labels)).toEqual([]);
    p.push(heartbeat(T0 + 61e6)); // the boundary itself closes second 60 with the state before it
    const got = tick1s(p.drain().labels);
    expect(got).toHaveLength(1);
    expect(got[0]!.value).toBeCloseTo(expectedVol(1), 9);
  });
});

describe('gaps break windows and labels instead of being bridged', () => {
  // Quotes every second, except none in (70.5 s, 80.5 s): 10 s of silence, over the 5 s gap limit.
  const withGap = (silence: (j: number) => boolean) => {
    seq = 0;
    return run(
      Array.from({ length: 151 }, (_, j) => j)
        .filter((j) => !silence(j))
        .map((j) => quoteAt(j)),
    );
  };
  const silent = (j: number) => j > 70 && j < 80;
  const gap = withGap(silent);
  const idx = (name: string) => FEATURE_NAMES.indexOf(name);

  it('flags the ticks more than the gap limit after the last event, and labels none of them', () => {
    const flagged = gap.rows.filter((r) => r.values[idx('data_gap_now')] === 1).map((r) => sec(r.tsUs));
    expect(flagged[0]).toBeCloseTo(75.6, 9); // 75.5 s is exactly the limit: not yet a gap
    expect(flagged.at(-1)).toBeCloseTo(80.5, 9);
    expect(flagged).toHaveLength(50);
    expect(gap.stats.gapTicks).toBe(50);
  });

  it('drops every vol label whose forward window touches an unknown boundary (76 .. 80 s) and keeps the rest', () => {
    const secs = vol(gap.labels).map((l) => sec(l.tsUs));
    // Unknown quotes at boundaries 76..80 make the returns of seconds 75..80 unknown: windows starting at
    // B in [16, 80] break, i.e. ticks in (15 s, 80 s]; stale ticks in (75.5 s, 80.5 s] are never labelled.
    expect(secs.some((s) => s > 15 + 1e-9 && s < 80.5 + 1e-9)).toBe(false);
    expect(secs).toContainEqual(expect.closeTo(15, 9));
    expect(secs).toContainEqual(expect.closeTo(80.6, 9));
    // Up to the limit the last quote stands (returns of 0 in seconds 71..74 count as known).
    for (const l of vol(gap.labels)) {
      expect(l.value).toBeCloseTo(expectedVol(Math.ceil(sec(l.tsUs)), silent), 9);
    }
  });

  it('drops quote-change labels whose horizon lies in the gap (75.0 s keeps its label, 75.1 s does not)', () => {
    const q = gap.labels.filter((l) => l.target === 'quote_change_500ms').map((l) => sec(l.tsUs));
    expect(q).toContainEqual(expect.closeTo(75, 9));
    expect(q.some((s) => s > 75 + 1e-9 && s < 80.5 + 1e-9)).toBe(false);
    expect(gap.stats.droppedQuoteChangeLabels).toBeGreaterThan(0);
  });

  it('bridges a silence shorter than the limit (4 s): every label is made', () => {
    const short = withGap((j) => j > 70 && j < 75);
    const full = withGap(() => false);
    expect(short.stats.gapTicks).toBe(0);
    expect(vol(short.labels).map((l) => l.tsUs)).toEqual(vol(full.labels).map((l) => l.tsUs));
    expect(
      short.rows.every(
        (r) =>
          r.values[idx('data_gap_60s')] ===
          full.rows.find((f) => f.tsUs === r.tsUs)!.values[idx('data_gap_60s')],
      ),
    ).toBe(true);
  });

  it('sets the window gap flags while the gap is inside the window', () => {
    const flag = (s: number, w: number) =>
      gap.rows.find((r) => Math.abs(sec(r.tsUs) - s) < 1e-9)!.values[idx(`data_gap_${w}s`)];
    expect(flag(70, 60)).toBe(0); // seconds 10..69 all known
    expect(flag(70, 30)).toBe(0);
    expect(flag(90, 30)).toBe(1); // seconds 60..89 include 75..80
    expect(flag(111, 30)).toBe(0); // seconds 81..110
    expect(flag(140, 60)).toBe(1); // seconds 80..139: 80 starts at an unknown boundary
    expect(flag(141, 60)).toBe(0); // seconds 81..140
  });
});
