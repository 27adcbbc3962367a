/**
 * Sequence checking for one Advanced Trade connection. The feed numbers every frame with ONE counter per
 * connection (across channels and products), so any gap means some frame was lost and no product's book can
 * be trusted any more; a regression means the feed restarted under us. Both call for a resync.
 */

export type SequenceDecision =
  | { kind: 'ok' }
  | { kind: 'gap'; expected: number; got: number; missing: number }
  | { kind: 'regression'; expected: number; got: number };

export class SequenceChecker {
  private expected: number | undefined;

  /** Checks the next frame's sequence number. The first frame of a connection sets the counter. */
  check(seq: number): SequenceDecision {
    const expected = this.expected;
    // Keep following the feed after a gap or regression, so one lost frame yields one resync, not many.
    this.expected = seq + 1;
    if (expected === undefined || seq === expected) return { kind: 'ok' };
    if (seq > expected) return { kind: 'gap', expected, got: seq, missing: seq - expected };
    return { kind: 'regression', expected, got: seq };
  }

  /** A new connection starts a new counter. */
  reset(): void {
    this.expected = undefined;
  }

  /** The sequence number the next frame should carry (undefined before the first frame). */
  get next(): number | undefined {
    return this.expected;
  }
}
