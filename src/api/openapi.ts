/**
 * GET /openapi.json: the API as an OpenAPI 3.1 document, generated from the zod schemas the handlers use
 * (schemas.ts) and the route table (routes.ts): every route of the table must have its entry in DOCS (a test
 * checks it), and the tests validate every route's real answers against the generated document.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import * as z from 'zod';
import pkg from '../../package.json' with { type: 'json' };
import { allowedMethods, ROUTES, type RouteDef, routeKey } from './routes.js';
import {
  ErrorBody,
  HealthReport,
  HistoryPage,
  HistoryQuery,
  LatestList,
  LatestQuery,
  ModelsResponse,
  PredictBatchResponse,
  PredictRequest,
  PredictResponse,
  ReportQuery,
  Snapshot,
  VersionInfo,
} from './schemas.js';

type Doc = Pick<RouteConfig, 'summary' | 'request' | 'responses'>;

const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const text = (type: string, description: string) => ({
  description,
  content: { [type]: { schema: z.string() } },
});
const error = (description: string) => json(ErrorBody, description);

/** What each route takes and answers, by route key. */
export const DOCS: Readonly<Record<string, Doc>> = {
  'GET /latest': {
    summary: 'the latest snapshot of every product, or of one',
    request: { query: LatestQuery },
    responses: {
      200: json(
        z.union([LatestList, Snapshot]),
        'every configured product (LatestList), or `product` (Snapshot)',
      ),
      400: error('malformed product'),
      404: error('no snapshot for that product yet'),
      503: error('the latest table is unavailable'),
    },
  },
  'POST /predict': {
    summary: 'score a product, a feature vector, or a batch of up to 100 vectors',
    request: { body: { content: { 'application/json': { schema: PredictRequest } } } },
    responses: {
      200: json(
        z.union([PredictResponse, PredictBatchResponse]),
        'Prediction, or PredictionBatch for `vectors`',
      ),
      400: error('a malformed request: the message says what to fix'),
      404: error('no snapshot for that product yet'),
      503: error('the model or the latest table is unavailable'),
    },
  },
  'GET /health': {
    summary: 'is the system fresh and the feed alive',
    responses: { 200: json(HealthReport, 'ok'), 503: json(HealthReport, 'degraded, with the reasons') },
  },
  'GET /version': {
    summary: 'app version, build and active model versions',
    responses: { 200: json(VersionInfo, 'the version'), 503: error('the registry is unavailable') },
  },
  'GET /history': {
    summary: "a product's recent series",
    request: { query: HistoryQuery },
    responses: {
      200: json(HistoryPage, 'one page, oldest first'),
      400: error('a malformed range'),
      404: error('history is off'),
      503: error('the latest table is unavailable'),
    },
  },
  'GET /models': {
    summary: 'active and recent model versions per target',
    responses: { 200: json(ModelsResponse, 'per target'), 503: error('the registry is unavailable') },
  },
  'GET /models/report': {
    summary: "a version's training-run report",
    request: { query: ReportQuery },
    responses: {
      200: text('text/html', 'the report page'),
      400: error('malformed target or version'),
      404: error('no report for that version'),
    },
  },
  'GET /openapi.json': {
    summary: 'this document',
    responses: {
      200: { description: 'OpenAPI 3.1', content: { 'application/json': { schema: z.object({}).loose() } } },
    },
  },
  'GET /metrics': {
    summary: 'Prometheus metrics of the local components (local gateway only)',
    responses: { 200: text('text/plain', 'Prometheus text exposition') },
  },
  'GET /': { summary: 'the dashboard', responses: { 200: text('text/html', 'the dashboard page') } },
};

let cached: object | undefined;

/** The document (built once per process). */
export function openApiDocument(routes: readonly RouteDef[] = ROUTES): object {
  if (cached && routes === ROUTES) return cached;
  const registry = new OpenAPIRegistry();
  for (const route of routes) {
    const doc = DOCS[routeKey(route)];
    if (!doc) throw new Error(`no OpenAPI entry for ${routeKey(route)} (src/api/openapi.ts DOCS)`);
    const others = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].filter(
      (m) => !allowedMethods(route.path, routes).includes(m),
    );
    registry.registerPath({
      method: route.method.toLowerCase() as 'get' | 'post',
      path: route.path,
      description: route.description,
      ...doc,
      responses: {
        ...doc.responses,
        ...(others.length ? { 405: error(`${others.join(', ')}: not served here (see Allow)`) } : {}),
      },
    });
  }
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'QuoteWatch API',
      version: pkg.version,
      description:
        'Real-time Coinbase market microstructure: latest snapshots, predictions, history, models.',
    },
  });
  if (routes === ROUTES) cached = document;
  return document;
}
