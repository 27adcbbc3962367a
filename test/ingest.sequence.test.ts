import { describe, expect, it } from 'vitest';
import { reconnectDelay } from '../src/ingest/feedStateMachine.js';
import { SequenceChecker } from '../src/ingest/sequence.js';

describe('SequenceChecker', () => {
  it('accepts a contiguous counter starting anywhere', () => {
    const c = new SequenceChecker();
    expect([5, 6, 7, 8].map((s) => c.check(s).kind)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(c.next).toBe(9);
  });

  it('reports a gap once, with what is missing, then follows the feed', () => {
    const c = new SequenceChecker();
    c.check(0);
    expect(c.check(4)).toEqual({ kind: 'gap', expected: 1, got: 4, missing: 3 });
    expect(c.check(5)).toEqual({ kind: 'ok' });
  });

  it('reports a regression or a duplicate', () => {
    const c = new SequenceChecker();
    c.check(10);
    expect(c.check(10)).toEqual({ kind: 'regression', expected: 11, got: 10 });
    expect(c.check(3)).toEqual({ kind: 'regression', expected: 11, got: 3 });
  });

  it('starts over on reset (a new connection restarts at 0)', () => {
    const c = new SequenceChecker();
    c.check(100);
    c.reset();
    expect(c.check(0)).toEqual({ kind: 'ok' });
  });
});

describe('reconnectDelay', () => {
  it('grows exponentially up to the cap, jittered below the ceiling', () => {
    const top = (attempt: number) => reconnectDelay(attempt, 100, 5000, () => 1);
    expect([0, 1, 2, 3, 10].map(top)).toEqual([100, 200, 400, 800, 5000]);
    expect(reconnectDelay(3, 100, 5000, () => 0.5)).toBe(400);
    expect(reconnectDelay(3, 100, 5000, () => 0)).toBe(0);
  });
});
