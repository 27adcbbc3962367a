/**
 * A component's telemetry as its configuration asks (readTelemetryConfig): the Telemetry emitter with its EMF
 * sink, the periodic flush of a long-running process, and the ops port (/metrics, /healthz).
 */
import { cloudWatchClient } from '../aws/clients.js';
import { readTelemetryConfig } from '../config.js';
import type { Logger } from '../log.js';
import { CloudWatchSink } from './cloudwatch.js';
import { type HealthProbe, type OpsServer, startOpsServer } from './ops.js';
import { type EmfSink, Telemetry } from './telemetry.js';

type Env = Record<string, string | undefined>;

/** EMF on stdout, one JSON document per line (what CloudWatch Logs extracts from Lambda's output). */
export const stdoutEmfSink: EmfSink = (record) => {
  process.stdout.write(`${JSON.stringify(record)}\n`);
};

export interface ComponentTelemetry {
  telemetry: Telemetry;
  /** The ops port, when OPS_PORT is set. */
  ops: OpsServer | undefined;
  /** Flushes what is left and stops the timer and the ops port. */
  stop(): Promise<void>;
}

/** For a Lambda handler: no timer (the handler flushes after each invocation), no port. */
export function lambdaTelemetry(service: string, env: Env = process.env): Telemetry {
  const config = readTelemetryConfig(env);
  return new Telemetry({ service, sinks: config.sink === 'emf' ? [stdoutEmfSink] : [] });
}

/** For a long-running process (ingestor, worker, gateway): flushed every METRICS_FLUSH_MS. */
export async function componentTelemetry(
  service: string,
  log: Logger,
  options: { env?: Env; health?: HealthProbe } = {},
): Promise<ComponentTelemetry> {
  const env = options.env ?? process.env;
  const config = readTelemetryConfig(env);
  const cloudWatch =
    config.sink === 'cloudwatch' ? new CloudWatchSink({ client: cloudWatchClient(env), log }) : undefined;
  const sinks: EmfSink[] = config.sink === 'emf' ? [stdoutEmfSink] : cloudWatch ? [cloudWatch.sink] : [];
  const telemetry = new Telemetry({ service, sinks });
  const timer = setInterval(() => {
    telemetry.flush();
    void cloudWatch?.send();
  }, config.flushMs);
  timer.unref();
  const ops =
    config.opsPort > 0
      ? await startOpsServer({ port: config.opsPort, telemetry, health: options.health })
      : undefined;
  if (ops) log('info', 'ops port listening', { url: ops.url });
  return {
    telemetry,
    ops,
    async stop() {
      clearInterval(timer);
      telemetry.flush();
      await cloudWatch?.send();
      await ops?.close();
    },
  };
}
