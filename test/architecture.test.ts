/**
 * The layout's dependency rules (.dependency-cruiser.mjs) hold for the shipped code, and the same rules do fail
 * on deliberately wrong imports in a small fixture tree, so the first check can fail.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type ICruiseOptions, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
/** The folders `npm run deps` cruises (checked below against package.json). */
const CRUISED = ['src', 'lib', 'lambdas', 'containers', 'bin', 'models'];

let options: ICruiseOptions;
beforeAll(async () => {
  options = await extractDepcruiseOptions(join(ROOT, '.dependency-cruiser.mjs'));
});

const RULES = [
  'core-imports-no-shell',
  'core-imports-no-cdk',
  'cdk-reads-only-definitions',
  'shells-import-only-the-core',
  'no-cycles',
  'imports-resolve',
];

async function violations(baseDir: string): Promise<string[]> {
  const { output } = await cruise(CRUISED, { ...options, baseDir, validate: true });
  const result = output as ICruiseResult;
  return result.summary.violations.map((v) =>
    v.cycle
      ? `${v.rule.name}: ${[v.from, ...v.cycle.map((c) => c.name)].join(' -> ')}`
      : `${v.rule.name}: ${v.from} -> ${v.to}`,
  );
}

describe('the shipped code', () => {
  let found: string[];
  beforeAll(async () => {
    found = await violations(ROOT);
  });

  it('defines every rule this test reports on', () => {
    const ruleSet = options.ruleSet as { forbidden: { name: string }[] };
    expect(ruleSet.forbidden.map((r) => r.name).sort()).toEqual([...RULES].sort());
  });

  it.each(RULES)('keeps %s', (rule) => {
    expect(found.filter((v) => v.startsWith(`${rule}:`))).toEqual([]);
  });

  it('is what `npm run deps` checks', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.deps).toBe(`depcruise --output-type err-long ${CRUISED.join(' ')}`);
  });
});

describe('the rules on wrong imports', () => {
  let dir: string;
  const write = (file: string, text: string) => {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'qw-depcruise-'));
    // A stand-in for the CDK package: resolvable, so only the layout rule can object to it.
    write('node_modules/aws-cdk-lib/package.json', '{"name":"aws-cdk-lib","main":"index.js"}');
    write('node_modules/aws-cdk-lib/index.js', 'export const App = 1;\n');
    write('lambdas/handler.ts', "import { ok } from '../src/ok.js';\nexport const handler = ok;\n");
    write('lambdas/other.ts', "import { handler } from './handler.js';\nexport const again = handler;\n");
    write(
      'lambdas/reaches.ts',
      "import { main } from '../containers/task/main.js';\nexport const m = main;\n",
    );
    write('containers/task/main.ts', 'export const main = 1;\n');
    write('bin/cli.ts', "import { run } from '../src/worker.js';\nexport const cli = run;\n");
    write('models/train.ts', "import { ok } from '../src/ok.js';\nexport const train = ok;\n");
    write(
      'lib/stack.ts',
      "export { DEFAULTS } from '../src/config.js';\nexport { run } from '../src/worker.js';\n",
    );
    write('src/config.ts', 'export const DEFAULTS = 1;\n');
    write('src/ok.ts', 'export const ok = () => 1;\n');
    write('src/worker.ts', 'export const run = 1;\n');
    write('src/up.ts', "import { DEFAULTS } from '../lib/stack.js';\nexport const u = DEFAULTS;\n");
    write(
      'src/typeOnly.ts',
      "import type { handler } from '../lambdas/handler.js';\nexport type H = typeof handler;\n",
    );
    write('src/literal.ts', "export const load = () => import('../lambdas/handler.js');\n");
    // The gateway's way: the path is data, as a Lambda function's handler setting is.
    write(
      'src/byPath.ts',
      "const entry: string = ['lambdas', 'handler.ts'].join('/');\nexport const load = () => import(['..', entry].join('/'));\n",
    );
    write('src/cdk.ts', "import { App } from 'aws-cdk-lib';\nexport const a = App;\n");
    write('src/a.ts', "import { b } from './b.js';\nexport const a = () => b;\n");
    write('src/b.ts', "import { a } from './a.js';\nexport const b = () => a;\n");
    write('src/typo.ts', "import { x } from './nowhere.js';\nexport const y = x;\n");
    // Tests are outside the rules.
    write('src/ok.test.ts', "import { handler } from '../lambdas/handler.js';\nexport const t = handler;\n");
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports each wrong import under its rule, and nothing else', async () => {
    expect((await violations(dir)).sort()).toEqual(
      [
        'cdk-reads-only-definitions: lib/stack.ts -> src/worker.ts',
        'core-imports-no-cdk: src/cdk.ts -> node_modules/aws-cdk-lib/index.js',
        'core-imports-no-shell: src/literal.ts -> lambdas/handler.ts',
        'core-imports-no-shell: src/typeOnly.ts -> lambdas/handler.ts',
        'core-imports-no-shell: src/up.ts -> lib/stack.ts',
        'imports-resolve: src/typo.ts -> ./nowhere.js',
        'no-cycles: src/a.ts -> src/b.ts -> src/a.ts',
        'shells-import-only-the-core: lambdas/reaches.ts -> containers/task/main.ts',
      ].sort(),
    );
  });
});
