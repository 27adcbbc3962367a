/**
 * ANY <known path> with a method the path does not serve: 405 and the `Allow` header (src/api/routes.ts). A CORS
 * preflight (OPTIONS) reaches this route too, since API Gateway routes it to a path's ANY route before answering it
 * itself: it gets 204, to which API Gateway adds the configured CORS headers.
 */
import { errorJson } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { allowedMethods } from '../src/api/routes.js';

export const handler = apiHandler(async (event) => {
  const allow = allowedMethods(event.rawPath);
  const method = event.requestContext.http.method;
  if (method === 'OPTIONS') return { statusCode: 204, headers: { allow: allow.join(', ') }, body: '' };
  const result = errorJson(
    405,
    'method_not_allowed',
    `${method} is not served on ${event.rawPath}; use ${allow.join(', ')}`,
  );
  return { ...result, headers: { ...result.headers, allow: allow.join(', ') } };
});
