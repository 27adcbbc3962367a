import { defineConfig, type Plugin } from 'vitest/config';
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

export default defineConfig({
  plugins: [routeTextLoaders()],
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
