/**
 * GET /metrics (the local gateway only): Prometheus text of the gateway's own API metrics and of every component
 * whose ops port METRICS_TARGETS lists (the supervisor passes the ingestor's and the worker's).
 */
import { apiHandler, apiTelemetry } from '../src/api/middleware.js';
import { readTelemetryConfig } from '../src/config.js';
import { aggregateMetrics } from '../src/telemetry/ops.js';

const { targets } = readTelemetryConfig();

export const handler = apiHandler(async () => ({
  statusCode: 200,
  headers: { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'cache-control': 'no-store' },
  body: await aggregateMetrics(apiTelemetry(), targets),
}));
