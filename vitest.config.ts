import { configDefaults, defineConfig, type Plugin } from 'vitest/config';
import { ROUTES } from './src/api/routes.js';
import { textModule } from './src/gateway/handlers.js';
import SkipAudit from './test/support/skipAudit.js';

/**
 * The route table's text loaders (esbuild's in the bundle, a Node module hook in the gateway process) for the
 * modules vitest transforms itself: the in-process gateway loads lambdas/dashboard.ts, which imports its page.
 */
function routeTextLoaders(): Plugin {
  const extensions = ROUTES.flatMap((r) =>
    Object.entries(r.loader ?? {})
      .filter(([, loader]) => loader === 'text')
      .map(([extension]) => extension),
  );
  return {
    name: 'quotewatch-route-text-loaders',
    enforce: 'pre',
    load(id) {
      const file = id.split('?')[0]!;
      return extensions.some((e) => file.endsWith(e)) ? textModule(file) : undefined;
    },
  };
}

const INCLUDE = ['test/**/*.test.ts', 'src/**/*.test.ts', 'models/**/*.test.ts', 'lambdas/**/*.test.ts'];
/**
 * Runs of the whole system at several times real time whose figures depend on wall-clock stalls (the two lines
 * drift apart by a stall times the speed: README "Open defects", 5). They run after the rest, one at a time, so the
 * chaos run's processes never share the two cores with the two-line run's.
 */
const ALONE = ['test/chaos.test.ts', 'test/determinism.lines.test.ts'];

export default defineConfig({
  plugins: [routeTextLoaders()],
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: INCLUDE,
          exclude: [...configDefaults.exclude, ...ALONE],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests start real emulators and processes; two cores do not benefit from more parallel files.
    maxWorkers: 2,
    // Every skipped test is accounted for (test/support/skipAudit.ts).
    reporters: ['default', new SkipAudit()],
  },
});
