/** GET /history?product=BTC-USD[&minutes=60 | &from=&to=][&limit=][&next=]: a product's recent series. */
import { historyOf, parseHistoryQuery } from '../src/api/history.js';
import { json } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { readHistoryConfig } from '../src/config.js';
import { TARGETS } from '../src/model/types.js';

const settings = readHistoryConfig();

export const handler = apiHandler(async (event) => {
  const request = parseHistoryQuery(event.queryStringParameters, Date.now());
  return json(200, await historyOf(request, settings, TARGETS));
});
