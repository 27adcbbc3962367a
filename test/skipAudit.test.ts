/**
 * The skip audit (test/support/skipAudit.ts) that every full `npm test` runs as a reporter: what it reports and
 * what makes it fail the run. The same function judges the real run; here it is fed chosen skip lists.
 */
import { describe, expect, it } from 'vitest';
import { NEEDS_CAPTURES } from './support/captureFiles.js';
import { auditSkips } from './support/skipAudit.js';

const captureSkip = (file: string, name: string) => ({ file, name: `${name} ${NEEDS_CAPTURES} > a test` });

describe('skip audit', () => {
  it('without the captures, reports their skipped files with the reason and passes', () => {
    const { report, problems } = auditSkips(
      [
        captureSkip('test/a.test.ts', 'suite'),
        captureSkip('test/a.test.ts', 'other'),
        captureSkip('test/b.test.ts', 'x'),
      ],
      false,
      true,
    );
    expect(problems).toEqual([]);
    expect(report[0]).toMatch(
      /^skipped 3 test\(s\) because the real captures \(.*shared\/data\/coinbase\) are absent:$/,
    );
    expect(report.slice(1)).toEqual(['  test/a.test.ts (2)', '  test/b.test.ts (1)']);
  });

  it('fails a skip that declares no reason (a forgotten .skip)', () => {
    const { problems } = auditSkips([{ file: 'test/c.test.ts', name: 'suite > it' }], true, false);
    expect(problems).toEqual(['test/c.test.ts: "suite > it" is skipped for no declared reason']);
  });

  it('fails a capture test skipped while the captures are present', () => {
    const { problems } = auditSkips([captureSkip('test/a.test.ts', 'suite')], true, false);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/needs the captures, which are present, yet was skipped/);
  });

  it('in the fresh-clone step, fails unless the captures are really absent and their tests skipped', () => {
    expect(auditSkips([], true, true).problems).toEqual([
      expect.stringMatching(/QW_EXPECT_NO_CAPTURES .* exists/),
    ]);
    expect(auditSkips([], false, true).problems).toEqual([
      'QW_EXPECT_NO_CAPTURES is set but no test was skipped',
    ]);
  });

  it('accepts a browser test skipped for want of Chromium, naming why', () => {
    const { report, problems } = auditSkips(
      [{ file: 'test/d.browser.test.ts', name: 'dashboard [needs chromium] > renders' }],
      true,
      false,
    );
    expect(problems).toEqual([]);
    expect(report[0]).toMatch(/because no Chromium at \/usr\/bin\/chromium/);
  });
});
