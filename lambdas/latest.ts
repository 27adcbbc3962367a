/** GET /latest (every configured product) and GET /latest?product=BTC-USD (one product). */
import { json } from '../src/api/http.js';
import { latestAll, latestOf, parseLatestQuery } from '../src/api/latest.js';
import { apiHandler } from '../src/api/middleware.js';
import { readCoreConfig } from '../src/config.js';

const { symbols } = readCoreConfig();

export const handler = apiHandler(async (event) => {
  const { product } = parseLatestQuery(event.queryStringParameters);
  return json(200, product ? await latestOf(product) : await latestAll(symbols));
});
