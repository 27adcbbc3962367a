import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  type IWebSocketRouteAuthorizer,
  LogGroupLogDestination,
  WebSocketApi,
  type WebSocketRoute,
  WebSocketStage,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketIamAuthorizer, WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct, type IConstruct } from 'constructs';
import {
  WEBSOCKET_AUTHORIZER,
  WEBSOCKET_ROUTE_SELECTION,
  WEBSOCKET_ROUTES,
  type WebSocketBinding,
  type WebSocketRouteDef,
} from '../src/api/routes.js';
import type { ApiAccessSettings, CoreSettings, PushSettings } from '../src/config.js';
import { TABLES } from '../src/resources.js';
import { QuoteWatchFunction } from './house-function.js';
import { acknowledge, acknowledgeWildcardResource } from './nag.js';
import { InvalidPropError, requireCoreSettings, requireInt } from './validate.js';

export interface PushApiProps {
  readonly core: CoreSettings;
  /** The open connections (src/storage/connections.ts). */
  readonly connectionsTable: ITable;
  /** subscribe answers with the current snapshots. */
  readonly latestTable: ITable;
  /** Who may connect follows the read routes (`-c publicReads`, `-c apiAuth`). */
  readonly access: ApiAccessSettings;
  readonly push: PushSettings;
  /** The browser origins $connect accepts: the dashboard's (the HTTP API's origin). */
  readonly origins: readonly string[];
  /** The stage's throttle over every route. @default 50 rps, burst 100 */
  readonly throttle?: { rateLimit: number; burstLimit: number };
  /** @default one month */
  readonly logRetentionDays?: RetentionDays;
}

/**
 * The dashboard's push (README "Push"): API Gateway's WebSocket API built from the route table
 * (src/api/routes.ts WEBSOCKET_ROUTES: one function and one route each, the handlers the local gateway runs),
 * routing on `$request.body.action`. $connect is public with public reads; otherwise a Lambda REQUEST authorizer
 * checks the API's JWT from the `token` query parameter (apiAuth=jwt), or IAM asks for a SigV4-presigned URL.
 * Stage access logs without the query string (the token stays out of them). The worker posts to its connections
 * through the management API: `grantPost` allows exactly that.
 */
export class PushApi extends Construct {
  readonly api: WebSocketApi;
  readonly stage: WebSocketStage;
  readonly accessLogs: LogGroup;
  /** Each route's function by its route key ($connect, subscribe...). */
  readonly routeFunctions: Readonly<Record<string, QuoteWatchFunction>>;
  readonly routes: Readonly<Record<string, WebSocketRoute>>;
  /** The REQUEST authorizer's function, with apiAuth=jwt and protected reads. */
  readonly authorizerFunction: QuoteWatchFunction | undefined;
  /** What the dashboard connects to: wss://{api}.execute-api.{region}.amazonaws.com/{stage} */
  readonly url: string;
  /** The management API's endpoint (the worker's PUSH_ENDPOINT): https://.../{stage} */
  readonly callbackUrl: string;

  constructor(scope: Construct, id: string, props: PushApiProps) {
    requireCoreSettings('PushApi', props.core);
    requireInt('PushApi', 'push.maxConnections', props.push.maxConnections, 1, 1_000_000);
    requireInt('PushApi', 'push.maxConnectionsPerIp', props.push.maxConnectionsPerIp, 1, 100_000);
    const throttle = props.throttle ?? { rateLimit: 50, burstLimit: 100 };
    if (!(throttle.rateLimit > 0 && throttle.burstLimit >= throttle.rateLimit)) {
      throw new InvalidPropError('PushApi', 'throttle', 'rateLimit must be > 0 and burstLimit >= rateLimit');
    }
    const { access } = props;
    if (
      !access.publicReads &&
      access.auth === 'jwt' &&
      (!access.jwtIssuer || access.jwtAudience.length === 0)
    ) {
      throw new InvalidPropError('PushApi', 'access', 'a JWT authorizer needs jwtIssuer and jwtAudience');
    }
    super(scope, id);

    const bind = (fn: QuoteWatchFunction, binding: WebSocketBinding): void => {
      switch (binding) {
        case 'core':
          fn.bindCoreConfig(props.core);
          return;
        case 'latestTable':
          fn.bindLatestTable(props.latestTable);
          return;
        case 'connections':
          fn.addEnvironment(TABLES.connections.env, props.connectionsTable.tableName);
          props.connectionsTable.grantReadWriteData(fn);
          return;
        case 'webSocketApi':
          fn.addEnvironment('MAX_CONNECTIONS', String(props.push.maxConnections));
          fn.addEnvironment('MAX_CONNECTIONS_PER_IP', String(props.push.maxConnectionsPerIp));
          fn.addEnvironment('WS_ORIGINS', props.origins.join(','));
          return;
      }
    };
    const functions: Record<string, QuoteWatchFunction> = {};
    for (const route of WEBSOCKET_ROUTES as readonly WebSocketRouteDef[]) {
      const fn = new QuoteWatchFunction(this, route.id, {
        entry: route.entry,
        description: `WebSocket ${route.routeKey}: ${route.description}`,
        memorySize: route.memoryMiB ?? 256,
        logRetention: props.logRetentionDays,
      });
      for (const binding of route.bindings) bind(fn, binding);
      functions[route.routeKey] = fn;
    }
    this.routeFunctions = functions;
    const integration = (key: string) =>
      new WebSocketLambdaIntegration(`${functions[key]!.node.id}Integration`, functions[key]!);

    let authorizer: IWebSocketRouteAuthorizer | undefined;
    if (!access.publicReads && access.auth === 'jwt') {
      this.authorizerFunction = new QuoteWatchFunction(this, WEBSOCKET_AUTHORIZER.id, {
        entry: WEBSOCKET_AUTHORIZER.entry,
        description: `WebSocket $connect: ${WEBSOCKET_AUTHORIZER.description}`,
        memorySize: 256,
        logRetention: props.logRetentionDays,
      });
      this.authorizerFunction.addEnvironment('JWT_ISSUER', access.jwtIssuer!);
      this.authorizerFunction.addEnvironment('JWT_AUDIENCE', access.jwtAudience.join(','));
      authorizer = new WebSocketLambdaAuthorizer('JwtAuthorizer', this.authorizerFunction, {
        identitySource: [WEBSOCKET_AUTHORIZER.identitySource],
      });
    } else if (!access.publicReads) {
      authorizer = new WebSocketIamAuthorizer();
    }

    this.api = new WebSocketApi(this, 'Api', {
      description: 'QuoteWatch push: the dashboard subscribes, the worker posts snapshots',
      routeSelectionExpression: WEBSOCKET_ROUTE_SELECTION,
      connectRouteOptions: { integration: integration('$connect'), ...(authorizer ? { authorizer } : {}) },
      disconnectRouteOptions: { integration: integration('$disconnect') },
      defaultRouteOptions: { integration: integration('$default'), returnResponse: true },
    });
    const routes: Record<string, WebSocketRoute> = {};
    for (const route of WEBSOCKET_ROUTES as readonly WebSocketRouteDef[]) {
      if (route.routeKey.startsWith('$')) continue;
      routes[route.routeKey] = this.api.addRoute(route.routeKey, {
        integration: integration(route.routeKey),
        returnResponse: route.returnResponse,
      });
    }
    for (const key of ['$connect', '$disconnect', '$default']) {
      const child = this.api.node.tryFindChild(`${key}-Route`) as WebSocketRoute | undefined;
      if (child) routes[key] = child;
    }
    this.routes = routes;
    acknowledge(
      this.api,
      'AwsSolutions-APIG4',
      authorizer
        ? 'A WebSocket API authorizes on $connect only (API Gateway takes no authorizer on other routes): every ' +
            'message arrives on a connection its $connect authorizer accepted.'
        : 'Public by choice (-c publicReads=true), as the read routes: it pushes read-only market data. $connect ' +
            'checks the Origin and caps connections overall and per address (no WAF can sit before a WebSocket ' +
            'API), and the stage throttle bounds the rest.',
    );

    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetentionDays ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // The default WebSocket format: source ip, caller, time, event type, route key, connection id, status and
    // request id — no query string, so a `token` never reaches the logs.
    this.stage = new WebSocketStage(this, 'Stage', {
      webSocketApi: this.api,
      stageName: 'live',
      autoDeploy: true,
      throttle,
      accessLogSettings: { destination: new LogGroupLogDestination(this.accessLogs) },
    });
    this.url = this.stage.url;
    this.callbackUrl = this.stage.callbackUrl;
  }

  get functions(): QuoteWatchFunction[] {
    return [
      ...Object.values(this.routeFunctions),
      ...(this.authorizerFunction ? [this.authorizerFunction] : []),
    ];
  }

  /** The management API's POST /@connections/{id} of this API's stage, and nothing else (the publisher). */
  grantPost(grantee: IGrantable, ackScope: IConstruct): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['execute-api:ManageConnections'],
        resources: [this.connectionsArn()],
      }),
    );
    acknowledgeWildcardResource(
      ackScope,
      this.connectionsArn(),
      'Connection ids are made by API Gateway at run time: the publisher may POST to any connection of this ' +
        "API's stage, and nothing else.",
    );
  }

  /** arn:aws:execute-api:{region}:{account}:{api}/{stage}/POST/@connections/* */
  connectionsArn(): string {
    return Stack.of(this).formatArn({
      service: 'execute-api',
      resource: this.api.apiId,
      resourceName: `${this.stage.stageName}/POST/@connections/*`,
    });
  }
}
