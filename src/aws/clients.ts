/**
 * AWS SDK v3 clients, configured only by the SDK's standard variables (AWS_REGION,
 * AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_CLOUDWATCH,
 * credentials chain...).
 * With an endpoint override (local emulators, LocalStack) a few emulator-compatibility settings apply.
 */

import { Agent as HttpAgent } from 'node:http';
import { Agent } from 'node:https';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { NodeHttpHandler } from '@smithy/node-http-handler';

type Env = Record<string, string | undefined>;

/** The services QuoteWatch calls, as the SDK names their endpoint variables (AWS_ENDPOINT_URL_<SERVICE>). */
export const CLIENT_SERVICES = ['KINESIS', 'DYNAMODB', 'S3', 'CLOUDWATCH'] as const;

/**
 * Every variable these clients read themselves (localstack/env.sh sets them; test/local.edgeRouter.test.ts checks
 * that it sets exactly these, plus the SDK's own checksum settings). AWS_ENDPOINT_URL (all services) and
 * AWS_DEFAULT_REGION are read as fallbacks.
 */
export const CLIENT_VARIABLES = [
  ...CLIENT_SERVICES.map((s) => `AWS_ENDPOINT_URL_${s}` as const),
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
] as const;

function endpoint(env: Env, service: (typeof CLIENT_SERVICES)[number]): string | undefined {
  return env[`AWS_ENDPOINT_URL_${service}`] ?? env.AWS_ENDPOINT_URL;
}

/**
 * Region and static credentials from `env` too, so a client built for another env (tests, the local
 * supervisor) does not fall back to this process's variables. With process.env this is what the SDK's default
 * chain would pick first anyway.
 */
function identity(env: Env): {
  region?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
} {
  const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const {
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_SESSION_TOKEN: sessionToken,
  } = env;
  return {
    ...(region ? { region } : {}),
    ...(accessKeyId && secretAccessKey
      ? { credentials: { accessKeyId, secretAccessKey, sessionToken } }
      : {}),
  };
}

export function kinesisClient(env: Env = process.env): KinesisClient {
  const override = endpoint(env, 'KINESIS');
  // The emulators speak HTTP/1.1 only; deployed enhanced fan-out needs the SDK's default HTTP/2 handler.
  return new KinesisClient(
    override
      ? {
          ...identity(env),
          endpoint: override,
          requestHandler: new NodeHttpHandler({ connectionTimeout: 2000 }),
          maxAttempts: 3,
        }
      : identity(env),
  );
}

export function dynamoClient(env: Env = process.env): DynamoDBDocumentClient {
  const override = endpoint(env, 'DYNAMODB');
  const base = new DynamoDBClient(
    override ? { ...identity(env), endpoint: override, maxAttempts: 3 } : identity(env),
  );
  return DynamoDBDocumentClient.from(base, { marshallOptions: { removeUndefinedValues: true } });
}

export function s3Client(env: Env = process.env): S3Client {
  const override = endpoint(env, 'S3');
  return new S3Client(
    override
      ? {
          ...identity(env),
          endpoint: override,
          forcePathStyle: true,
          // s3rver stores streamed uploads corrupted when the SDK adds its default checksums.
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }
      : identity(env),
  );
}

/** CloudWatch metrics (PutMetricData from the Fargate tasks, src/telemetry/cloudwatch.ts). */
export function cloudWatchClient(env: Env = process.env): CloudWatchClient {
  const override = endpoint(env, 'CLOUDWATCH');
  return new CloudWatchClient(
    override ? { ...identity(env), endpoint: override, maxAttempts: 3 } : identity(env),
  );
}

/**
 * The WebSocket API's management API (PostToConnection, the worker's publisher). Its endpoint is the API's own
 * (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`, or the local gateway's WS_PORT): PUSH_ENDPOINT,
 * read by src/config.ts. Keep-alive sockets, as many as posts may run at once, and a per-request timeout so a
 * stuck post gives its slot back.
 */
export function apiGatewayManagementClient(
  endpoint: string,
  options: { maxSockets: number; timeoutMs: number },
  env: Env = process.env,
): ApiGatewayManagementApiClient {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
  return new ApiGatewayManagementApiClient({
    ...identity(env),
    endpoint,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new Agent(agentOptions),
      connectionTimeout: options.timeoutMs,
      requestTimeout: options.timeoutMs,
      // Without it the timeout only logs a warning and the post keeps its slot.
      throwOnRequestTimeout: true,
    }),
  });
}
