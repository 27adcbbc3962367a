/**
 * The WebSocket API's REQUEST authorizer on $connect (`-c apiAuth=jwt -c publicReads=false`): the same JWT the
 * HTTP API's authorizer accepts, from the `token` query parameter. A missing or bad token is refused: "Unauthorized"
 * thrown (401) when there is none, a Deny policy (403) when it does not verify.
 */
import { jwtVerifier } from '../../src/api/jwt.js';
import { type AuthorizerResult, policy, type WebSocketAuthorizerEvent } from '../../src/api/push.js';
import { TOKEN_PARAMETER } from '../../src/api/routes.js';
import { readJwtConfig } from '../../src/config.js';
import { componentLogger } from '../../src/log.js';

const verify = jwtVerifier(readJwtConfig());
const log = componentLogger('api');

export async function handler(event: WebSocketAuthorizerEvent): Promise<AuthorizerResult> {
  const token = event.queryStringParameters?.[TOKEN_PARAMETER];
  // API Gateway answers 401 for exactly this error message.
  if (!token) throw new Error('Unauthorized');
  const verdict = await verify(token);
  if (!verdict.ok) {
    log('info', 'connection refused', { reason: verdict.message });
    return policy('anonymous', false, event.methodArn);
  }
  return policy(String(verdict.claims.sub ?? 'user'), true, event.methodArn);
}
