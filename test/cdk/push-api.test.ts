/**
 * The dashboard's push in the deployed stack (lib/push-api.ts): API Gateway's WebSocket API built from the route
 * table's WEBSOCKET_ROUTES with its route selection, the authorizer #13's read-route choice implies, stage access
 * logs without the query string, the connections table with TTL, the worker told the management endpoint and
 * allowed only to POST on this API's @connections, the Dashboard function told the URL, an alarm on failed posts,
 * cdk-nag clean. One app: the default stack, and Stages whose context protects reads (JWT, IAM) or turns push off.
 * Lambda code is not bundled here (test/cdk/stack.test.ts covers it).
 */
import { Stage } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { WEBSOCKET_AUTHORIZER, WEBSOCKET_ROUTE_SELECTION, WEBSOCKET_ROUTES } from '../../src/api/routes.js';
import { TABLES } from '../../src/resources.js';
import { PUSH } from '../../src/telemetry/catalog.js';
import {
  type CfnResource,
  containerEnv,
  logicalIdIn,
  nagFindings,
  resourcesOf,
  type Statement,
  unbundledApp,
} from './support.js';

const { app, nag } = unbundledApp('qw-cdk-push-');
function stackWith(name: string, context: Record<string, string>): QuoteWatchStack {
  const stage = new Stage(app, name);
  for (const [k, v] of Object.entries(context)) stage.node.setContext(k, v);
  return new QuoteWatchStack(stage, 'QuoteWatch');
}
const plain = new QuoteWatchStack(app, 'QuoteWatch');
const jwt = stackWith('Jwt', {
  apiAuth: 'jwt',
  jwtIssuer: 'https://issuer.example.com',
  jwtAudience: 'quotewatch',
  publicReads: 'false',
});
const iam = stackWith('Iam', { publicReads: 'false' });
const off = stackWith('Off', { push: 'false' });

const resources = resourcesOf(Template.fromStack(plain));
const ofType = (r: Record<string, CfnResource>, type: string) =>
  Object.entries(r).filter(([, v]) => v.Type === type);
const idOf = logicalIdIn(plain);

/** The WebSocket API's own resources of a type (the HTTP API has routes and authorizers too). */
function ofPush(stack: QuoteWatchStack, r: Record<string, CfnResource>, type: string) {
  const apiId = logicalIdIn(stack)(stack.push!.api);
  return ofType(r, type).filter(
    ([, v]) => JSON.stringify(v.Properties.ApiId) === JSON.stringify({ Ref: apiId }),
  );
}
function routesOf(stack: QuoteWatchStack, r: Record<string, CfnResource>): Map<string, CfnResource> {
  return new Map(
    ofPush(stack, r, 'AWS::ApiGatewayV2::Route').map(([, v]) => [v.Properties.RouteKey as string, v]),
  );
}

describe('push: the WebSocket API (CDK)', () => {
  it('routes on $request.body.action, one Lambda integration per route of the table', () => {
    const [[apiId, api]] = ofType(resources, 'AWS::ApiGatewayV2::Api').filter(
      ([, v]) => v.Properties.ProtocolType === 'WEBSOCKET',
    ) as [[string, CfnResource]];
    expect(apiId).toBe(idOf(plain.push!.api));
    expect(api.Properties.RouteSelectionExpression).toBe(WEBSOCKET_ROUTE_SELECTION);
    const routes = routesOf(plain, resources);
    expect([...routes.keys()].sort()).toEqual(WEBSOCKET_ROUTES.map((r) => r.routeKey).sort());
    for (const def of WEBSOCKET_ROUTES) {
      const route = routes.get(def.routeKey)!;
      expect(route.Properties.ApiId).toEqual({ Ref: apiId });
      // Two-way routes answer the client (subscribe's snapshot, the errors).
      expect(route.Properties.RouteResponseSelectionExpression, def.routeKey).toBe(
        def.returnResponse ? '$default' : undefined,
      );
      const target = JSON.stringify(route.Properties.Target);
      const [integrationId] = ofType(resources, 'AWS::ApiGatewayV2::Integration').find(([id]) =>
        target.includes(id),
      )!;
      const integration = resources[integrationId]!;
      expect(integration.Properties.IntegrationType).toBe('AWS_PROXY');
      expect(JSON.stringify(integration.Properties.IntegrationUri)).toContain(
        idOf(plain.push!.routeFunctions[def.routeKey]!),
      );
    }
  });

  it('public with public reads; a REQUEST authorizer on the token query parameter with JWT; IAM otherwise', () => {
    expect(routesOf(plain, resources).get('$connect')!.Properties.AuthorizationType).toBe('NONE');
    expect(ofPush(plain, resources, 'AWS::ApiGatewayV2::Authorizer')).toEqual([]);

    const j = resourcesOf(Template.fromStack(jwt));
    const [[, authorizer]] = ofPush(jwt, j, 'AWS::ApiGatewayV2::Authorizer') as [[string, CfnResource]];
    expect(authorizer.Properties).toMatchObject({
      AuthorizerType: 'REQUEST',
      IdentitySource: [WEBSOCKET_AUTHORIZER.identitySource],
    });
    expect(JSON.stringify(authorizer.Properties.AuthorizerUri)).toContain(
      logicalIdIn(jwt)(jwt.push!.authorizerFunction!),
    );
    const fn = j[logicalIdIn(jwt)(jwt.push!.authorizerFunction!)]!;
    expect(fn.Properties.Environment).toMatchObject({
      Variables: { JWT_ISSUER: 'https://issuer.example.com', JWT_AUDIENCE: 'quotewatch' },
    });
    expect(routesOf(jwt, j).get('$connect')!.Properties.AuthorizationType).toBe('CUSTOM');
    // Only $connect is authorized, as API Gateway does it.
    expect(routesOf(jwt, j).get('subscribe')!.Properties.AuthorizationType).toBe('NONE');

    const i = resourcesOf(Template.fromStack(iam));
    expect(routesOf(iam, i).get('$connect')!.Properties.AuthorizationType).toBe('AWS_IAM');
    expect(ofPush(iam, i, 'AWS::ApiGatewayV2::Authorizer')).toEqual([]);
  });

  it('logs access on its stage without the query string, and throttles the stage', () => {
    const [[, stage]] = ofType(resources, 'AWS::ApiGatewayV2::Stage').filter(([id]) =>
      id.startsWith(idOf(plain.push!.api).replace(/Api.*$/, '')),
    ) as [[string, CfnResource]];
    const logs = stage.Properties.AccessLogSettings as { DestinationArn: unknown; Format: string };
    expect(JSON.stringify(logs.DestinationArn)).toContain(idOf(plain.push!.accessLogs));
    expect(logs.Format).toContain('$context.routeKey');
    expect(logs.Format).toContain('$context.connectionId');
    expect(logs.Format).not.toMatch(/querystring|token/i);
    expect(stage.Properties.DefaultRouteSettings).toMatchObject({
      ThrottlingRateLimit: 50,
      ThrottlingBurstLimit: 100,
    });
  });

  it('the connections table expires items by TTL; the handlers get it and the caps', () => {
    const table = resources[idOf(plain.storage.connectionsTable)]!;
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    const connect = resources[idOf(plain.push!.routeFunctions.$connect!)]!;
    const env = (connect.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(env[TABLES.connections.env]).toEqual({ Ref: idOf(plain.storage.connectionsTable) });
    expect(env).toMatchObject({ MAX_CONNECTIONS: '1000', MAX_CONNECTIONS_PER_IP: '20' });
    // Only the dashboard's origin may open a socket from a browser.
    expect(JSON.stringify(env.WS_ORIGINS)).toContain(idOf(plain.api.api));
  });

  it('the worker may only POST on this API stage @connections, and is told the endpoint', () => {
    const task = resources[idOf(plain.worker.taskDefinition)]!;
    const env = containerEnv(task);
    expect(JSON.stringify(env.PUSH_ENDPOINT)).toContain(idOf(plain.push!.api));
    expect(JSON.stringify(env.PUSH_ENDPOINT)).toMatch(/https:\/\/.*\/live/);
    expect(env[TABLES.connections.env]).toEqual({ Ref: idOf(plain.storage.connectionsTable) });
    const role = idOf(plain.worker.taskDefinition.taskRole);
    const statements = ofType(resources, 'AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes(`"${role}"`))
      .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
    const manage = statements.filter((s) => JSON.stringify(s.Action).includes('execute-api'));
    expect(manage).toHaveLength(1);
    expect(manage[0]!.Action).toBe('execute-api:ManageConnections');
    const resource = JSON.stringify(manage[0]!.Resource);
    expect(resource).toContain(idOf(plain.push!.api));
    expect(resource).toContain('/live/POST/@connections/*');
    // The Dashboard function hands the page the URL to subscribe to.
    const dashboard = resources[idOf(plain.api.routeFunctions.Dashboard)]!;
    expect(
      JSON.stringify((dashboard.Properties.Environment as { Variables: Json }).Variables.WS_URL),
    ).toMatch(/wss:\/\/.*\/live/);
  });

  it('alarms on failed posts', () => {
    const alarms = ofType(resources, 'AWS::CloudWatch::Alarm').filter(
      ([, a]) => a.Properties.MetricName === PUSH.failedPosts.name,
    );
    expect(alarms).toHaveLength(1);
    expect(alarms[0]![1].Properties).toMatchObject({
      Statistic: 'Sum',
      Threshold: 20,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [expect.anything()],
    });
  });

  it('is absent with -c push=false', () => {
    const r = resourcesOf(Template.fromStack(off));
    expect(off.push).toBeUndefined();
    expect(
      ofType(r, 'AWS::ApiGatewayV2::Api').filter(([, v]) => v.Properties.ProtocolType === 'WEBSOCKET'),
    ).toEqual([]);
    expect(containerEnv(r[logicalIdIn(off)(off.worker.taskDefinition)]!).PUSH_ENDPOINT).toBeUndefined();
  });

  it('cdk-nag reports nothing unacknowledged, public or protected', () => {
    for (const stack of [plain, jwt, iam]) expect(nagFindings(nag, stack.push!)).toEqual([]);
  });
});

type Json = Record<string, unknown>;
