/**
 * Logging, for every component (ingestor, worker, gateway and handlers, simulator, trainer, CLI): Powertools for
 * AWS Lambda's Logger underneath (structured JSON, one line per event: level, message, timestamp, service and the
 * event's fields; in Lambda also the invocation's context), behind one small function type that the code takes
 * as a dependency, so tests can collect what a component says.
 *
 * `describeError` is the one formatter of errors for logs and API diagnostics: the error and its cause chain.
 */
import { Logger as PowertoolsLogger } from '@aws-lambda-powertools/logger';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const POWERTOOLS_LEVEL = { debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR' } as const;

/**
 * The logger of one component (`service` in every line). LOG_LEVEL / POWERTOOLS_LOG_LEVEL set the threshold
 * (default INFO), as Powertools reads them.
 */
export function componentLogger(service: string, options: { level?: LogLevel } = {}): Logger {
  const logger = new PowertoolsLogger({
    serviceName: service,
    ...(options.level ? { logLevel: POWERTOOLS_LEVEL[options.level] } : {}),
  });
  return (level, msg, fields) => {
    if (fields) logger[level](msg, fields);
    else logger[level](msg);
  };
}

/** Error with its cause chain, for log fields and diagnostics: "Name: message <- Cause: message ...". */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err; e !== undefined && parts.length < 5; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.join(' <- ');
}
