/** GET /latest (every configured product) and GET /latest?product=BTC-USD (one product). */
import { json } from '../src/api/http.js';
import { latestReader, parseLatestQuery } from '../src/api/latest.js';
import { apiHandler } from '../src/api/middleware.js';
import { readApiConfig, readCoreConfig } from '../src/config.js';

const api = readApiConfig();
const latest = latestReader(readCoreConfig().symbols, api.latestCacheMs, Date.now, api.staleAfterMs);

export const handler = apiHandler(async (event) => {
  const { product } = parseLatestQuery(event.queryStringParameters);
  return json(200, product ? await latest.of(product) : await latest.all());
});
