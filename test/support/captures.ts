/**
 * Tests over the real captures (test/support/captureFiles.ts): each runs when its capture is present, and is
 * reported as skipped with one message when it is not. The skip audit (test/support/skipAudit.ts) tells those
 * skips from any other by the NEEDS_CAPTURES mark these add to the title.
 */
import { describe, it } from 'vitest';
import { absentNote, type Capture, type CaptureName, capture, NEEDS_CAPTURES } from './captureFiles.js';

export * from './captureFiles.js';

/**
 * A suite over a capture: runs when it is present, reported as skipped (one warning) when it is not. The body
 * must read the capture inside its tests or hooks, never while the suite is being collected.
 */
export function describeCapture(name: CaptureName, title: string, body: (c: Capture) => void): void {
  const c = capture(name);
  if (!c.present) console.warn(absentNote(c, `"${title}"`));
  describe.skipIf(!c.present)(`${title} ${NEEDS_CAPTURES}`, () => body(c));
}

/** One test over a capture, inside a suite that does not otherwise need it. */
export function itCapture(
  name: CaptureName,
  title: string,
  body: (c: Capture) => Promise<void> | void,
  timeoutMs?: number,
): void {
  const c = capture(name);
  if (!c.present) console.warn(absentNote(c, `"${title}"`));
  it.skipIf(!c.present)(`${title} ${NEEDS_CAPTURES}`, () => body(c), timeoutMs);
}
