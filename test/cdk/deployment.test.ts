/**
 * The stack as a careful team deploys it, by context (`-c key=value`, read by src/config.ts
 * readDeploymentContext): API protection, least privilege per role, the training pipeline's infrastructure,
 * encrypted alarms, secrets, container health checks and images, scale by context, and the cost model's
 * inventory against what is synthesized. Fine-grained assertions (no template snapshot); cdk-nag over every
 * variant; Lambda code not bundled (test/cdk/stack.test.ts covers it).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { type CfnElement, Duration, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { describe, expect, it } from 'vitest';
import { COINBASE_SECRET_FIELDS, HEALTH_CHECK } from '../../lib/fargate-services.js';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import {
  STATE_MACHINE_WILDCARD_ACTIONS,
  TRAINING_OVERHEAD,
  trainerTaskTimeout,
} from '../../lib/training-pipeline.js';
import { CORS_POLICY, DEPLOYED_ROUTES as ROUTES, routeKey } from '../../src/api/routes.js';
import { readDeploymentContext } from '../../src/config.js';
import { inventory } from '../../src/cost/model.js';
import { TARGETS } from '../../src/model/types.js';
import { NAMESPACE } from '../../src/telemetry/catalog.js';
import {
  type CfnResource,
  type Json,
  nagFindings,
  resourcesOf,
  type Statement,
  unbundledApp,
} from './support.js';

function synth(context: Record<string, string> = {}) {
  const { app, nag } = unbundledApp('qw-cdk-deploy-');
  for (const [k, v] of Object.entries(context)) app.node.setContext(k, v);
  const stack = new QuoteWatchStack(app, 'QuoteWatch');
  const template = Template.fromStack(stack);
  const resources = resourcesOf(template);
  const id = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
  const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
  /** Every statement of the policies attached to a role, by the role's logical id. */
  const statements = (roleId: string): Statement[] =>
    ofType('AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(`"${roleId}"`))
      .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
  return { app, nag, stack, template, resources, id, ofType, statements };
}

const actions = (s: Statement[]) => s.flatMap((x) => [x.Action].flat()).sort();
/** The logical ids a statement's resources refer to (Ref / GetAtt / inside Fn::Join), or the literal. */
function resourceRefs(st: Statement): string[] {
  return [st.Resource].flat().map((r) => {
    const text = JSON.stringify(r);
    const refs = [...text.matchAll(/"(?:Ref|Fn::GetAtt)":\s*(?:"([A-Za-z0-9]+)"|\["([A-Za-z0-9]+)")/g)].map(
      (m) => m[1] ?? m[2],
    );
    const suffix = /"(\/[^"]*)"\]\]\}$/.exec(text)?.[1] ?? '';
    return refs.length ? `${[...new Set(refs)].join('+')}${suffix}` : String(r);
  });
}

/** Acknowledgements (rule id and reason) recorded under a construct, by construct path. */
function acknowledgements(scope: IConstruct): { path: string; id: string; reason: string }[] {
  return scope.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) => Object.entries(m.data as Record<string, string>))
      // Recorded under a qualified id ("Annotation::AwsSolutions-APIG4"): keep the rule's own.
      .map(([id, reason]) => ({ path: c.node.path, id: id.replace(/^[A-Za-z]+::/, ''), reason })),
  );
}

const defaults = synth();

/** The paths that get an ANY (405) route. */
const PATHS = [...new Set(ROUTES.map((r) => r.path))];

describe('API protection', () => {
  const s = defaults;
  const routesByKey = Object.fromEntries(
    s.ofType('AWS::ApiGatewayV2::Route').map(([, r]) => [r.Properties.RouteKey as string, r.Properties]),
  );

  it('puts POST /predict behind the IAM authorizer and leaves the read routes public by default', () => {
    for (const route of ROUTES) {
      expect(routesByKey[routeKey(route)]?.AuthorizationType, routeKey(route)).toBe(
        route.access === 'protected' ? 'AWS_IAM' : 'NONE',
      );
    }
    expect(ROUTES.filter((r) => r.access === 'protected').map(routeKey)).toEqual(['POST /predict']);
    // Another method on a known path reaches the 405 function, public like the reads.
    for (const path of PATHS) expect(routesByKey[`ANY ${path}`]?.AuthorizationType, path).toBe('NONE');
  });

  it('acknowledges APIG4 exactly on the public routes, each reason naming its route and limit', () => {
    // The HTTP API's (the WebSocket API's are test/cdk/push-api.test.ts's).
    const all = acknowledgements(s.stack.api).filter((a) => a.id === 'AwsSolutions-APIG4');
    const anyRoutes = all.filter((a) => a.reason.startsWith('ANY '));
    expect(anyRoutes.map((a) => a.reason.split(' ')[1]).sort()).toEqual([...PATHS].sort());
    const apig4 = all.filter((a) => !a.reason.startsWith('ANY '));
    const publicRoutes = ROUTES.filter((r) => r.access === 'read');
    expect(apig4.map((a) => a.path).sort()).toEqual(
      publicRoutes.map((r) => s.stack.api.routes[r.id].node.path).sort(),
    );
    for (const r of publicRoutes) {
      const ack = apig4.find((a) => a.path === s.stack.api.routes[r.id].node.path)!;
      expect(ack.reason).toContain(`${routeKey(r)} is public by choice`);
      expect(ack.reason).toContain(`${r.throttle.rateLimit}/s, burst ${r.throttle.burstLimit}`);
    }
  });

  it('reserves concurrency for /predict, and only there', () => {
    for (const route of ROUTES) {
      const fn = s.resources[s.id(s.stack.api.routeFunctions[route.id])]!;
      expect(fn.Properties.ReservedConcurrentExecutions, route.id).toBe(route.reservedConcurrency);
    }
    expect(ROUTES.find((r) => r.id === 'Predict')?.reservedConcurrency).toBe(5);
  });

  it('no CORS by default (the dashboard is same-origin); -c corsOrigins lets those origins call, with the one policy', () => {
    const api = () => s.ofType('AWS::ApiGatewayV2::Api')[0]![1].Properties;
    expect(api().CorsConfiguration).toBeUndefined();
    const cors = synth({ corsOrigins: 'https://app.example.com,http://localhost:5173' });
    expect(cors.ofType('AWS::ApiGatewayV2::Api')[0]![1].Properties.CorsConfiguration).toEqual({
      AllowOrigins: ['https://app.example.com', 'http://localhost:5173'],
      AllowMethods: [...CORS_POLICY.allowMethods],
      AllowHeaders: [...CORS_POLICY.allowHeaders],
      MaxAge: CORS_POLICY.maxAgeS,
    });
    expect(() => synth({ corsOrigins: 'app.example.com' })).toThrow(/-c corsOrigins/);
  });

  it('-c apiAuth=jwt: a JWT authorizer for the issuer and audience; -c publicReads=false puts every route behind it', () => {
    const jwt = synth({
      apiAuth: 'jwt',
      jwtIssuer: 'https://auth.example.com/',
      jwtAudience: 'quotewatch,dashboard',
      publicReads: 'false',
      reservedConcurrency: 'false',
    });
    // The HTTP API's (the WebSocket API's REQUEST authorizer: test/cdk/push-api.test.ts).
    const httpApi = { Ref: jwt.id(jwt.stack.api.api) };
    const ofHttpApi = (type: string) =>
      jwt.ofType(type).filter(([, r]) => JSON.stringify(r.Properties.ApiId) === JSON.stringify(httpApi));
    const authorizers = ofHttpApi('AWS::ApiGatewayV2::Authorizer');
    expect(authorizers).toHaveLength(1);
    const [authorizerId, authorizer] = authorizers[0] as [string, CfnResource];
    expect(authorizer.Properties).toMatchObject({
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: 'https://auth.example.com/', Audience: ['quotewatch', 'dashboard'] },
    });
    const routes = ofHttpApi('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    expect(routes).toHaveLength(ROUTES.length + PATHS.length);
    for (const r of routes)
      expect(r).toMatchObject({ AuthorizationType: 'JWT', AuthorizerId: { Ref: authorizerId } });
    expect(acknowledgements(jwt.stack.api).filter((a) => a.id === 'AwsSolutions-APIG4')).toEqual([]);
    for (const [, fn] of jwt.ofType('AWS::Lambda::Function'))
      expect(fn.Properties.ReservedConcurrentExecutions).toBeUndefined();
    expect(nagFindings(jwt.nag, jwt.stack)).toEqual([]);
  });

  it('rejects a JWT authorizer without issuer or audience, naming the key', () => {
    expect(() => readDeploymentContext({ apiAuth: 'jwt', jwtAudience: 'x' })).toThrow(
      /^-c jwtIssuer: required/,
    );
    expect(() => readDeploymentContext({ apiAuth: 'jwt', jwtIssuer: 'https://i/' })).toThrow(
      /^-c jwtAudience: required/,
    );
  });
});

describe('least privilege: every role names only the resources it needs', () => {
  const s = defaults;
  const st = s.stack;
  const lake = s.id(st.storage.lakeBucket);
  const models = s.id(st.storage.modelBucket);
  const stream = s.id(st.marketStream.stream);
  const [latest, registry, checkpoints] = [
    st.storage.latestTable,
    st.storage.registryTable,
    st.storage.checkpointTable,
  ].map(s.id);

  /**
   * The role names only `allowed` resources; a long-running task may also PutMetricData, whose only resource is
   * "*" (the action has no ARN), held to QuoteWatch's namespace by a condition.
   */
  const expectResources = (roleId: string, allowed: string[], metrics = false) => {
    const all = s.statements(roleId);
    const isMetrics = (x: (typeof all)[number]) => actions([x]).join() === 'cloudwatch:PutMetricData';
    const refs = all.filter((x) => !isMetrics(x)).flatMap(resourceRefs);
    expect([...new Set(refs)].sort()).toEqual([...new Set(allowed)].sort());
    const metricStatements = all.filter(isMetrics);
    expect(metricStatements, 'PutMetricData').toHaveLength(metrics ? 1 : 0);
    for (const x of metricStatements) {
      expect(x).toMatchObject({
        Resource: '*',
        Condition: { StringEquals: { 'cloudwatch:namespace': NAMESPACE } },
      });
    }
  };

  it('ingestor: PutRecords on the stream, PutObject under snapshots/ and archive/, the latest table (book check)', () => {
    expectResources(
      s.id(st.ingestor.taskDefinition.taskRole),
      [stream, `${lake}/snapshots/*`, `${lake}/archive/*`, latest!],
      true,
    );
  });

  it('worker: reads the stream, writes its lake zones, reads snapshots/, reads models and the registry', () => {
    const role = s.id(st.worker.taskDefinition.taskRole);
    expectResources(
      role,
      [
        stream,
        latest!,
        checkpoints!,
        registry!,
        `${lake}/raw/*`,
        `${lake}/features/*`,
        `${lake}/labels/*`,
        `${lake}/predictions/*`,
        `${lake}/corrections/*`,
        `${lake}/deadletter/*`,
        `${lake}/snapshots/*`,
        `${models}/registry/*`,
        models,
        // Push: the connections table, and POST on this WebSocket API's @connections (test/cdk/push-api.test.ts).
        s.id(st.storage.connectionsTable),
        `${s.id(st.push!.api)}/live/POST/@connections/*`,
      ],
      true,
    );
    const s3 = s.statements(role).filter((x) => actions([x]).some((a) => a.startsWith('s3:')));
    const onSnapshots = s3.filter((x) => resourceRefs(x).includes(`${lake}/snapshots/*`));
    expect(actions(onSnapshots)).toEqual(['s3:GetObject']);
    // No read of the archive, no write to the snapshots, no ListBucket on the lake, no delete anywhere.
    expect(actions(s3).filter((a) => /Delete|\*/.test(a))).toEqual([]);
  });

  it('trainer: reads features/, labels/, corrections/ and the registry; writes version rows, never the active pointer', () => {
    const role = s.id(st.training.taskDefinition.taskRole);
    expectResources(role, [
      `${lake}/features/*`,
      `${lake}/labels/*`,
      `${lake}/corrections/*`,
      lake,
      `${models}/registry/*`,
      models,
      registry!,
    ]);
    const writes = s
      .statements(role)
      .filter((x) => actions([x]).some((a) => /dynamodb:(Put|Update|Delete|BatchWrite)/.test(a)));
    expect(writes).toEqual([
      {
        Effect: 'Allow',
        Action: 'dynamodb:PutItem',
        Resource: { 'Fn::GetAtt': [registry, 'Arn'] },
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [...TARGETS] } },
      },
    ]);
  });

  it("state machine: the Promote states' conditional writes on the registry (PutItem for a first pointer, UpdateItem keeping its history); its * statement is what its acknowledgement names", () => {
    const role = s.id(st.training.stateMachine.role);
    const all = s.statements(role);
    const onRegistry = all.filter((x) => resourceRefs(x).includes(registry!));
    expect(actions(onRegistry)).toEqual(['dynamodb:PutItem', 'dynamodb:UpdateItem']);
    const wildcard = all.filter((x) => JSON.stringify(x.Resource) === '"*"');
    expect(actions(wildcard)).toEqual([...STATE_MACHINE_WILDCARD_ACTIONS].sort());
    const ack = acknowledgements(st.training.stateMachine.role).find(
      (a) => a.id === 'AwsSolutions-IAM5[Resource::*]',
    );
    for (const action of STATE_MACHINE_WILDCARD_ACTIONS) expect(ack?.reason, action).toContain(action);
  });

  it('API functions: the read routes read, /predict reads models and the registry; none writes', () => {
    for (const route of ROUTES) {
      const role = s.id(st.api.routeFunctions[route.id].role!);
      const acts = actions(s.statements(role));
      expect(
        acts.filter(
          (a) => /Put|Update|Delete|Write/.test(a) && !a.startsWith('logs:') && !a.startsWith('xray:'),
        ),
        route.id,
      ).toEqual([]);
    }
  });
});

describe('training pipeline infrastructure', () => {
  const s = defaults;
  const sm = s.resources[s.id(s.stack.training.stateMachine)]!.Properties;
  const parts = (sm.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
  const definition = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'TOKEN')).join('')) as {
    TimeoutSeconds: number;
    States: Record<string, Json & { Retry?: { MaxAttempts?: number }[] }>;
  };
  const runTasks = Object.entries(definition.States).filter(([, st]) =>
    String(st.Resource).includes(':ecs:runTask'),
  );

  it('sizes each trainer task from the measured training time on its CPU', () => {
    const expected = trainerTaskTimeout(1024, 4096);
    expect(s.stack.training.taskTimeout.toSeconds()).toBe(expected.toSeconds());
    expect(expected.toMinutes()).toBeGreaterThanOrEqual(15);
    for (const [name, st] of runTasks) expect(st.TimeoutSeconds, name).toBe(expected.toSeconds());
  });

  it('times out the execution no sooner than both tasks at their timeout on every attempt', () => {
    expect(runTasks.map(([n]) => n).sort()).toEqual(['Evaluate', 'Train']);
    // Whatever Retry the definition has (the models issue owns it), the timeout covers it.
    const worst = runTasks.reduce((sum, [, st]) => {
      const retries = Math.max(0, ...(st.Retry ?? []).map((r) => r.MaxAttempts ?? 3));
      expect(retries + 1).toBeLessThanOrEqual(s.stack.training.taskAttempts);
      return sum + (st.TimeoutSeconds as number) * s.stack.training.taskAttempts;
    }, 0);
    expect(definition.TimeoutSeconds).toBe(worst + TRAINING_OVERHEAD.toSeconds());
    expect(definition.TimeoutSeconds).toBeGreaterThanOrEqual(worst);
  });

  it('gives a larger trainer a longer timeout, in whole 5 minutes, never under 15', () => {
    const small = trainerTaskTimeout(1024, 4096);
    const big = trainerTaskTimeout(1024, 30_720);
    expect(big.toSeconds()).toBeGreaterThan(small.toSeconds());
    for (const t of [small, big, trainerTaskTimeout(4096, 8192)]) {
      expect(t.toMinutes() % 5).toBe(0);
      expect(t.toSeconds()).toBeGreaterThanOrEqual(Duration.minutes(15).toSeconds());
    }
  });
});

describe('alarms encrypted, secrets as secrets', () => {
  it('encrypts the alarm topic with a rotated customer-managed key CloudWatch may use', () => {
    const s = defaults;
    const topic = s.resources[s.id(s.stack.observability.alarmTopic)]!;
    const keyId = s.id(s.stack.observability.alarmKey);
    expect(topic.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    const key = s.resources[keyId]!;
    expect(key.Properties.EnableKeyRotation).toBe(true);
    const statements = (key.Properties.KeyPolicy as { Statement: (Statement & { Principal: Json })[] })
      .Statement;
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      }),
    );
  });

  it('-c coinbaseKeySecret: the CDP key reaches the ingestor as container secrets, readable by its execution role only', () => {
    const s = synth({ coinbaseKeySecret: 'quotewatch/cdp-key' });
    const task = s.resources[s.id(s.stack.ingestor.taskDefinition)]!;
    const [container] = task.Properties.ContainerDefinitions as {
      Secrets: { Name: string; ValueFrom: unknown }[];
      Environment: { Name: string }[];
    }[];
    expect(container!.Secrets.map((x) => x.Name).sort()).toEqual(Object.keys(COINBASE_SECRET_FIELDS).sort());
    for (const x of container!.Secrets) {
      expect(JSON.stringify(x.ValueFrom)).toContain(`secret:quotewatch/cdp-key`);
      expect(JSON.stringify(x.ValueFrom)).toContain(
        `:${COINBASE_SECRET_FIELDS[x.Name as keyof typeof COINBASE_SECRET_FIELDS]}::`,
      );
    }
    expect(container!.Environment.map((e) => e.Name)).not.toContain('COINBASE_API_PRIVATE_KEY');
    const execRole = s.id(s.stack.ingestor.taskDefinition.executionRole!);
    const secretReads = s
      .statements(execRole)
      .filter((x) => actions([x]).includes('secretsmanager:GetSecretValue'));
    expect(secretReads).toHaveLength(1);
    expect(JSON.stringify(secretReads[0]!.Resource)).toContain('secret:quotewatch/cdp-key-??????');
    // Neither the worker's nor the task roles can read it.
    for (const role of [s.stack.ingestor.taskDefinition.taskRole, s.stack.worker.taskDefinition.taskRole]) {
      expect(actions(s.statements(s.id(role))).filter((a) => a.startsWith('secretsmanager:'))).toEqual([]);
    }
    expect(nagFindings(s.nag, s.stack)).toEqual([]);
  });
});

describe('containers', () => {
  it('both services run the liveness health check with a start period sized for their start-up', () => {
    const s = defaults;
    const check = (svc: { taskDefinition: IConstruct }) =>
      (
        s.resources[s.id(svc.taskDefinition)]!.Properties.ContainerDefinitions as {
          HealthCheck: Json;
          Name: string;
        }[]
      )[0]!;
    for (const [svc, start] of [
      [s.stack.ingestor, 60],
      [s.stack.worker, 180],
    ] as const) {
      const c = check(svc);
      expect(c.HealthCheck).toEqual({
        Command: [...HEALTH_CHECK.command, c.Name],
        Interval: 30,
        Timeout: 5,
        Retries: 3,
        StartPeriod: start,
      });
    }
  });

  it('runs the worker on Fargate Spot and the ingestor on demand; -c workerCapacity=on-demand moves the worker', () => {
    const props = (s: ReturnType<typeof synth>, svc: { service: IConstruct }) =>
      s.resources[s.id(svc.service)]!.Properties;
    const spot = [{ CapacityProvider: 'FARGATE_SPOT', Weight: 1 }];
    expect(props(defaults, defaults.stack.worker).CapacityProviderStrategy).toEqual(spot);
    expect(props(defaults, defaults.stack.worker).LaunchType).toBeUndefined();
    expect(props(defaults, defaults.stack.ingestor).LaunchType).toBe('FARGATE');
    expect(props(defaults, defaults.stack.ingestor).CapacityProviderStrategy).toBeUndefined();
    // The cluster offers both providers, or the Spot strategy cannot place the task.
    const [assoc] = defaults.ofType('AWS::ECS::ClusterCapacityProviderAssociations');
    expect(assoc?.[1].Properties.CapacityProviders).toEqual(
      expect.arrayContaining(['FARGATE', 'FARGATE_SPOT']),
    );
    const onDemand = synth({ workerCapacity: 'on-demand' });
    expect(props(onDemand, onDemand.stack.worker).LaunchType).toBe('FARGATE');
    expect(props(onDemand, onDemand.stack.worker).CapacityProviderStrategy).toBeUndefined();
    expect(() => synth({ workerCapacity: 'cheap' })).toThrow(/workerCapacity.*expected spot or on-demand/);
  });

  it('builds both images from the base image of -c baseImage; a production synth needs it pinned by digest', () => {
    const pinned = `node:22-slim@sha256:${'a'.repeat(64)}`;
    const s = synth({ prod: 'true', baseImage: pinned });
    const assembly = s.app.synth();
    const manifest = JSON.parse(
      readFileSync(path.join(assembly.directory, 'QuoteWatch.assets.json'), 'utf8'),
    ) as {
      dockerImages: Record<
        string,
        { source: { dockerFile: string; dockerBuildArgs: Json; platform: string } }
      >;
    };
    const images = Object.values(manifest.dockerImages).map((i) => i.source);
    expect(images.map((i) => i.dockerFile).sort()).toEqual([
      'containers/ingestor/Dockerfile',
      'containers/worker/Dockerfile',
    ]);
    for (const i of images)
      expect(i).toMatchObject({ dockerBuildArgs: { BASE_IMAGE: pinned }, platform: 'linux/arm64' });
    expect(() => synth({ prod: 'true' })).toThrow(
      /invalid prop 'context': -c baseImage: a production synth \(-c prod=true\) needs the base image pinned by digest/,
    );
    expect(() => synth({ prod: 'true', baseImage: 'node:22-slim@sha256:abc' })).toThrow(/-c baseImage/);
  });
});

describe('scale by context', () => {
  const three = synth({ products: 'BTC-USD,ETH-USD,SOL-USD', shards: '3' });

  it('-c products=... -c shards=3 sizes the stream, the workers, their env and the capacity alarms', () => {
    const { template, stack } = three;
    template.hasResourceProperties('AWS::Kinesis::Stream', { ShardCount: 3 });
    const worker = three.resources[three.id(stack.worker.service)]!;
    expect(worker.Properties.DesiredCount).toBe(3);
    const env = (t: IConstruct) =>
      Object.fromEntries(
        (
          three.resources[three.id(t)]!.Properties.ContainerDefinitions as {
            Environment: { Name: string; Value: unknown }[];
          }[]
        )[0]!.Environment.map((e) => [e.Name, e.Value]),
      );
    expect(env(stack.worker.taskDefinition).SYMBOLS).toBe('BTC-USD,ETH-USD,SOL-USD');
    expect(env(stack.ingestor.taskDefinition).SYMBOLS).toBe('BTC-USD,ETH-USD,SOL-USD');
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'IncomingRecords',
      Threshold: Math.round(0.8 * 3 * 1000 * 60),
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'IncomingBytes',
      Threshold: Math.round(0.8 * 3 * 1024 * 1024 * 60),
    });
    // The Glue catalog projects the same products.
    expect(JSON.stringify(three.ofType('AWS::Glue::Table'))).toContain('BTC-USD,ETH-USD,SOL-USD');
    expect(nagFindings(three.nag, stack)).toEqual([]);
  });

  it.each([
    [{ shards: '0' }, /-c shards: invalid value "0" \(must be >= 1\)/],
    [
      { products: 'BTC-USD,btc' },
      /-c products: invalid value "BTC-USD,btc" \(expected products like BTC-USD\)/,
    ],
    [{ shards: '2', workers: '3' }, /-c workers: invalid value "3" \(must be <= 2\)/],
    [{ consumer: 'push' }, /-c consumer: invalid value "push"/],
    [{ shard: '3' }, /-c shard: unknown context key/],
    [{ workerCpu: '256', workerMemory: '4096' }, /-c workerMemory: .*expected one of 512, 1024, 2048/],
    [{ snapshotRetentionDays: '1' }, /-c snapshotRetentionDays: 1 is shorter than the stream retention/],
  ])('fails synth on %o, naming the key', (context, message) => {
    expect(() => synth(context)).toThrow(message);
  });
});

describe('the cost model prices what is synthesized', () => {
  const cases: Record<string, string>[] = [
    {},
    { consumer: 'fanout', ingestors: '2' },
    { products: 'BTC-USD,ETH-USD,SOL-USD,XRP-USD,DOGE-USD,ADA-USD,AVAX-USD,LINK-USD,LTC-USD,DOT-USD' },
    { dynamoCapacity: 'on-demand', coinbaseKeySecret: 'cdp' },
  ];
  for (const context of cases) {
    it(`inventory of ${JSON.stringify(context)}`, () => {
      const s = Object.keys(context).length === 0 ? defaults : synth(context);
      const d = s.stack.deployment;
      const inv = inventory(d);
      expect(inv.shards).toBe(s.ofType('AWS::Kinesis::Stream')[0]![1].Properties.ShardCount as number);
      expect(inv.fanoutConsumers).toBe(s.ofType('AWS::Kinesis::StreamConsumer').length);
      const policies = s.ofType('AWS::ApplicationAutoScaling::ScalingPolicy').length;
      expect(inv.autoScalingPolicies).toBe(policies);
      // Each target tracking policy keeps two alarms CloudWatch bills like the stack's own.
      expect(inv.alarms).toBe(s.ofType('AWS::CloudWatch::Alarm').length + 2 * policies);
      expect(inv.dashboards).toBe(s.ofType('AWS::CloudWatch::Dashboard').length);
      expect(inv.kmsKeys).toBe(s.ofType('AWS::KMS::Key').length);
      for (const task of inv.tasks) {
        const svc = task.name === 'worker' ? s.stack.worker : s.stack.ingestor;
        const def = s.resources[s.id(svc.taskDefinition)]!.Properties;
        expect([Number(def.Cpu), Number(def.Memory)], task.name).toEqual([task.cpu, task.memoryMiB]);
        expect(s.resources[s.id(svc.service)]!.Properties.DesiredCount, task.name).toBe(task.count);
      }
      for (const key of ['latest', 'checkpoints'] as const) {
        const table = s.resources[s.id(s.stack.storage.tables[key])]!.Properties;
        expect(table.ProvisionedThroughput, key).toEqual(
          d.dynamoCapacity === 'provisioned'
            ? { ReadCapacityUnits: d.tables[key].readUnits, WriteCapacityUnits: d.tables[key].writeUnits }
            : undefined,
        );
      }
      expect(s.template.findResources('AWS::Lambda::Function', Match.anyValue())).toBeDefined();
    });
  }
});
