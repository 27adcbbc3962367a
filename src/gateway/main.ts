/**
 * Local gateway process: `node --import tsx src/gateway/main.ts`. Serves the API handlers and the
 * dashboard on PORT (default 3000), and the WebSocket API with its management endpoint on WS_PORT (default 3001),
 * until SIGTERM/SIGINT; with API_AUTH=iam|jwt the protected routes need what the deployed authorizer checks
 * (src/gateway/auth.ts), and with PUBLIC_READS=false so do the read routes and the WebSocket's $connect.
 */

import { ROUTES } from '../api/routes.js';
import {
  DEFAULT_PORTS,
  orExit,
  readApiConfig,
  readCoreConfig,
  readCorsConfig,
  readGatewayAuthConfig,
  readPort,
  readResourceNames,
  readWebSocketApiConfig,
  readWebSocketGatewayConfig,
} from '../config.js';
import { collectGarbageOnSignal } from '../local/gcSignal.js';
import { componentLogger } from '../log.js';
import { routeAuthorizer, webSocketAuthorizer } from './auth.js';
import { loadRoutes, loadWebSocketAuthorizer, loadWebSocketRoutes } from './handlers.js';
import { startGateway } from './server.js';
import { startWebSocketApi } from './websocket.js';

const port = orExit(() => readPort(process.env, 'PORT', DEFAULT_PORTS.gateway));
// The handlers read these when loaded; check them here so a bad value is a clean configuration error.
orExit(() => readCoreConfig());
orExit(() => readResourceNames());
orExit(() => readApiConfig());
orExit(() => readWebSocketApiConfig());
const { port: wsPort, ...wsLimits } = orExit(() => readWebSocketGatewayConfig());

const auth = orExit(() => readGatewayAuthConfig());
const log = componentLogger('gateway');
const gateway = await startGateway({
  routes: await loadRoutes(),
  port,
  log,
  cors: orExit(() => readCorsConfig()),
  ...(auth.mode === 'none' ? {} : { authorize: routeAuthorizer(ROUTES, auth) }),
});
const wsAuthorize = webSocketAuthorizer(auth, loadWebSocketAuthorizer);
const websocket = await startWebSocketApi({
  routes: await loadWebSocketRoutes(),
  port: wsPort,
  limits: wsLimits,
  log,
  ...(wsAuthorize ? { authorize: wsAuthorize } : {}),
});
log('info', 'websocket listening', { url: websocket.url, management: websocket.managementUrl, ...wsLimits });
// The supervisor waits for this line (listeningUrl in src/local/supervisor.ts).
log('info', 'gateway listening', { url: gateway.url, auth: auth.mode, publicReads: auth.publicReads });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('info', 'gateway stopping', { signal });
  await Promise.all([gateway.close(), websocket.close()]);
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
collectGarbageOnSignal();
process.on('SIGINT', () => void stop('SIGINT'));
