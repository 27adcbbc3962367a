/**
 * The layout's dependency rules (README "Layout" and "Dependency rules"), checked in `npm test` by
 * test/architecture.test.ts and on demand with `npm run deps`.
 *
 * Every kind of import counts: static, `import type`, re-exports and `import('literal')` alike. The one thing
 * no rule sees is an import whose path is computed at run time; the local gateway loads each handler that way
 * (src/gateway/handlers.ts, by the entry the route table names), which is the contract Lambda itself uses: a
 * function is configured with a handler file name, not linked to it.
 */

/** What the CDK constructs (lib/) may read from the core: definitions, never the runtime behind them. */
const CDK_READS = [
  'src/resources.ts', // streams, tables, buckets and their environment variables
  'src/errors.ts', // the error base (QuoteWatchError) the constructs' own errors extend
  'src/config.ts', // shared defaults (core settings, ports, feed URLs) and the readers CDK validates with
  'src/api/routes.ts', // the route table: one Lambda function and one API route per entry
  'src/features/spec.ts', // the feature spec: the lake's Glue table columns
  'src/model/types.ts', // the model targets: one training run per target
  'src/gateway/dashboard/build.ts', // the dashboard's browser code, written beside its function's bundle
  'src/telemetry/catalog.ts', // the metrics the code emits: the dashboard and alarms graph only these
];

const literal = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'core-imports-no-shell',
      comment:
        'src/ is the domain core: it never imports the CDK app (lib/), the Lambda handlers (lambdas/), the ' +
        'Fargate entries (containers/) or the CLI (bin/). They import the core, not the other way round.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(lib|lambdas|containers|bin)/' },
    },
    {
      name: 'core-imports-no-cdk',
      comment: 'src/ runs in Lambda, Fargate and locally; the CDK libraries belong to lib/ and bin/app.ts.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '(^|/)node_modules/(aws-cdk-lib|aws-cdk|constructs|cdk-nag)/' },
    },
    {
      name: 'cdk-reads-only-definitions',
      comment: `lib/ imports from src/ only these definitions: ${CDK_READS.join(', ')}.`,
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^src/', pathNot: `^(${CDK_READS.map(literal).join('|')})$` },
    },
    {
      name: 'shells-import-only-the-core',
      comment:
        'The handlers (lambdas/) and the Fargate entries (containers/) are thin shells over src/: they import ' +
        'neither each other nor the CDK app or the CLI.',
      severity: 'error',
      from: { path: '^(lambdas|containers)/' },
      to: { path: '^(lib|bin)/|^(lambdas|containers)/', pathNot: '^$1/' },
    },
    {
      name: 'no-cycles',
      comment: 'Modules that import each other cannot be understood, tested or loaded one at a time.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'imports-resolve',
      comment: 'An import the cruiser cannot resolve would be invisible to every rule above.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // typescript@7 has no compiler API for the cruiser; swc parses TypeScript and still marks `import type`.
    parser: 'swc',
    doNotFollow: { path: '(^|/)node_modules/' },
    // Tests may import anything (fixtures, the shells they test); the rules are about the shipped code.
    exclude: { path: '(^|/)test/|\\.test\\.ts$' },
    moduleSystems: ['es6'],
  },
};
