import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  type CfnStage,
  CorsHttpMethod,
  HttpApi,
  HttpMethod,
  type HttpRoute,
  HttpStage,
  type IHttpRouteAuthorizer,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpIamAuthorizer, HttpJwtAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  CORS_POLICY,
  DEPLOYED_ROUTES,
  type DeployedRouteId,
  METHOD_NOT_ALLOWED,
  type RouteBinding,
  type RouteDef,
  routeKey,
} from '../src/api/routes.js';
import {
  type ApiAccessSettings,
  type CoreSettings,
  DEFAULT_HISTORY,
  type HistorySettings,
} from '../src/config.js';
import { dashboardBuildCommands } from '../src/gateway/dashboard/build.js';
import { QuoteWatchFunction } from './house-function.js';
import { acknowledge } from './nag.js';
import { InvalidPropError, requireCoreSettings, requireInt } from './validate.js';

export interface PredictionApiProps {
  readonly latestTable: ITable;
  readonly registryTable: ITable;
  readonly modelBucket: IBucket;
  readonly core: CoreSettings;
  /** Commit the handlers were built from, reported by GET /version. */
  readonly buildSha?: string;
  /** The worker's history cadence, so /history knows whether there is any. @default DEFAULT_HISTORY */
  readonly history?: HistorySettings;
  /**
   * Who may call what (`-c apiAuth`, `-c jwtIssuer`, `-c jwtAudience`, `-c publicReads`, `-c reservedConcurrency`).
   * @default IAM on the protected routes, public reads, reserved concurrency as the route table says
   */
  readonly access?: ApiAccessSettings;
  /** The routes of the API. @default DEPLOYED_ROUTES of src/api/routes.ts */
  readonly routes?: readonly RouteDef<DeployedRouteId>[];
  /**
   * Stage-wide default throttle, for requests no route of the table matches (each route has its own, from the
   * route table). @default 10 rps, burst 20
   */
  readonly throttle?: ThrottleSettings;
  /** @default one month */
  readonly logRetentionDays?: RetentionDays;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** p99 integration latency that raises the alarm. @default 1000 */
  readonly latencyP99ThresholdMs?: number;
  /** 5xx responses per 5 minutes that raise the alarm. @default 5 */
  readonly serverErrorThreshold?: number;
}

/** The default access: IAM-signed calls to the protected routes, public reads. */
export const DEFAULT_API_ACCESS: ApiAccessSettings = {
  auth: 'iam',
  jwtIssuer: undefined,
  jwtAudience: [],
  publicReads: true,
  reservedConcurrency: true,
  corsOrigins: [],
};

/**
 * The HTTP API built from the route table (src/api/routes.ts): one Lambda function and one route per deployed
 * entry (the same handlers the local gateway serves), each route with its own throttle and its access: `protected`
 * routes behind an IAM or JWT authorizer, `read` routes public unless publicReads is false; an ANY route per path
 * answering 405 with Allow. Access logs, 5xx / latency alarms.
 */
export class PredictionApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly accessLogs: LogGroup;
  /** Each route's function, by its id in the route table (e.g. `routeFunctions.Predict`). */
  readonly routeFunctions: Readonly<Record<DeployedRouteId, QuoteWatchFunction>>;
  /** Each route, by its id in the route table. */
  readonly routes: Readonly<Record<DeployedRouteId, HttpRoute>>;
  /** Behind an ANY route on every path: 405 with Allow. */
  readonly methodNotAllowedFunction: QuoteWatchFunction;
  /** The authorizer of the protected (and, without public reads, of every) route. */
  readonly authorizer: IHttpRouteAuthorizer;
  readonly access: ApiAccessSettings;
  readonly alarms: Alarm[] = [];
  /** Base URL of the API (the dashboard is served at its root). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: PredictionApiProps) {
    requireCoreSettings('PredictionApi', props.core);
    const latencyMs = requireInt(
      'PredictionApi',
      'latencyP99ThresholdMs',
      props.latencyP99ThresholdMs ?? 1000,
      1,
      30_000,
    );
    const errors = requireInt(
      'PredictionApi',
      'serverErrorThreshold',
      props.serverErrorThreshold ?? 5,
      1,
      1_000_000,
    );
    const throttle = props.throttle ?? { rateLimit: 10, burstLimit: 20 };
    if ((throttle.rateLimit ?? 1) <= 0 || (throttle.burstLimit ?? 1) <= 0) {
      throw new InvalidPropError('PredictionApi', 'throttle', 'rateLimit and burstLimit must be positive');
    }
    const routes = props.routes ?? DEPLOYED_ROUTES;
    for (const route of routes) {
      if (!(route.throttle.rateLimit > 0 && route.throttle.burstLimit >= route.throttle.rateLimit)) {
        throw new InvalidPropError(
          'PredictionApi',
          `routes.${route.id}.throttle`,
          'rateLimit must be > 0 and burstLimit >= rateLimit',
        );
      }
      if (route.reservedConcurrency !== undefined)
        requireInt(
          'PredictionApi',
          `routes.${route.id}.reservedConcurrency`,
          route.reservedConcurrency,
          1,
          1000,
        );
    }
    const access = props.access ?? DEFAULT_API_ACCESS;
    if (access.auth === 'jwt' && (!access.jwtIssuer || access.jwtAudience.length === 0)) {
      throw new InvalidPropError(
        'PredictionApi',
        'access',
        'a JWT authorizer needs jwtIssuer and jwtAudience',
      );
    }
    if (props.buildSha !== undefined && !/^[0-9a-f]{7,40}$/.test(props.buildSha)) {
      throw new InvalidPropError(
        'PredictionApi',
        'buildSha',
        `expected a git commit hash, got ${props.buildSha}`,
      );
    }
    super(scope, id);

    const bind = (fn: QuoteWatchFunction, binding: RouteBinding): QuoteWatchFunction => {
      switch (binding) {
        case 'core':
          return fn.bindCoreConfig(props.core);
        case 'api':
          return fn.bindApiConfig(props.buildSha);
        case 'latestTable':
          return fn.bindLatestTable(props.latestTable);
        case 'modelRegistry':
          return fn.bindModelRegistry(props.modelBucket, props.registryTable);
        case 'history':
          return fn.bindHistoryConfig(props.history ?? DEFAULT_HISTORY);
      }
    };
    const functions: Partial<Record<DeployedRouteId, QuoteWatchFunction>> = {};
    for (const route of routes) {
      const fn = new QuoteWatchFunction(this, route.id, {
        entry: route.entry,
        description: `${routeKey(route)}: ${route.description}`,
        memorySize: route.memoryMiB,
        timeout: route.timeoutS === undefined ? undefined : Duration.seconds(route.timeoutS),
        withOnnxRuntime: route.onnxRuntime,
        loader: route.loader,
        afterBundling: route.dashboardAssets ? dashboardBuildCommands : undefined,
        reservedConcurrency: access.reservedConcurrency ? route.reservedConcurrency : undefined,
        logRetention: props.logRetentionDays,
      });
      for (const binding of route.bindings) bind(fn, binding);
      functions[route.id] = fn;
    }
    this.routeFunctions = functions as Record<DeployedRouteId, QuoteWatchFunction>;

    this.api = new HttpApi(this, 'Api', {
      description: 'QuoteWatch prediction API and dashboard',
      createDefaultStage: false,
      // Only when origins are given: API Gateway then answers preflights and adds the headers itself.
      ...(access.corsOrigins.length
        ? {
            corsPreflight: {
              allowOrigins: access.corsOrigins,
              allowMethods: CORS_POLICY.allowMethods.map((m) => CorsHttpMethod[m]),
              allowHeaders: [...CORS_POLICY.allowHeaders],
              maxAge: Duration.seconds(CORS_POLICY.maxAgeS),
            },
          }
        : {}),
    });
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: props.logRetentionDays ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stage = new HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle,
      accessLogSettings: { destination: new LogGroupLogDestination(this.accessLogs) },
    });
    this.url = this.stage.url;

    this.access = access;
    this.authorizer =
      access.auth === 'iam'
        ? new HttpIamAuthorizer()
        : new HttpJwtAuthorizer('JwtAuthorizer', access.jwtIssuer!, { jwtAudience: access.jwtAudience });
    const built: Partial<Record<DeployedRouteId, HttpRoute>> = {};
    const routeSettings: Record<string, { ThrottlingRateLimit: number; ThrottlingBurstLimit: number }> = {};
    for (const route of routes) {
      const isPublic = route.access === 'read' && access.publicReads;
      const [httpRoute] = this.api.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration: new HttpLambdaIntegration(`${route.id}Integration`, functions[route.id]!),
        ...(isPublic ? {} : { authorizer: this.authorizer }),
      });
      built[route.id] = httpRoute!;
      routeSettings[routeKey(route)] = {
        ThrottlingRateLimit: route.throttle.rateLimit,
        ThrottlingBurstLimit: route.throttle.burstLimit,
      };
      // A route setting names an existing route: the stage waits for it.
      this.stage.node.addDependency(httpRoute!);
      if (isPublic) {
        acknowledge(
          httpRoute!,
          'AwsSolutions-APIG4',
          `${routeKey(route)} is public by choice (-c publicReads=true): read-only market data, no secrets; its ` +
            `route throttle (${route.throttle.rateLimit}/s, burst ${route.throttle.burstLimit}) bounds what it can cost.`,
        );
      }
    }
    this.routes = built as Record<DeployedRouteId, HttpRoute>;

    // Any other method on a known path: 405 with Allow (API Gateway prefers the method routes above). Cheap
    // (128 MB, no I/O), with the smallest route throttle; public with the reads, else behind the authorizer.
    this.methodNotAllowedFunction = new QuoteWatchFunction(this, METHOD_NOT_ALLOWED.id, {
      entry: METHOD_NOT_ALLOWED.entry,
      description: METHOD_NOT_ALLOWED.description,
      memorySize: 128,
      logRetention: props.logRetentionDays,
    });
    const fallback = new HttpLambdaIntegration('MethodNotAllowedIntegration', this.methodNotAllowedFunction);
    for (const path of new Set(routes.map((r) => r.path))) {
      const [anyRoute] = this.api.addRoutes({
        path,
        methods: [HttpMethod.ANY],
        integration: fallback,
        ...(access.publicReads ? {} : { authorizer: this.authorizer }),
      });
      routeSettings[`ANY ${path}`] = { ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10 };
      this.stage.node.addDependency(anyRoute!);
      if (access.publicReads) {
        acknowledge(
          anyRoute!,
          'AwsSolutions-APIG4',
          `ANY ${path} only answers 405 with Allow (no data, no I/O); its route throttle (5/s, burst 10) bounds what it can cost.`,
        );
      }
    }
    (this.stage.node.defaultChild as CfnStage).routeSettings = routeSettings;

    if (props.alarmsEnabled ?? true) {
      this.alarms.push(
        new Alarm(this, 'ServerErrorAlarm', {
          alarmDescription: `API returned >= ${errors} 5xx responses in 5 minutes`,
          metric: this.api.metricServerError({ statistic: 'Sum', period: Duration.minutes(5) }),
          threshold: errors,
          evaluationPeriods: 1,
          comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
        new Alarm(this, 'LatencyAlarm', {
          alarmDescription: `API p99 latency above ${latencyMs} ms`,
          metric: this.api.metricLatency({ statistic: 'p99', period: Duration.minutes(1) }),
          threshold: latencyMs,
          evaluationPeriods: 5,
          datapointsToAlarm: 3,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }

  get functions(): QuoteWatchFunction[] {
    return [...Object.values(this.routeFunctions), this.methodNotAllowedFunction];
  }

  /** The execute-api ARN a caller's IAM policy must allow for a route (IAM authorizer). */
  invokeArn(route: Pick<RouteDef, 'method' | 'path'>): string {
    return Stack.of(this).formatArn({
      service: 'execute-api',
      resource: this.api.apiId,
      resourceName: `${this.stage.stageName}/${route.method}${route.path}`,
    });
  }
}
