import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { Construct, IConstruct } from 'constructs';
import { type CoreSettings, type HistorySettings, historyEnv } from '../src/config.js';
import { TABLES } from '../src/resources.js';
import { acknowledge, acknowledgeWildcardResource, XRAY_REASON } from './nag.js';
import { InvalidPropError, requireCoreSettings, requireInt } from './validate.js';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..');

export interface QuoteWatchFunctionProps {
  /** Handler file (exports `handler`), absolute or relative to the repository root. */
  readonly entry: string;
  readonly description?: string;
  /** @default 256 */
  readonly memorySize?: number;
  /** @default 10 seconds */
  readonly timeout?: Duration;
  /** @default one month */
  readonly logRetention?: RetentionDays;
  /**
   * Ship onnxruntime-node (Linux ARM64 binary only) next to the bundle. Its native addon cannot be bundled by
   * esbuild, and `nodeModules` would run `npm install` at synth time (needs the registry), so the installed package
   * is copied from node_modules instead: synth stays offline.
   * @default false
   */
  readonly withOnnxRuntime?: boolean;
  /** Reserved concurrency (the function's own share of the account's; also its ceiling). @default none */
  readonly reservedConcurrency?: number;
  /** esbuild loaders by extension, e.g. { '.html': 'text' }. */
  readonly loader?: Record<string, string>;
  /** Shell commands that add files to the bundle's directory after esbuild (e.g. the dashboard's script). */
  readonly afterBundling?: (outputDir: string) => string[];
  readonly environment?: Record<string, string>;
}

// Bundled CommonJS dependencies call require(); an ESM bundle has none unless we make one.
const REQUIRE_SHIM =
  "import { createRequire as __qwCreateRequire } from 'node:module'; const require = __qwCreateRequire(import.meta.url);";

/**
 * A NodejsFunction with QuoteWatch's defaults: Node 22 on ARM64, ESM bundle built by the local esbuild (no Docker),
 * AWS SDK bundled (the version we test with, not the runtime's), X-Ray tracing, a log group with retention.
 * `bind*()` set the environment variable AND grant the matching IAM access in one call, so they cannot drift apart.
 */
export class QuoteWatchFunction extends NodejsFunction {
  readonly logGroupResource: LogGroup;

  constructor(scope: Construct, id: string, props: QuoteWatchFunctionProps) {
    const entry = path.resolve(REPO_ROOT, props.entry);
    if (!existsSync(entry))
      throw new InvalidPropError(`QuoteWatchFunction ${id}`, 'entry', `${entry} does not exist`);
    const memorySize = requireInt(
      `QuoteWatchFunction ${id}`,
      'memorySize',
      props.memorySize ?? 256,
      128,
      10_240,
    );
    const timeout = props.timeout ?? Duration.seconds(10);
    requireInt(`QuoteWatchFunction ${id}`, 'timeout (seconds)', timeout.toSeconds(), 1, 900);
    const onnx = props.withOnnxRuntime ? onnxRuntimeCopyCommands() : undefined;

    // Created in the parent scope because `this` does not exist before super().
    const logGroup = new LogGroup(scope, `${id}LogGroup`, {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Own role instead of AWSLambdaBasicExecutionRole: it may write to its own log group only.
    const role = new Role(scope, `${id}Role`, { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    logGroup.grantWrite(role);

    super(scope, id, {
      entry,
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize,
      timeout,
      reservedConcurrentExecutions: props.reservedConcurrency,
      tracing: Tracing.ACTIVE,
      logGroup,
      role,
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, 'package-lock.json'),
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node22',
        mainFields: ['module', 'main'],
        banner: REQUIRE_SHIM,
        minify: true,
        // Error classes are named after their class (QuoteWatchError): minifying must not rename them.
        keepNames: true,
        sourceMap: true,
        bundleAwsSDK: true,
        forceDockerBundling: false,
        externalModules: onnx ? ['onnxruntime-node'] : [],
        loader: props.loader,
        commandHooks: (onnx || props.afterBundling) && {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling: (_input: string, output: string) => [
            ...(onnx?.(output) ?? []),
            ...(props.afterBundling?.(output) ?? []),
          ],
        },
      },
    });
    this.logGroupResource = logGroup;
    acknowledge(role, 'AwsSolutions-IAM5[Resource::*]', XRAY_REASON);
    acknowledge(
      this,
      'AwsSolutions-L1',
      'Pinned to Node 22: the runtime the handlers are developed and tested on locally (package engines, CI).',
    );
  }

  /** SYMBOLS, TICK_MS, DELTA_MS: settings only, no access. */
  bindCoreConfig(core: CoreSettings): this {
    for (const [name, value] of Object.entries(requireCoreSettings(this.node.path, core))) {
      this.addEnvironment(name, value);
    }
    return this;
  }

  /** BUILD_SHA (when the build passes one), reported by GET /version: a setting, no access. */
  bindApiConfig(buildSha: string | undefined): this {
    if (buildSha !== undefined) this.addEnvironment('BUILD_SHA', buildSha);
    return this;
  }

  /** HISTORY_WRITE_MS, HISTORY_TTL_S: whether (and how often) the worker writes the history /history serves. */
  bindHistoryConfig(history: HistorySettings): this {
    for (const [name, value] of Object.entries(historyEnv(history))) this.addEnvironment(name, value);
    return this;
  }

  /** LATEST_TABLE + read access (the API only reads snapshots; the worker writes them). */
  bindLatestTable(table: ITable): this {
    this.addEnvironment(TABLES.latest.env, table.tableName);
    table.grantReadData(this);
    return this;
  }

  /** MODEL_URI, MODEL_BUCKET, REGISTRY_TABLE + read access to the registry prefix and the active-version table. */
  bindModelRegistry(bucket: IBucket, table: ITable, prefix = 'registry'): this {
    this.addEnvironment('MODEL_URI', `s3://${bucket.bucketName}/${prefix}`);
    this.addEnvironment('MODEL_BUCKET', bucket.bucketName);
    this.addEnvironment(TABLES.registry.env, table.tableName);
    grantReadObjects(
      this,
      this.role!,
      bucket,
      `${prefix}/*`,
      'Reads any version under the model registry prefix.',
    );
    table.grantReadData(this);
    return this;
  }
}

/**
 * s3:GetObject under a key pattern plus s3:ListBucket (so a missing key is a 404, not a 403). Narrower than
 * IBucket.grantRead(), which adds GetObject*, GetBucket* and List* wildcards.
 */
export function grantReadObjects(
  grantee: IGrantable,
  ackScope: IConstruct,
  bucket: IBucket,
  keyPattern: string,
  why: string,
): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects(keyPattern)] }),
  );
  grantee.grantPrincipal.addToPrincipalPolicy(
    new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }),
  );
  acknowledgeWildcardResource(ackScope, bucket.arnForObjects(keyPattern), why);
}

/** Shell commands copying the installed onnxruntime-node (+ onnxruntime-common) for linux/arm64 into the asset. */
function onnxRuntimeCopyCommands(): (output: string) => string[] {
  const require = createRequire(path.join(REPO_ROOT, 'package.json'));
  // Node's own lookup path, not require.resolve(): onnxruntime-common's "exports" hides its package.json.
  const pkgDir = (name: string) => {
    const dir = (require.resolve.paths(name) ?? [])
      .map((base) => path.join(base, name))
      .find((d) => existsSync(path.join(d, 'package.json')));
    if (!dir) throw new InvalidPropError('QuoteWatchFunction', 'withOnnxRuntime', `${name} is not installed`);
    return dir;
  };
  const ort = pkgDir('onnxruntime-node');
  const common = pkgDir('onnxruntime-common');
  const binary = path.join(ort, 'bin/napi-v6/linux/arm64');
  if (!existsSync(binary)) {
    throw new InvalidPropError('QuoteWatchFunction', 'withOnnxRuntime', `no linux/arm64 binary at ${binary}`);
  }
  return (output) => {
    const dest = path.join(output, 'node_modules/onnxruntime-node');
    return [
      `mkdir -p "${dest}/bin/napi-v6/linux"`,
      `cp "${ort}/package.json" "${dest}/"`,
      `cp -R "${ort}/dist" "${dest}/"`,
      `cp -R "${binary}" "${dest}/bin/napi-v6/linux/"`,
      `cp -R "${common}" "${output}/node_modules/onnxruntime-common"`,
    ];
  };
}
