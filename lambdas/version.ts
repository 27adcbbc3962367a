/** GET /version: app version, build commit and the active model version per target. */
import { json } from '../src/api/http.js';
import { apiHandler } from '../src/api/middleware.js';
import { versionInfo } from '../src/api/version.js';
import { dynamoClient } from '../src/aws/clients.js';
import { readApiConfig, readResourceNames } from '../src/config.js';
import { readActiveVersion } from '../src/model/pointer.js';

const { registryTable } = readResourceNames();
const { buildSha } = readApiConfig();
const dynamo = dynamoClient();

export const handler = apiHandler(async () =>
  json(200, await versionInfo(buildSha, (target) => readActiveVersion(dynamo, registryTable, target))),
);
