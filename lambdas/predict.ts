/**
 * POST /predict with {"product": "BTC-USD"} or {"features": {"name": value, ...}}, plus an optional
 * "target" (default quote_change_500ms; see TARGETS).
 */
import { bodyText, json } from '../src/api/http.js';
import { latestOf } from '../src/api/latest.js';
import { apiHandler, apiLog, apiTelemetry } from '../src/api/middleware.js';
import { parsePredictBody, predict } from '../src/api/predict.js';
import { readApiConfig } from '../src/config.js';
import { ActiveModels } from '../src/model/serving.js';
import { registrySource } from '../src/model/source.js';
import type { FeatureSetName, Target } from '../src/model/types.js';

const { modelCheckMs } = readApiConfig();
// Lives as long as the container: each target's model loads on its first request and is swapped on promotion.
const models = new ActiveModels({
  source: registrySource(),
  log: apiLog(),
  checkEveryMs: modelCheckMs,
});

export const handler = apiHandler(async (event) => {
  const request = parsePredictBody(bodyText(event));
  const deps = {
    model: (target: Target, set?: FeatureSetName) => models.get(target, set),
    latest: latestOf,
    telemetry: apiTelemetry(),
  };
  return json(200, await predict(request, deps));
});
