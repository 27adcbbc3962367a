/** GET /latest (every configured product) and GET /latest?product=BTC-USD (one product). */
import middy from '@middy/core';
import { type HttpApiEventV2, type HttpApiResultV2, json } from '../src/api/http.js';
import { latestAll, latestOf, parseLatestQuery } from '../src/api/latest.js';
import { httpErrors } from '../src/api/middleware.js';
import { readCoreConfig } from '../src/config.js';

const { symbols } = readCoreConfig();

export const handler = middy<HttpApiEventV2, HttpApiResultV2>()
  .use(httpErrors())
  .handler(async (event) => {
    const { product } = parseLatestQuery(event.queryStringParameters);
    return json(200, product ? await latestOf(product) : await latestAll(symbols));
  });
