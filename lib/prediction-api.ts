import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import {
  HttpApi,
  HttpMethod,
  HttpStage,
  LogGroupLogDestination,
  type ThrottleSettings,
} from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  type DeployedRouteId,
  METHOD_NOT_ALLOWED,
  ROUTES,
  type RouteBinding,
  type RouteId,
  routeKey,
} from '../src/api/routes.js';
import { type CoreSettings, DEFAULT_HISTORY, type HistorySettings } from '../src/config.js';
import { dashboardBuildCommands } from '../src/gateway/dashboard/build.js';
import { QuoteWatchFunction } from './house-function.js';
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
  /** Stage-wide throttle: the API is public, this caps what a runaway client can cost. @default 50 rps, burst 100 */
  readonly throttle?: ThrottleSettings;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** p99 integration latency that raises the alarm. @default 1000 */
  readonly latencyP99ThresholdMs?: number;
  /** 5xx responses per 5 minutes that raise the alarm. @default 5 */
  readonly serverErrorThreshold?: number;
}

/**
 * The public HTTP API built from the route table (src/api/routes.ts): one Lambda function and one route per
 * deployed entry (the same handlers the local gateway serves), an ANY route per path answering 405 with Allow,
 * access logs and 5xx / latency alarms.
 */
export class PredictionApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly accessLogs: LogGroup;
  /** Each route's function, by its id in the route table (e.g. `routeFunctions.Predict`). */
  /** One function per deployed route (local-only routes have none). */
  readonly routeFunctions: Readonly<Record<DeployedRouteId, QuoteWatchFunction>>;
  /** Behind an ANY route on every path: 405 with Allow. */
  readonly methodNotAllowedFunction: QuoteWatchFunction;
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
    const throttle = props.throttle ?? { rateLimit: 50, burstLimit: 100 };
    if ((throttle.rateLimit ?? 1) <= 0 || (throttle.burstLimit ?? 1) <= 0) {
      throw new InvalidPropError('PredictionApi', 'throttle', 'rateLimit and burstLimit must be positive');
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
    const functions: Partial<Record<RouteId, QuoteWatchFunction>> = {};
    const deployed = ROUTES.filter((route) => !route.localOnly);
    for (const route of deployed) {
      const fn = new QuoteWatchFunction(this, route.id, {
        entry: route.entry,
        description: `${routeKey(route)}: ${route.description}`,
        memorySize: route.memoryMiB,
        timeout: route.timeoutS === undefined ? undefined : Duration.seconds(route.timeoutS),
        withOnnxRuntime: route.onnxRuntime,
        loader: route.loader,
        afterBundling: route.dashboardAssets ? dashboardBuildCommands : undefined,
      });
      for (const binding of route.bindings) bind(fn, binding);
      functions[route.id] = fn;
    }
    this.routeFunctions = functions as Record<DeployedRouteId, QuoteWatchFunction>;

    this.api = new HttpApi(this, 'Api', {
      description: 'QuoteWatch prediction API and dashboard',
      createDefaultStage: false,
    });
    this.accessLogs = new LogGroup(this, 'AccessLogs', {
      retention: RetentionDays.ONE_MONTH,
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

    for (const route of deployed) {
      this.api.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration: new HttpLambdaIntegration(`${route.id}Integration`, functions[route.id]!),
      });
    }
    // Any other method on a known path: 405 with Allow (API Gateway prefers the method routes above).
    this.methodNotAllowedFunction = new QuoteWatchFunction(this, METHOD_NOT_ALLOWED.id, {
      entry: METHOD_NOT_ALLOWED.entry,
      description: METHOD_NOT_ALLOWED.description,
      memorySize: 128,
    });
    const fallback = new HttpLambdaIntegration('MethodNotAllowedIntegration', this.methodNotAllowedFunction);
    for (const path of new Set(deployed.map((r) => r.path))) {
      this.api.addRoutes({ path, methods: [HttpMethod.ANY], integration: fallback });
    }
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: 'Public market-data demo API; the stage throttle bounds abuse.',
    });

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
}
