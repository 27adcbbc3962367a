/**
 * GET /health: 200 {status:"ok"} while the worker keeps the latest table fresh and the ingestor hears exchange
 * heartbeats, else 503 {status:"degraded"} with the reasons (see src/api/health.ts).
 */
import { checkHealth } from '../src/api/health.js';
import { json } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { readApiConfig, readCoreConfig } from '../src/config.js';
import { listLatest } from '../src/storage/latest.js';

const { symbols } = readCoreConfig();
const { staleAfterMs } = readApiConfig();

export const handler = apiHandler(async () => {
  const report = await checkHealth({ listLatest: () => listLatest(symbols), staleAfterMs });
  return json(report.status === 'ok' ? 200 : 503, report);
});
