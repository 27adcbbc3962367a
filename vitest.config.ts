import { defineConfig } from 'vitest/config';
import SkipAudit from './test/support/skipAudit.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts', 'models/**/*.test.ts', 'lambdas/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests start real emulators and processes; two cores do not benefit from more parallel files.
    maxWorkers: 2,
    // Every skipped test is accounted for (test/support/skipAudit.ts).
    reporters: ['default', new SkipAudit()],
  },
});
