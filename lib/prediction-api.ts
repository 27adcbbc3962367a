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
import { QuoteWatchFunction } from './house-function.js';
import { InvalidPropError, requireInt, requireNonEmpty } from './validate.js';

export interface CoreSettings {
  readonly symbols: readonly string[];
  readonly tickMs: number;
  readonly deltaMs: number;
}

export interface PredictionApiProps {
  readonly latestTable: ITable;
  readonly registryTable: ITable;
  readonly modelBucket: IBucket;
  readonly core: CoreSettings;
  /** Commit the handlers were built from, reported by GET /version. */
  readonly buildSha?: string;
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
 * The public HTTP API: GET /latest, POST /predict, GET /health, GET /version (the same Lambda handlers the local
 * gateway serves) and GET / for the dashboard page, with access logs and 5xx / latency alarms.
 */
export class PredictionApi extends Construct {
  readonly api: HttpApi;
  readonly stage: HttpStage;
  readonly accessLogs: LogGroup;
  readonly latestFunction: QuoteWatchFunction;
  readonly predictFunction: QuoteWatchFunction;
  readonly healthFunction: QuoteWatchFunction;
  readonly versionFunction: QuoteWatchFunction;
  readonly dashboardFunction: QuoteWatchFunction;
  readonly alarms: Alarm[] = [];
  /** Base URL of the API (the dashboard is served at its root). */
  readonly url: string;

  constructor(scope: Construct, id: string, props: PredictionApiProps) {
    requireNonEmpty('PredictionApi', 'core.symbols', props.core.symbols);
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

    const env = props.buildSha ? { BUILD_SHA: props.buildSha } : undefined;
    this.latestFunction = new QuoteWatchFunction(this, 'Latest', {
      entry: 'lambdas/latest.ts',
      description: 'GET /latest: newest snapshot per product',
      environment: env,
    })
      .bindCoreConfig(props.core)
      .bindLatestTable(props.latestTable);
    this.predictFunction = new QuoteWatchFunction(this, 'Predict', {
      entry: 'lambdas/predict.ts',
      description: 'POST /predict: scores features with the active ONNX model',
      // onnxruntime needs the memory (and the CPU share that comes with it) more than the time.
      memorySize: 1024,
      timeout: Duration.seconds(15),
      withOnnxRuntime: true,
      environment: env,
    })
      .bindCoreConfig(props.core)
      .bindLatestTable(props.latestTable)
      .bindModelRegistry(props.modelBucket, props.registryTable);
    this.healthFunction = new QuoteWatchFunction(this, 'Health', {
      entry: 'lambdas/health.ts',
      description: 'GET /health: is the worker keeping the latest table fresh',
      environment: env,
    })
      .bindCoreConfig(props.core)
      .bindLatestTable(props.latestTable);
    this.versionFunction = new QuoteWatchFunction(this, 'Version', {
      entry: 'lambdas/version.ts',
      description: 'GET /version: app version and active model versions',
      environment: env,
    })
      .bindCoreConfig(props.core)
      .bindModelRegistry(props.modelBucket, props.registryTable);
    // The page is one self-contained HTML file; a Lambda returning it keeps the dashboard and the API on one origin
    // (no CORS, no public bucket, no CloudFront for a single page).
    this.dashboardFunction = new QuoteWatchFunction(this, 'Dashboard', {
      entry: 'lambdas/dashboard.ts',
      description: 'GET /: the dashboard page',
      memorySize: 128,
      loader: { '.html': 'text' },
    });

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

    const routes: [string, HttpMethod, QuoteWatchFunction][] = [
      ['/latest', HttpMethod.GET, this.latestFunction],
      ['/predict', HttpMethod.POST, this.predictFunction],
      ['/health', HttpMethod.GET, this.healthFunction],
      ['/version', HttpMethod.GET, this.versionFunction],
      ['/', HttpMethod.GET, this.dashboardFunction],
    ];
    for (const [routePath, method, fn] of routes) {
      this.api.addRoutes({
        path: routePath,
        methods: [method],
        integration: new HttpLambdaIntegration(`${fn.node.id}Integration`, fn),
      });
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
    return [
      this.latestFunction,
      this.predictFunction,
      this.healthFunction,
      this.versionFunction,
      this.dashboardFunction,
    ];
  }
}
