/** ANY <known path> with a method the path does not serve: 405 and the `Allow` header (src/api/routes.ts). */
import { errorJson } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { allowedMethods } from '../src/api/routes.js';

export const handler = apiHandler(async (event) => {
  const allow = allowedMethods(event.rawPath);
  const result = errorJson(
    405,
    'method_not_allowed',
    `${event.requestContext.http.method} is not served on ${event.rawPath}; use ${allow.join(', ')}`,
  );
  return { ...result, headers: { ...result.headers, allow: allow.join(', ') } };
});
