/**
 * Local gateway process: `node --import tsx src/gateway/main.ts`. Serves the API handlers and the
 * dashboard on PORT (default 3000) until SIGTERM/SIGINT; with API_AUTH=iam|jwt the protected routes need what
 * the deployed authorizer checks (src/gateway/auth.ts).
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
} from '../config.js';
import { componentLogger } from '../log.js';
import { routeAuthorizer } from './auth.js';
import { loadRoutes } from './handlers.js';
import { startGateway } from './server.js';

const port = orExit(() => readPort(process.env, 'PORT', DEFAULT_PORTS.gateway));
// The handlers read these when loaded; check them here so a bad value is a clean configuration error.
orExit(() => readCoreConfig());
orExit(() => readResourceNames());
orExit(() => readApiConfig());

const auth = orExit(() => readGatewayAuthConfig());
const log = componentLogger('gateway');
const gateway = await startGateway({
  routes: await loadRoutes(),
  port,
  log,
  cors: orExit(() => readCorsConfig()),
  ...(auth.mode === 'none' ? {} : { authorize: routeAuthorizer(ROUTES, auth) }),
});
// The supervisor waits for this line (listeningUrl in src/local/supervisor.ts).
log('info', 'gateway listening', { url: gateway.url, auth: auth.mode, publicReads: auth.publicReads });

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('info', 'gateway stopping', { signal });
  await gateway.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
