/**
 * A vitest reporter that accounts for every skipped test of a full run (`npm test`):
 * - lists the skipped files with the reason, so a run without ../shared or without Chromium says what it left out;
 * - fails the run when a test is skipped for any other reason (a forgotten `.skip`, a suite whose own
 *   condition silently turned it off), or when a test that needs the captures is skipped while they are present;
 * - with QW_EXPECT_NO_CAPTURES=1 (the fresh-clone step of .ci/run) also fails unless the captures really are
 *   absent and their tests were skipped, so that step cannot pass by testing the wrong thing.
 * Runs filtered by test name (`-t`) skip tests on purpose and are not audited.
 */
import { relative } from 'node:path';
import type { Reporter, TestModule, Vitest } from 'vitest/node';
import { CAPTURES_DIR, capture, NEEDS_CAPTURES } from './captureFiles.js';

/** Marks the suite titles carry, and what each one needs. */
export const SKIP_REASONS: Record<string, string> = {
  [NEEDS_CAPTURES]: `the real captures (${CAPTURES_DIR}) are absent`,
  '[needs chromium]':
    'no Chromium at /usr/bin/chromium (install it, or set CI to make the test fail instead)',
};

export interface SkippedTest {
  file: string;
  name: string;
}

/** The audit itself, apart from vitest: what to report and what is wrong. */
export function auditSkips(
  skipped: readonly SkippedTest[],
  capturesPresent: boolean,
  expectNoCaptures: boolean,
): { report: string[]; problems: string[] } {
  const report: string[] = [];
  const problems: string[] = [];
  const byReason = new Map<string, Map<string, number>>();
  for (const t of skipped) {
    const mark = Object.keys(SKIP_REASONS).find((m) => t.name.includes(m));
    if (!mark) {
      problems.push(`${t.file}: "${t.name}" is skipped for no declared reason`);
      continue;
    }
    if (mark === NEEDS_CAPTURES && capturesPresent) {
      problems.push(`${t.file}: "${t.name}" needs the captures, which are present, yet was skipped`);
    }
    const files = byReason.get(mark) ?? new Map<string, number>();
    files.set(t.file, (files.get(t.file) ?? 0) + 1);
    byReason.set(mark, files);
  }
  for (const [mark, files] of byReason) {
    const n = [...files.values()].reduce((a, b) => a + b, 0);
    report.push(`skipped ${n} test(s) because ${SKIP_REASONS[mark]}:`);
    for (const [file, count] of files) report.push(`  ${file} (${count})`);
  }
  if (expectNoCaptures) {
    if (capturesPresent) problems.push(`QW_EXPECT_NO_CAPTURES is set but ${CAPTURES_DIR} exists`);
    else if (!byReason.has(NEEDS_CAPTURES))
      problems.push('QW_EXPECT_NO_CAPTURES is set but no test was skipped');
  }
  return { report, problems };
}

export default class SkipAudit implements Reporter {
  private filtered = false;
  private root = process.cwd();

  onInit(vitest: Vitest): void {
    this.filtered = vitest.config.testNamePattern !== undefined;
    this.root = vitest.config.root;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    if (this.filtered) return;
    const skipped: SkippedTest[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests('skipped')) {
        skipped.push({ file: relative(this.root, m.moduleId), name: t.fullName });
      }
    }
    const { report, problems } = auditSkips(
      skipped,
      capture('advancedTrade').present && capture('exchange').present,
      process.env.QW_EXPECT_NO_CAPTURES === '1',
    );
    for (const line of report) console.log(`[skip audit] ${line}`);
    if (problems.length > 0) {
      for (const p of problems) console.error(`[skip audit] FAIL ${p}`);
      process.exitCode = 1;
    }
  }
}
