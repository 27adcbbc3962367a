/** GET /openapi.json: this API as an OpenAPI 3.1 document, generated from its zod schemas. */
import { json } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { openApiDocument } from '../src/api/openapi.js';

export const handler = apiHandler(async () => json(200, openApiDocument()));
