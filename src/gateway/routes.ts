/**
 * The local route table: the same handler functions the CDK stack deploys as Lambda functions.
 * Importing this module runs the handlers' module-scope setup, so set the environment first.
 */
import { handler as health } from '../../lambdas/health.js';
import { handler as latest } from '../../lambdas/latest.js';
import { handler as predict } from '../../lambdas/predict.js';
import { handler as version } from '../../lambdas/version.js';
import type { RouteHandler, RouteTable } from './server.js';

export const routes: RouteTable = {
  'GET /latest': latest as RouteHandler,
  'POST /predict': predict as RouteHandler,
  'GET /health': health as RouteHandler,
  'GET /version': version as RouteHandler,
};
