/** GET /: the dashboard page, with this deployment's products and limits (src/gateway/dashboard/). */
import { apiHandler } from '../src/api/middleware.js';
import { readApiConfig, readCoreConfig, readDashboardPushUrl, readHistoryConfig } from '../src/config.js';
import { dashboardAssets, renderDashboard } from '../src/gateway/dashboard/assets.js';
import { VOL_HORIZON_S } from '../src/labels/volSpike.js';

const core = readCoreConfig();
const history = readHistoryConfig();
const wsUrl = readDashboardPushUrl();
const settings = {
  products: core.symbols,
  deltaMs: core.deltaMs,
  volHorizonS: VOL_HORIZON_S,
  pollMs: 300,
  refreshMs: 10_000,
  // Half an hour of chart, or what history keeps when that is less.
  historyMinutes: Math.min(30, Math.floor(history.ttlS / 60)),
  staleMs: readApiConfig().staleAfterMs,
  tickMs: core.tickMs,
  // Push when the WebSocket API is known, polling /latest while it is down (src/gateway/dashboard/client.ts).
  ...(wsUrl ? { wsUrl } : {}),
};

let page: string | undefined;

export const handler = apiHandler(async () => {
  page ??= renderDashboard(await dashboardAssets(), settings);
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' },
    body: page,
  };
});
