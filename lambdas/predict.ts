/** POST /predict with {"product": "BTC-USD"} or {"features": {"name": value, ...}}. */
import middy from '@middy/core';
import { bodyText, type HttpApiEventV2, type HttpApiResultV2, json } from '../src/api/http.js';
import { latestOf } from '../src/api/latest.js';
import { httpErrors } from '../src/api/middleware.js';
import { ActiveModelCache, readActiveVersion } from '../src/api/models.js';
import { PREDICT_TARGET, parsePredictBody, predict } from '../src/api/predict.js';
import { dynamoClient } from '../src/aws/clients.js';
import { readApiConfig, readResourceNames } from '../src/config.js';
import { loadActive } from '../src/model/registry.js';

const { registryTable } = readResourceNames();
const { modelCheckMs } = readApiConfig();
const dynamo = dynamoClient();
// Lives as long as the container: the model loads on the first request and is swapped on promotion.
const models = new ActiveModelCache({
  load: (target) => loadActive(target),
  activeVersion: (target) => readActiveVersion(dynamo, registryTable, target),
  checkEveryMs: modelCheckMs,
});

export const handler = middy<HttpApiEventV2, HttpApiResultV2>()
  .use(httpErrors())
  .handler(async (event) => {
    const request = parsePredictBody(bodyText(event));
    return json(
      200,
      await predict(request, { model: () => models.get(PREDICT_TARGET), latest: (p) => latestOf(p) }),
    );
  });
