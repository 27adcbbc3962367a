/** GET /models: per target, the active version and the registry's versions with their metrics and run records. */

import { cached } from '../src/api/cache.js';
import { json } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { listModels } from '../src/api/models.js';

// Versions change at promotion: a few seconds of staleness spares the registry on every dashboard load.
const models = cached(15_000, () => listModels());

export const handler = apiHandler(async () => json(200, await models()));
