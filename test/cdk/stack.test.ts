/**
 * The deployed stack, checked offline: one synth per run (Lambda bundling with the local esbuild, Docker images
 * only staged), cdk-nag's AWS Solutions pack over the same tree, then resource-level assertions built from
 * src/resources.ts. No whole-template snapshot: each assertion names the property it protects.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDefinition, trainingDefinition } from '../../bin/localTraining.js';
import { MarketStream } from '../../lib/market-stream.js';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { Storage } from '../../lib/storage.js';
import { TRAINING_OUTCOMES, TrainingPipeline } from '../../lib/training-pipeline.js';
import { InvalidPropError } from '../../lib/validate.js';
import { DEPLOYED_ROUTES, ROUTES, routeKey } from '../../src/api/routes.js';
import { DEFAULT_CORE } from '../../src/config.js';
import { FEATURE_VERSION } from '../../src/features/spec.js';
import { buildDashboard } from '../../src/gateway/dashboard/build.js';
import { DASHBOARD_FILES } from '../../src/gateway/dashboard/files.js';
import { MODEL_SETS, slotKey, TARGETS } from '../../src/model/types.js';
import {
  BUCKETS,
  EXECUTION_FAILURE_RECORD,
  REGISTRY_KEYS,
  STREAM,
  TABLES,
  type TableDef,
  VERSION_TAGS,
} from '../../src/resources.js';
import { containerEnv, nagFindings, unbundledApp } from './support.js';

type Json = Record<string, unknown>;
interface CfnResource {
  Type: string;
  Properties: Json;
}

const outdir = mkdtempSync(path.join(tmpdir(), 'qw-cdk-test-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

// The feature flags of cdk.json, as `cdk synth` applies them: the stack under test is the one that deploys.
const cdkJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
  context: Record<string, unknown>;
};
const app = new App({ outdir, context: cdkJson.context });
const stack = new QuoteWatchStack(app, 'QuoteWatch');
const nag = new AwsSolutionsChecks(app);
Validations.of(app).addPlugins(nag);
const template = Template.fromStack(stack);
const resources = template.toJSON().Resources as Record<string, CfnResource>;

const logicalId = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
const resourceOf = (c: IConstruct) => {
  const r = resources[logicalId(c)];
  if (!r) throw new Error(`no resource for ${c.node.path}`);
  return r;
};
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
/** The HTTP API's resources of a type (the WebSocket API has routes and integrations too). */
const httpApi = (type: string) =>
  ofType(type).filter(
    ([, r]) => JSON.stringify(r.Properties.ApiId) === JSON.stringify({ Ref: logicalId(stack.api.api) }),
  );

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}
/** Statements of every AWS::IAM::Policy attached to the role. */
function statementsOfRole(roleLogicalId: string): Statement[] {
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(`"${roleLogicalId}"`))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const actionsOf = (statements: Statement[]) => new Set(statements.flatMap((s) => [s.Action].flat()));

describe('cdk-nag (AWS Solutions)', () => {
  it('reports no unacknowledged finding on the stack', () => {
    const report = nag.validateScope(stack);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('has no error annotations from synthesis', () => {
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  });

  it('does catch an unacknowledged finding (the check above can fail)', () => {
    const probeApp = new App();
    const probe = new Stack(probeApp, 'Probe');
    new Bucket(probe, 'Plain');
    const report = new AwsSolutionsChecks(probeApp).validateScope(probe);
    expect(report.success).toBe(false);
    expect(report.violations.map((v) => v.ruleName)).toContain('AwsSolutions-S1');
  });
});

describe('Kinesis stream', () => {
  it("has the deployment's shard count and retention, encrypted, and goes with the stack", () => {
    template.resourceCountIs('AWS::Kinesis::Stream', 1);
    // Two products, four per shard by default: one shard.
    expect(stack.deployment.shards).toBe(1);
    template.hasResource('AWS::Kinesis::Stream', {
      Properties: {
        ShardCount: stack.deployment.shards,
        RetentionPeriodHours: STREAM.retentionHours,
        StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      },
      DeletionPolicy: 'Delete',
    });
  });
});

describe('DynamoDB tables', () => {
  it('one table per TABLES entry', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', Object.keys(TABLES).length);
  });
  for (const [key, def] of Object.entries(TABLES) as [keyof typeof TABLES, TableDef][]) {
    it(`${def.logicalId}: key schema, billing, PITR and TTL from TABLES.${key}`, () => {
      const props = resourceOf(stack.storage.tables[key]).Properties;
      const keys = [def.partitionKey, ...(def.sortKey ? [def.sortKey] : [])];
      expect(props.KeySchema).toEqual(
        keys.map((k, i) => ({ AttributeName: k.name, KeyType: i === 0 ? 'HASH' : 'RANGE' })),
      );
      expect(props.AttributeDefinitions).toEqual(
        keys.map((k) => ({ AttributeName: k.name, AttributeType: k.type })),
      );
      // The steadily written tables on provisioned capacity (src/config.ts dynamoCapacity), the registry on demand.
      const capacity = key === 'registry' || key === 'connections' ? undefined : stack.deployment.tables[key];
      if (capacity) {
        expect(props.BillingMode).toBeUndefined(); // PROVISIONED is CloudFormation's default
        expect(props.ProvisionedThroughput).toEqual({
          ReadCapacityUnits: capacity.readUnits,
          WriteCapacityUnits: capacity.writeUnits,
        });
      } else {
        expect(props.BillingMode).toBe('PAY_PER_REQUEST');
      }
      // Connections live for hours at most: destroyed with the stack, nothing to recover; the rest is kept.
      const ephemeral = def.ephemeral === true;
      expect(resources[logicalId(stack.storage.tables[key])]!).toMatchObject({
        DeletionPolicy: ephemeral ? 'Delete' : 'Retain',
      });
      expect(props.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: !ephemeral });
      expect(props.TimeToLiveSpecification).toEqual(
        def.ttlAttribute ? { AttributeName: def.ttlAttribute, Enabled: true } : undefined,
      );
    });
  }
});

describe('S3 buckets', () => {
  it('every bucket is encrypted, blocks public access and denies non-TLS requests', () => {
    const buckets = ofType('AWS::S3::Bucket');
    expect(buckets.length).toBe(3);
    for (const [id, b] of buckets) {
      expect(b.Properties.BucketEncryption, id).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
      expect(b.Properties.PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: id },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          ]),
        },
      });
    }
  });

  it('the model bucket is versioned and the lake has a lifecycle; both log access', () => {
    const models = resourceOf(stack.storage.modelBucket).Properties;
    const lake = resourceOf(stack.storage.lakeBucket).Properties;
    expect(models.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    const d = stack.deployment;
    expect(lake.LifecycleConfiguration).toEqual({
      Rules: [
        expect.objectContaining({
          Id: 'zones',
          Status: 'Enabled',
          ExpirationInDays: d.lakeRetentionDays,
          Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }],
        }),
        {
          Id: 'snapshots',
          Prefix: 'snapshots/',
          Status: 'Enabled',
          ExpirationInDays: d.snapshotRetentionDays,
        },
        { Id: 'archive', Prefix: 'archive/', Status: 'Enabled', ExpirationInDays: d.archiveRetentionDays },
      ],
    });
    const logs = { Ref: logicalId(stack.storage.accessLogsBucket) };
    expect(models.LoggingConfiguration).toMatchObject({ DestinationBucketName: logs });
    expect(lake.LoggingConfiguration).toMatchObject({ DestinationBucketName: logs });
  });

  it('the access-log bucket disables ACLs and lets S3 logging write through its bucket policy', () => {
    const logsId = logicalId(stack.storage.accessLogsBucket);
    const bucket = resourceOf(stack.storage.accessLogsBucket).Properties;
    expect(bucket.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    expect(bucket.AccessControl).toBeUndefined();
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: logsId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 'logging.s3.amazonaws.com' },
            Action: 's3:PutObject',
            Condition: Match.objectLike({
              ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(stack.storage.lakeBucket), 'Arn'] } },
            }),
          }),
        ]),
      },
    });
  });
});

describe('Lambda functions', () => {
  const ref = (c: IConstruct) => ({ Ref: logicalId(c) });

  it('all run nodejs22.x on arm64 with tracing', () => {
    const fns = ofType('AWS::Lambda::Function');
    expect(fns.length).toBe(stack.api.functions.length + stack.push!.functions.length);
    for (const [id, fn] of fns) {
      expect(fn.Properties, id).toMatchObject({
        Runtime: 'nodejs22.x',
        Architectures: ['arm64'],
        TracingConfig: { Mode: 'Active' },
      });
    }
  });

  it('get the resource names their handlers read, as generated references', () => {
    const envOf = (c: IConstruct) => (resourceOf(c).Properties.Environment as { Variables: Json }).Variables;
    const core = { SYMBOLS: 'BTC-USD,ETH-USD', TICK_MS: '100', DELTA_MS: '500' };
    const { Latest, Predict, Health, Version } = stack.api.routeFunctions;
    const { latestTable, registryTable, modelBucket } = stack.storage;
    expect(envOf(Latest)).toMatchObject({ ...core, [TABLES.latest.env]: ref(latestTable) });
    expect(envOf(Health)).toMatchObject({ ...core, [TABLES.latest.env]: ref(latestTable) });
    expect(envOf(Version)).toMatchObject({ [TABLES.registry.env]: ref(registryTable) });
    expect(envOf(Predict)).toMatchObject({
      ...core,
      [TABLES.latest.env]: ref(latestTable),
      [TABLES.registry.env]: ref(registryTable),
      [BUCKETS.models.env]: ref(modelBucket),
      MODEL_URI: { 'Fn::Join': ['', ['s3://', ref(modelBucket), '/registry']] },
    });
  });

  it('the read-only API cannot write the latest table', () => {
    const role = logicalId(stack.api.routeFunctions.Latest.role!);
    const actions = actionsOf(statementsOfRole(role));
    expect(actions).toContain('dynamodb:GetItem');
    expect([...actions].filter((a) => /dynamodb:(Put|Update|Delete|BatchWrite)/.test(a))).toEqual([]);
  });
});

describe('HTTP API', () => {
  it('routes the four endpoints (and the dashboard page) to Lambda integrations', () => {
    const keys = httpApi('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties.RouteKey as string);
    const methods = keys.filter((k) => !k.startsWith('ANY ')).sort();
    expect(methods).toEqual(
      [
        'GET /',
        'GET /health',
        'GET /history',
        'GET /latest',
        'GET /models',
        'GET /models/report',
        'GET /openapi.json',
        'GET /version',
        'POST /predict',
      ].sort(),
    );
    // Every other method of a known path: the 405 function (one integration for all of them).
    expect(keys.filter((k) => k.startsWith('ANY ')).sort()).toEqual(
      methods.map((k) => `ANY ${k.split(' ')[1]}`).sort(),
    );
    const integrations = httpApi('AWS::ApiGatewayV2::Integration');
    expect(integrations).toHaveLength(methods.length + 1);
    for (const [, i] of integrations) {
      expect(i.Properties).toMatchObject({ IntegrationType: 'AWS_PROXY', PayloadFormatVersion: '2.0' });
    }
  });

  it('builds each route of the table (src/api/routes.ts): its function as described, its integration', () => {
    const routes = httpApi('AWS::ApiGatewayV2::Route');
    const integrations = Object.fromEntries(httpApi('AWS::ApiGatewayV2::Integration'));
    const deployed = DEPLOYED_ROUTES;
    expect(
      routes
        .map(([, r]) => r.Properties.RouteKey as string)
        .filter((k) => !k.startsWith('ANY '))
        .sort(),
    ).toEqual(deployed.map(routeKey).sort());
    expect(ROUTES.filter((r) => r.localOnly).map(routeKey)).toEqual(['GET /metrics']); // CloudWatch has them deployed
    for (const route of deployed) {
      const fn = stack.api.routeFunctions[route.id];
      expect(resourceOf(fn).Properties, route.id).toMatchObject({
        Description: `${routeKey(route)}: ${route.description}`,
        MemorySize: route.memoryMiB ?? 256,
        Timeout: route.timeoutS ?? 10,
      });
      const [, r] = routes.find(([, r]) => r.Properties.RouteKey === routeKey(route))!;
      const target = (r.Properties.Target as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
      const integrationId = (target[1] as { Ref: string }).Ref;
      expect(JSON.stringify(integrations[integrationId]?.Properties.IntegrationUri), route.id).toContain(
        `"${logicalId(fn)}"`,
      );
    }
  });

  it('GET / serves the dashboard page from the bundled handler, its script built beside the bundle', async () => {
    // The synthesized asset itself, so the text loader, the synth-time build and the handler are checked as deployed.
    const props = resourceOf(stack.api.routeFunctions.Dashboard).Properties;
    const dir = path.join(outdir, `asset.${(props.Code as { S3Key: string }).S3Key.replace(/\.zip$/, '')}`);
    const built = buildDashboard();
    expect(readFileSync(path.join(dir, DASHBOARD_FILES.script), 'utf8')).toBe(built.script);
    expect(readFileSync(path.join(dir, DASHBOARD_FILES.css), 'utf8')).toBe(built.css);
    // The bundle reads them; the builder (and esbuild) stay out of it.
    expect(readFileSync(path.join(dir, 'index.mjs'), 'utf8')).not.toContain('buildSync');

    // The handler reads its settings from the function's environment when loaded, as in Lambda.
    const env = (props.Environment as { Variables: Record<string, string> }).Variables;
    // WS_URL is the WebSocket API's generated URL (a reference until deployed): one as it resolves.
    Object.assign(process.env, env, { WS_URL: 'wss://abc123.execute-api.us-east-1.amazonaws.com/live' });
    const { handler } = (await import(pathToFileURL(path.join(dir, 'index.mjs')).href)) as {
      handler: (
        event: unknown,
        context: unknown,
      ) => Promise<{ statusCode: number; headers: Record<string, string>; body: string }>;
    };
    const res = await handler({ routeKey: 'GET /', rawPath: '/', headers: {} }, {});
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain(built.script.slice(0, 2000));
    const config = JSON.parse(
      /<script id="qw-config" type="application\/json">(.*?)<\/script>/s.exec(res.body)![1]!,
    );
    expect(config).toMatchObject({
      products: env.SYMBOLS!.split(','),
      deltaMs: Number(env.DELTA_MS),
      wsUrl: 'wss://abc123.execute-api.us-east-1.amazonaws.com/live',
    });
  });

  it('logs access on the default stage and throttles each route with its own limit from the route table', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
      StageName: '$default',
      AutoDeploy: true,
      AccessLogSettings: { DestinationArn: Match.anyValue(), Format: Match.stringLikeRegexp('requestId') },
      DefaultRouteSettings: { ThrottlingRateLimit: 10, ThrottlingBurstLimit: 20 },
      RouteSettings: Object.fromEntries([
        ...DEPLOYED_ROUTES.map((r) => [
          routeKey(r),
          { ThrottlingRateLimit: r.throttle.rateLimit, ThrottlingBurstLimit: r.throttle.burstLimit },
        ]),
        // The 405 answer of every path: the smallest limit.
        ...[...new Set(DEPLOYED_ROUTES.map((r) => r.path))].map((path) => [
          `ANY ${path}`,
          { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 },
        ]),
      ]),
    });
  });
});

describe('ECS services', () => {
  it('three ARM64 Fargate task definitions: ingestor, worker, trainer', () => {
    template.resourceCountIs('AWS::ECS::TaskDefinition', 3);
    template.resourceCountIs('AWS::ECS::Service', 2);
    template.allResourcesProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
    });
    const names = ofType('AWS::ECS::TaskDefinition').map(
      ([, t]) => (t.Properties.ContainerDefinitions as { Name: string }[])[0]?.Name,
    );
    expect(names.sort()).toEqual(['ingestor', 'trainer', 'worker']);
  });

  it('the ingestor may only put records on the stream, objects into the lake, QuoteWatch metrics, read the book verdicts and put the book-check lease', () => {
    const statements = statementsOfRole(logicalId(stack.ingestor.taskDefinition.taskRole));
    expect(actionsOf(statements)).toEqual(
      new Set([
        'kinesis:PutRecord',
        'kinesis:PutRecords',
        's3:PutObject',
        'cloudwatch:PutMetricData',
        'dynamodb:GetItem',
        'dynamodb:BatchGetItem',
        'dynamodb:PutItem',
      ]),
    );
    // The latest table: verdicts read, and of its items only the lease (partition key _bookcheck) written.
    const latestArn = { 'Fn::GetAtt': [logicalId(stack.storage.latestTable), 'Arn'] };
    const dynamo = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toEqual([
      { Effect: 'Allow', Action: ['dynamodb:BatchGetItem', 'dynamodb:GetItem'], Resource: latestArn },
      {
        Effect: 'Allow',
        Action: 'dynamodb:PutItem',
        Resource: latestArn,
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['_bookcheck'] } },
      },
    ]);
    const task = resourceOf(stack.ingestor.taskDefinition);
    expect(containerEnv(task).LATEST_TABLE).toEqual({ Ref: logicalId(stack.storage.latestTable) });
    const metrics = statements.find((s) => [s.Action].flat().includes('cloudwatch:PutMetricData'));
    expect((metrics as { Condition?: unknown } | undefined)?.Condition).toEqual({
      StringEquals: { 'cloudwatch:namespace': 'QuoteWatch' },
    });
    const kinesis = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('kinesis:')));
    const streamArn = { 'Fn::GetAtt': [logicalId(stack.marketStream.stream), 'Arn'] };
    expect(kinesis.map((s) => s.Resource)).toEqual([streamArn]);
  });

  it('the worker reads the stream but cannot write to it, and writes the latest table', () => {
    const actions = actionsOf(statementsOfRole(logicalId(stack.worker.taskDefinition.taskRole)));
    expect(actions).toContain('kinesis:GetRecords');
    expect(actions).toContain('dynamodb:PutItem');
    expect([...actions].filter((a) => a.startsWith('kinesis:Put'))).toEqual([]);
  });

  it('services run in public subnets with a public IP and no NAT gateway', () => {
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
    template.allResourcesProperties('AWS::ECS::Service', {
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'ENABLED' } },
    });
  });
});

describe('Training state machine', () => {
  it('trains, evaluates, then promotes only when the gate passed', () => {
    template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
    const sm = resourceOf(stack.training.stateMachine).Properties;
    // The definition is a Fn::Join; tokens sit inside JSON strings, so replacing them keeps valid JSON.
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const definition = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('')) as {
      StartAt: string;
      States: Record<string, Json>;
    };
    const { States } = definition;
    expect(definition.StartAt).toBe('WhichSlot?');
    expect(States.Prepare?.Next).toBe('ReserveVersion');
    expect(States.ReserveVersion?.Next).toBe('Train');
    expect(States.Train).toMatchObject({ Resource: 'arn:TOKEN:states:::ecs:runTask.sync', Next: 'Evaluate' });
    expect(States.Evaluate).toMatchObject({
      Resource: 'arn:TOKEN:states:::ecs:runTask.sync',
      Next: 'ReadEvaluation',
    });
    expect(States.ReadEvaluation?.Next).toBe('PassesGate?');
    const choice = States['PassesGate?'] as { Choices: Json[]; Default: string };
    const passes = { Variable: '$.evaluation.result.decision.promote', BooleanEquals: true };
    expect(choice.Choices).toEqual([
      { And: [passes, { Variable: '$.evaluation.result.active', IsNull: true }], Next: 'PromoteFirst' },
      { ...passes, Next: 'Promote' },
    ]);
    expect(choice.Default).toBe('NotifyKept');
  });

  it('`npm run train` runs this very definition: the one in the template, references aside', () => {
    const sm = resourceOf(stack.training.stateMachine).Properties;
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const deployed = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'REF')).join('')) as Json;
    // The local runner's reading of the template (bin/localTraining.ts synthesizes the same stack and reads it so).
    const local = trainingDefinition(stack, template.toJSON());
    expect(resolveDefinition(local.parts, () => 'REF')).toEqual(deployed);
    expect(local.parts.filter((p) => typeof p !== 'string').length).toBeGreaterThan(0);
    // Each failing trainer task is retried with backoff up to taskAttempts in all, then caught.
    const states = deployed.States as Record<string, Json>;
    expect(states.Train).toMatchObject({
      Retry: [{ ErrorEquals: expect.arrayContaining(['States.TaskFailed']), MaxAttempts: 2, BackoffRate: 2 }],
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'DescribeFailure', ResultPath: '$.failure' }],
    });
    expect(states.TrainingFailed).toMatchObject({ Type: 'Fail', ErrorPath: '$.failure.Error' });
  });

  it('promotes by compare-and-set on the active pointer, as the registry does', () => {
    const sm = resourceOf(stack.training.stateMachine).Properties;
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const { States } = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('')) as {
      States: Record<string, Json>;
    };
    // The slot's pointer, as the Slot-<set> state computed it (below).
    const key = { pk: { 'S.$': '$.slot.pointer' }, sk: { S: REGISTRY_KEYS.active('t').sk } };
    expect(States.PromoteFirst).toMatchObject({
      Resource: 'arn:TOKEN:states:::dynamodb:putItem',
      Parameters: {
        ConditionExpression: 'attribute_not_exists(pk)',
        Item: {
          ...key,
          version: { 'S.$': '$.version' },
          activatedAt: { 'S.$': '$$.State.EnteredTime' },
          previous: { L: [] },
        },
      },
      Next: 'NotifyPromoted',
    });
    // The replaced version goes first in the pointer's history, as activate() keeps it (rollback reads it).
    const replaced = { 'S.$': '$.evaluation.result.active.version' };
    expect(States.Promote).toMatchObject({
      Resource: 'arn:TOKEN:states:::dynamodb:updateItem',
      Parameters: {
        Key: key,
        UpdateExpression:
          'SET version = :new, activatedAt = :at, previous = list_append(:replaced, if_not_exists(previous, :none))',
        ConditionExpression: 'version = :current',
        ExpressionAttributeValues: {
          ':current': replaced,
          ':replaced': { L: [replaced] },
          ':new': { 'S.$': '$.version' },
        },
      },
      Next: 'NotifyPromoted',
    });
    // Only the Promote states write the pointer: the only tasks naming it; the only states besides the Slot-<set>
    // ones that compute it naming the pointer's partition at all.
    const naming = (st: Json) => /active#|\$\.slot\.pointer/.test(JSON.stringify(st.Parameters ?? {}));
    const pointerWriters = Object.entries(States)
      .filter(([, st]) => st.Type === 'Task' && naming(st))
      .map(([name]) => name);
    expect(pointerWriters.sort()).toEqual(['Promote', 'PromoteFirst']);
    const namers = Object.entries(States).filter(([, st]) => naming(st));
    expect(namers.map(([name]) => name).sort()).toEqual(
      ['Promote', 'PromoteFirst', ...MODEL_SETS.map((set) => `Slot-${set}`)].sort(),
    );
  });

  /** A States.Format('template', $.target) expression evaluated for `target`. */
  const formatFor = (expression: string, target: string) => {
    const m = /^States\.Format\('([^']*)', \$\.target\)$/.exec(expression);
    if (!m) throw new Error(`not a Format of $.target: ${expression}`);
    return m[1]!.replace('{}', target);
  };

  it("picks the run's slot from the input's set (absent: l2); the pointer key is the registry's own, per slot", () => {
    const sm = resourceOf(stack.training.stateMachine).Properties;
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const { StartAt, States } = JSON.parse(
      parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join(''),
    ) as { StartAt: string; States: Record<string, Json> };
    expect(StartAt).toBe('WhichSlot?');
    expect(States['WhichSlot?']).toMatchObject({
      Type: 'Choice',
      Choices: [
        // Absent first: comparing a missing $.set would be a runtime error.
        { Not: { Variable: '$.set', IsPresent: true }, Next: 'Slot-l2' },
        ...MODEL_SETS.map((set) => ({ Variable: '$.set', StringEquals: set, Next: `Slot-${set}` })),
      ],
      Default: 'UnknownSet',
    });
    for (const set of MODEL_SETS) {
      const slot = States[`Slot-${set}`]!;
      expect(slot, set).toMatchObject({ Type: 'Pass', ResultPath: '$.slot', Next: 'HasVersion?' });
      const params = slot.Parameters as { set: string; 'pointer.$': string };
      expect(params.set).toBe(set);
      // The registry's key for activate(target, version, env, set), for every target: one owner of the format.
      for (const target of TARGETS) {
        expect(formatFor(params['pointer.$'], target), `${target} ${set}`).toBe(
          REGISTRY_KEYS.active(target, set).pk,
        );
      }
    }
    // The l2 key and the ticker key differ in form; both are handled.
    expect((States['Slot-l2']!.Parameters as Json)['pointer.$']).toBe("States.Format('active#{}', $.target)");
    expect((States['Slot-ticker']!.Parameters as Json)['pointer.$']).toBe(
      "States.Format('active#{}.ticker', $.target)",
    );
    // Both ways to a version carry the slot; nothing downstream reads the input's own set.
    for (const name of ['Prepare', 'UseVersionTag']) {
      expect((States[name]!.Parameters as Json)['slot.$'], name).toBe('$.slot');
    }
    const afterSlot = Object.entries(States).filter(([name]) => !['WhichSlot?', 'UnknownSet'].includes(name));
    for (const [name, st] of afterSlot) {
      expect(JSON.stringify(st), name).not.toMatch(/"\$\.set"/);
    }
    // Another set fails the run, notified, before anything is claimed (no version: the claim failure's path).
    expect(States.UnknownSet).toMatchObject({
      Type: 'Pass',
      Parameters: { Error: 'QuoteWatch.UnknownSet', Cause: expect.stringContaining(MODEL_SETS.join(', ')) },
      ResultPath: '$.failure',
      Next: 'DescribeClaimFailure',
    });
  });

  it("passes the slot's set to both trainer tasks as TRAIN_SET in the container override", () => {
    const sm = resourceOf(stack.training.stateMachine).Properties;
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const { States } = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('')) as {
      States: Record<string, Json>;
    };
    for (const [name, step] of [
      ['Train', 'train'],
      ['Evaluate', 'evaluate'],
    ] as const) {
      const overrides = (
        States[name]!.Parameters as {
          Overrides: { ContainerOverrides: { Command: string[]; Environment: Json[] }[] };
        }
      ).Overrides.ContainerOverrides;
      expect(overrides, name).toHaveLength(1);
      expect(overrides[0]!.Command.at(-1)).toBe(step);
      expect(overrides[0]!.Environment, name).toEqual([
        { Name: 'TARGET', 'Value.$': '$.target' },
        { Name: 'TRAIN_SET', 'Value.$': '$.slot.set' },
        { Name: 'CANDIDATE_VERSION', 'Value.$': '$.version' },
      ]);
    }
  });

  /** The definition with each reference as REF<i>; ref(i) is the reference. */
  const definitionOf = () => {
    const sm = resourceOf(stack.training.stateMachine).Properties;
    const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const refs = parts.filter((p) => typeof p !== 'string');
    const definition = JSON.parse(
      parts.map((p) => (typeof p === 'string' ? p : `REF${refs.indexOf(p)}`)).join(''),
    ) as { StartAt: string; States: Record<string, Json> };
    return { ...definition, ref: (i: number) => refs[i] };
  };
  /** The states a state may go to next: Next, a Choice's branches and default, its catchers. */
  const successors = (st: Json): string[] => [
    ...(typeof st.Next === 'string' ? [st.Next] : []),
    ...((st.Choices as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
    ...(typeof st.Default === 'string' ? [st.Default] : []),
    ...((st.Catch as { Next: string }[] | undefined) ?? []).map((c) => c.Next),
  ];

  it('without a version in its input, claims the next version tag as claimNextVersion does (same keys, same form)', () => {
    const { StartAt, States } = definitionOf();
    expect(StartAt).toBe('WhichSlot?');
    expect(States['HasVersion?']).toEqual({
      Type: 'Choice',
      Choices: [{ Variable: '$.version', IsPresent: true, Next: 'Prepare' }],
      Default: 'NextVersionTag',
    });
    const series = VERSION_TAGS.series(FEATURE_VERSION);
    expect(States.NextVersionTag).toMatchObject({
      Resource: expect.stringMatching(/:states:::dynamodb:updateItem$/),
      Parameters: {
        Key: { pk: { 'S.$': '$.target' }, sk: { S: REGISTRY_KEYS.tagCounter('t', series).sk } },
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': { N: '1' } },
        ReturnValues: 'UPDATED_NEW',
      },
      ResultSelector: { 'tag.$': `States.Format('${VERSION_TAGS.tag(series, '{}')}', $.Attributes.n.N)` },
      ResultPath: '$.claim',
      Next: 'ClaimVersionTag',
    });
    expect(States.ClaimVersionTag).toMatchObject({
      Resource: expect.stringMatching(/:states:::dynamodb:putItem$/),
      Parameters: {
        Item: {
          pk: { 'S.$': '$.target' },
          sk: { 'S.$': `States.Format('${REGISTRY_KEYS.tagClaim('t', '{}').sk}', $.claim.tag)` },
        },
        ConditionExpression: 'attribute_not_exists(sk)',
      },
      Next: 'UseVersionTag',
    });
    // A taken tag (a version given by hand) takes the next n; any other failure is a failed claim.
    expect((States.ClaimVersionTag!.Catch as Json[])[0]).toEqual({
      ErrorEquals: ['DynamoDB.ConditionalCheckFailedException'],
      ResultPath: null,
      Next: 'NextVersionTag',
    });
    // Its retries never swallow the condition failure (States.TaskFailed would match it first).
    for (const name of ['NextVersionTag', 'ClaimVersionTag', 'ReserveVersion', 'Promote', 'PromoteFirst']) {
      for (const retry of States[name]!.Retry as { ErrorEquals: string[] }[]) {
        expect(retry.ErrorEquals, name).not.toContain('States.TaskFailed');
        expect(retry.ErrorEquals, name).not.toContain('States.ALL');
        expect(retry.ErrorEquals, name).not.toContain('DynamoDB.ConditionalCheckFailedException');
      }
    }
    expect(States.UseVersionTag).toEqual({
      Type: 'Pass',
      Comment: expect.any(String),
      Parameters: { 'target.$': '$.target', 'slot.$': '$.slot', 'version.$': '$.claim.tag' },
      Next: 'Train',
    });
    // A version given by hand is kept from the claims: its claim row, written whether or not it exists.
    expect(States.ReserveVersion).toMatchObject({
      Resource: expect.stringMatching(/:states:::dynamodb:updateItem$/),
      Parameters: {
        Key: {
          pk: { 'S.$': '$.target' },
          sk: { 'S.$': `States.Format('${REGISTRY_KEYS.tagClaim('t', '{}').sk}', $.version)` },
        },
        UpdateExpression: 'SET claimedAt = if_not_exists(claimedAt, :at)',
      },
    });
    expect(States.ReserveVersion).not.toHaveProperty('Parameters.ConditionExpression');
  });

  it('every end publishes to the notification topic: promoted, kept with the reasons, failed with error and cause', () => {
    const { States, ref } = definitionOf();
    const topic = { Ref: logicalId(stack.training.notificationTopic) };
    const terminals = Object.entries(States).filter(([, st]) => st.Type === 'Succeed' || st.Type === 'Fail');
    expect(terminals.map(([n]) => n).sort()).toEqual(['KeptActive', 'Promoted', 'TrainingFailed']);
    const publishers: Record<string, string[]> = {};
    for (const [terminal] of terminals) {
      publishers[terminal] = Object.entries(States)
        .filter(([, st]) => successors(st).includes(terminal))
        .map(([name]) => name);
    }
    expect(publishers).toEqual({
      Promoted: ['NotifyPromoted'],
      KeptActive: ['NotifyKept'],
      TrainingFailed: ['NotifyFailed'],
    });
    for (const [name, outcome] of [
      ['NotifyPromoted', 'promoted'],
      ['NotifyKept', 'kept'],
      ['NotifyFailed', 'failed'],
    ] as const) {
      const st = States[name]!;
      expect(st.Resource, name).toMatch(/:states:::sns:publish$/);
      const params = st.Parameters as Json;
      expect(ref(Number(String(params.TopicArn).slice(3))), name).toEqual(topic);
      expect(params.Subject).toBe(`QuoteWatch training: ${outcome}`);
      expect(params.MessageAttributes).toMatchObject({
        outcome: { DataType: 'String', StringValue: outcome },
      });
      expect(st.Retry, name).toBeDefined();
    }
    expect(TRAINING_OUTCOMES).toEqual(['promoted', 'kept', 'failed']);
    for (const name of ['NotifyPromoted', 'NotifyKept']) {
      expect((States[name]!.Parameters as Json).Message, name).toMatchObject({
        'target.$': '$.target',
        'set.$': '$.slot.set',
        'version.$': '$.version',
        'candidate.$': '$.evaluation.result.candidate',
        'active.$': '$.evaluation.result.active',
        'gain.$': '$.evaluation.result.decision.gain',
        'reasons.$': '$.evaluation.result.decision.reasons',
      });
    }
    // A failure's message is its record, the one written to failure.json.
    expect((States.NotifyFailed!.Parameters as Json)['Message.$']).toBe('$.record');
    // A notification that cannot be sent still fails the execution with the error it was about.
    expect(States.NotifyFailed!.Catch).toEqual([
      { ErrorEquals: ['States.ALL'], ResultPath: '$.notifyError', Next: 'TrainingFailed' },
    ]);
  });

  it("every caught failure is recorded as failure.json beside the run's files, then notified", () => {
    const { States, ref } = definitionOf();
    const catchers = Object.entries(States).flatMap(([name, st]) =>
      ((st.Catch as { ErrorEquals: string[]; Next: string }[] | undefined) ?? []).map((c) => ({
        name,
        ...c,
      })),
    );
    const allCatchers = catchers.filter((c) => c.ErrorEquals.includes('States.ALL'));
    // Every task but the notifications and the record itself: the version is known, so the record has a place.
    const withVersion = allCatchers.filter((c) => c.Next === 'DescribeFailure').map((c) => c.name);
    expect(withVersion.sort()).toEqual(
      ['Evaluate', 'Promote', 'PromoteFirst', 'ReadEvaluation', 'ReserveVersion', 'Train'].sort(),
    );
    const claiming = allCatchers.filter((c) => c.Next === 'DescribeClaimFailure').map((c) => c.name);
    expect(claiming.sort()).toEqual(['ClaimVersionTag', 'NextVersionTag']);
    const tasks = Object.entries(States).filter(([, st]) => st.Type === 'Task');
    for (const [name] of tasks) {
      if (name.startsWith('Notify') && name !== 'NotifyFailed') continue;
      expect(
        allCatchers.map((c) => c.name),
        name,
      ).toContain(name);
    }
    expect(States.DescribeFailure).toEqual({
      Type: 'Pass',
      Parameters: {
        outcome: 'failed',
        'target.$': '$.target',
        'version.$': '$.version',
        'execution.$': '$$.Execution.Id',
        'failedAt.$': '$$.State.EnteredTime',
        'error.$': '$.failure.Error',
        'cause.$': '$.failure.Cause',
      },
      ResultPath: '$.record',
      Next: 'RecordFailure',
    });
    expect(States.DescribeClaimFailure).toMatchObject({ ResultPath: '$.record', Next: 'NotifyFailed' });
    expect(States.DescribeClaimFailure).not.toHaveProperty('Parameters.version.$');
    expect(States.RecordFailure).toMatchObject({
      Resource: expect.stringMatching(/:states:::aws-sdk:s3:putObject$/),
      Parameters: {
        'Key.$': `States.Format('registry/{}/{}/${EXECUTION_FAILURE_RECORD}', $.record.target, $.record.version)`,
        'Body.$': '$.record',
        ContentType: 'application/json',
      },
      Next: 'NotifyFailed',
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'NotifyFailed' }],
    });
    const bucket = (States.RecordFailure!.Parameters as Json).Bucket as string;
    expect(ref(Number(bucket.slice(3)))).toEqual({ Ref: logicalId(stack.storage.modelBucket) });
    expect(States.NotifyFailed!.Next).toBe('TrainingFailed');
  });

  it('the topic is encrypted and refuses requests without TLS; the state machine may publish to it, write failure.json, claim tags', () => {
    const topicId = logicalId(stack.training.notificationTopic);
    // The AWS-managed SNS key (its alias's ARN in this account and region).
    expect(resources[topicId]!.Type).toBe('AWS::SNS::Topic');
    expect(JSON.stringify(resources[topicId]!.Properties.KmsMasterKeyId)).toContain('":alias/aws/sns"');
    const policies = ofType('AWS::SNS::TopicPolicy').filter(([, p]) =>
      JSON.stringify(p.Properties.Topics).includes(`"${topicId}"`),
    );
    expect(policies).toHaveLength(1);
    expect((policies[0]![1].Properties.PolicyDocument as { Statement: Json[] }).Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Principal: '*',
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        Resource: { Ref: topicId },
      }),
    );
    const statements = statementsOfRole(logicalId(stack.training.stateMachine.role));
    const on = (action: string) => statements.filter((st) => [st.Action].flat().includes(action));
    expect(on('sns:Publish').map((st) => st.Resource)).toEqual([{ Ref: topicId }]);
    const models = logicalId(stack.storage.modelBucket);
    expect(on('s3:putObject').map((st) => st.Resource)).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': [models, 'Arn'] }, `/registry/*/${EXECUTION_FAILURE_RECORD}`]] },
    ]);
    // The registry table only (the integration names it by an ARN built from its name): version tag claims and
    // the Promote states.
    const registry = `{"Ref":"${logicalId(stack.storage.registryTable)}"}`;
    for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem']) {
      const onTables = on(action).flatMap((st) => [st.Resource].flat());
      expect(onTables, action).toHaveLength(1);
      expect(JSON.stringify(onTables[0]), action).toContain(`:table/",${registry}`);
      // No leading-key condition: every slot's pointer ("active#<target>" and "active#<target>.ticker") is covered.
      for (const st of on(action)) expect(st, action).not.toHaveProperty('Condition');
    }
  });

  it('has no schedule unless -c trainingSchedule gives one', () => {
    template.resourceCountIs('AWS::Scheduler::Schedule', 0);
    expect(stack.training.schedules).toEqual([]);
    expect(stack.deployment.trainingSchedule).toBeUndefined();
  });
});

describe('Training schedule (-c trainingSchedule)', () => {
  const { app: scheduledApp, nag: scheduledNag } = unbundledApp('qw-cdk-schedule-');
  scheduledApp.node.setContext('trainingSchedule', 'cron(0 3 * * ? *)');
  const scheduled = new QuoteWatchStack(scheduledApp, 'Scheduled');
  const t = Template.fromStack(scheduled);
  const all = t.toJSON().Resources as Record<string, CfnResource>;
  const id = (c: IConstruct) => scheduled.getLogicalId(c.node.defaultChild as CfnElement);

  it('one schedule per slot (target x set) starts the state machine with {"target", "set"} and no version', () => {
    const schedules = Object.values(all).filter((r) => r.Type === 'AWS::Scheduler::Schedule');
    expect(schedules).toHaveLength(TARGETS.length * MODEL_SETS.length);
    expect(scheduled.training.schedules).toHaveLength(schedules.length);
    const sm = { Ref: id(scheduled.training.stateMachine) };
    const inputs = schedules.map((r) => {
      expect(r.Properties).toMatchObject({
        ScheduleExpression: 'cron(0 3 * * ? *)',
        State: 'ENABLED',
        FlexibleTimeWindow: { Mode: 'OFF' },
        Target: { Arn: sm },
      });
      return JSON.parse((r.Properties.Target as { Input: string }).Input) as Json;
    });
    expect(inputs).toEqual(TARGETS.flatMap((target) => MODEL_SETS.map((set) => ({ target, set }))));
    // The l2 slots' schedules keep their construct ids (so their logical ids) from before feature sets.
    expect(scheduled.training.schedules.map((x) => x.node.id)).toEqual(
      TARGETS.flatMap((target) => MODEL_SETS.map((set) => `Schedule-${slotKey(target, set)}`)),
    );
    expect(slotKey('t', 'l2')).toBe('t');
  });

  it("the scheduler's role may only start this state machine", () => {
    const [schedule] = Object.values(all).filter((r) => r.Type === 'AWS::Scheduler::Schedule');
    const roleArn = (schedule!.Properties.Target as { RoleArn: { 'Fn::GetAtt': [string, string] } }).RoleArn;
    const roleId = roleArn['Fn::GetAtt'][0];
    expect(JSON.stringify(all[roleId]!.Properties.AssumeRolePolicyDocument)).toContain(
      'scheduler.amazonaws.com',
    );
    const statements = Object.values(all)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((p) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: 'states:StartExecution',
        Resource: { Ref: id(scheduled.training.stateMachine) },
      },
    ]);
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(scheduledNag, scheduled)).toEqual([]);
  });

  it('a bad expression fails synth naming the key; `off` is no schedule', () => {
    const { app: bad } = unbundledApp('qw-cdk-schedule-bad-');
    bad.node.setContext('trainingSchedule', 'every day');
    expect(() => new QuoteWatchStack(bad, 'Bad')).toThrow(/-c trainingSchedule: invalid value "every day"/);
    const { app: off } = unbundledApp('qw-cdk-schedule-off-');
    off.node.setContext('trainingSchedule', 'off');
    const offStack = new QuoteWatchStack(off, 'Off');
    Template.fromStack(offStack).resourceCountIs('AWS::Scheduler::Schedule', 0);
    // The construct checks its prop with the same rule.
    const props = {
      cluster: scheduled.services.cluster,
      image: scheduled.worker.image,
      lakeBucket: scheduled.storage.lakeBucket,
      modelBucket: scheduled.storage.modelBucket,
      registryTable: scheduled.storage.registryTable,
    };
    expect(
      () => new TrainingPipeline(scheduled, 'BadSchedule', { ...props, schedule: 'cron(0 3 * * 1 *)' }),
    ).toThrow(
      /TrainingPipeline: invalid prop 'schedule': cron\(\.\.\.\): exactly one of day-of-month and day-of-week must be \?/,
    );
  });
});

describe('Observability', () => {
  it('one dashboard, and every alarm notifies the alarm topic', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    const alarms = ofType('AWS::CloudWatch::Alarm');
    expect(alarms.length).toBe(stack.observability.alarms.length);
    expect(alarms.length).toBeGreaterThanOrEqual(10);
    const topic = { Ref: logicalId(stack.observability.alarmTopic) };
    for (const [id, a] of alarms) expect(a.Properties.AlarmActions, id).toEqual([topic]);
  });
});

describe('props validation', () => {
  it('rejects a bad prop naming it, before creating any resource', () => {
    const scope = new Stack(new App(), 'Props');
    expect(() => new MarketStream(scope, 'S', { definition: { ...STREAM, shardCount: 0 } })).toThrow(
      /MarketStream: invalid prop 'definition\.shardCount'/,
    );
    expect(() => new Storage(scope, 'T', { lakeExpirationDays: 10 })).toThrow(InvalidPropError);
    expect(scope.node.children).toEqual([]);
  });

  it('checks core settings and the feed URL with the readers the processes use (src/config.ts)', () => {
    const app = new App();
    const core = { ...DEFAULT_CORE, symbols: ['BTC-USD', 'btc-eur'] };
    expect(() => new QuoteWatchStack(app, 'BadSymbols', { core })).toThrow(
      /QuoteWatchStack: invalid prop 'core': SYMBOLS: invalid value "BTC-USD,btc-eur"/,
    );
    expect(() => new QuoteWatchStack(app, 'BadTick', { core: { ...DEFAULT_CORE, tickMs: 5 } })).toThrow(
      /invalid prop 'core': TICK_MS: invalid value "5" \(must be >= 10\)/,
    );
    expect(() => new QuoteWatchStack(app, 'NoSymbols', { core: { ...DEFAULT_CORE, symbols: [] } })).toThrow(
      /invalid prop 'core': SYMBOLS: /,
    );
    expect(app.node.children).toEqual([]);
    expect(() => new QuoteWatchStack(app, 'BadFeed', { feedUrl: 'https://x' })).toThrow(
      /Ingestor: invalid prop 'feedUrl': FEED_URL: invalid value "https:\/\/x"/,
    );
  });
});
