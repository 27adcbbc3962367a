/**
 * The API's one route table. The CDK stack (lib/prediction-api.ts) makes one Lambda function and one HTTP API
 * route of each entry; the local gateway (src/gateway/handlers.ts) loads each entry's handler module by its path
 * at run time, as Lambda loads the handler a function is configured with. Plain data: nothing here imports a
 * handler, so the core never depends on lambdas/.
 */

/**
 * What a route's function is given; each is one QuoteWatchFunction bind*() call in lib/house-function.ts (the
 * environment variables the handler reads, and the IAM access they need).
 * - `core`: SYMBOLS, TICK_MS, DELTA_MS
 * - `api`: BUILD_SHA (when the build passes one)
 * - `latestTable`: LATEST_TABLE + read access
 * - `modelRegistry`: MODEL_URI, MODEL_BUCKET, REGISTRY_TABLE + read access
 * - `history`: HISTORY_WRITE_MS, HISTORY_TTL_S (whether the worker writes history rows)
 */
export type RouteBinding = 'core' | 'api' | 'latestTable' | 'modelRegistry' | 'history';

/**
 * Who may call a route:
 * - `protected`: always behind the API's authorizer (IAM or JWT, `-c apiAuth`): it costs compute per call;
 * - `read`: read-only market data, public unless `-c publicReads=false` puts it behind the same authorizer.
 */
export type RouteAccess = 'protected' | 'read';

/** A route's own throttle (API Gateway route settings): steady requests per second and burst. */
export interface RouteThrottle {
  readonly rateLimit: number;
  readonly burstLimit: number;
}

export interface RouteDef<Id extends string = string> {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The function's construct id in the stack; renaming it replaces the deployed function. */
  readonly id: Id;
  /** Module exporting `handler`, relative to the repository root. */
  readonly entry: string;
  /** What the route answers (the function's description is "<method> <path>: <this>"). */
  readonly description: string;
  readonly bindings: readonly RouteBinding[];
  readonly access: RouteAccess;
  /** Every route has its own limit, so one route's traffic cannot use up another's. */
  readonly throttle: RouteThrottle;
  /**
   * Reserved concurrency of the route's function: caps what it can cost and keeps it from starving the others
   * (`-c reservedConcurrency=false` drops it on accounts whose concurrency quota is too low to reserve any).
   */
  readonly reservedConcurrency?: number;
  /** @default 256 */
  readonly memoryMiB?: number;
  /** @default 10 */
  readonly timeoutS?: number;
  /** Ships onnxruntime-node (a native addon) next to the bundle. */
  readonly onnxRuntime?: boolean;
  /** Loaders the entry needs by file extension: esbuild's for the bundle, the gateway's equivalent locally. */
  readonly loader?: Readonly<Record<string, 'text'>>;
  /**
   * Ships the dashboard's browser code (dashboard.js, dashboard.css; src/gateway/dashboard/build.ts) beside the
   * bundle. Locally the gateway's handler builds it on first use instead.
   */
  readonly dashboardAssets?: boolean;
  /** Served by the local gateway only (deployed, what it shows lives in CloudWatch): no function, no route. */
  readonly localOnly?: boolean;
}

const TABLE = [
  {
    method: 'GET',
    path: '/latest',
    id: 'Latest',
    entry: 'lambdas/latest.ts',
    description: 'newest snapshot per product',
    bindings: ['api', 'core', 'latestTable'],
    access: 'read',
    // A dashboard viewer polls every 300 ms (~3.3/s): room for a few dozen viewers.
    throttle: { rateLimit: 100, burstLimit: 200 },
  },
  {
    method: 'POST',
    path: '/predict',
    id: 'Predict',
    entry: 'lambdas/predict.ts',
    description: 'scores features with the active ONNX model',
    bindings: ['api', 'core', 'latestTable', 'modelRegistry'],
    access: 'protected',
    throttle: { rateLimit: 20, burstLimit: 40 },
    // 1 GB functions: at most 5 at once (a warm one answers in milliseconds, so 5 carry the rate above).
    reservedConcurrency: 5,
    // onnxruntime needs the memory (and the CPU share that comes with it) more than the time.
    memoryMiB: 1024,
    timeoutS: 15,
    onnxRuntime: true,
  },
  {
    method: 'GET',
    path: '/health',
    id: 'Health',
    entry: 'lambdas/health.ts',
    description: 'is the worker keeping the latest table fresh',
    bindings: ['api', 'core', 'latestTable'],
    access: 'read',
    throttle: { rateLimit: 10, burstLimit: 20 },
  },
  {
    method: 'GET',
    path: '/version',
    id: 'Version',
    entry: 'lambdas/version.ts',
    description: 'app version and active model versions',
    bindings: ['api', 'core', 'modelRegistry'],
    access: 'read',
    throttle: { rateLimit: 10, burstLimit: 20 },
  },
  {
    method: 'GET',
    path: '/history',
    id: 'History',
    entry: 'lambdas/history.ts',
    description: "a product's recent series: quote, probabilities, matured labels, quality, feed, latency",
    bindings: ['api', 'core', 'latestTable', 'history'],
    access: 'read',
    // A viewer reads up to 30 min on load (2 pages) and the last 90 s every 10 s.
    throttle: { rateLimit: 20, burstLimit: 40 },
  },
  {
    method: 'GET',
    path: '/models',
    id: 'Models',
    entry: 'lambdas/models.ts',
    description: 'active and recent model versions with their metrics and run records',
    bindings: ['api', 'core', 'modelRegistry'],
    access: 'read',
    throttle: { rateLimit: 5, burstLimit: 10 },
  },
  {
    method: 'GET',
    path: '/models/report',
    id: 'ModelReport',
    entry: 'lambdas/modelReport.ts',
    description: "the HTML report of a version's training run",
    bindings: ['api', 'core', 'modelRegistry'],
    access: 'read',
    throttle: { rateLimit: 5, burstLimit: 10 },
  },
  {
    method: 'GET',
    path: '/openapi.json',
    id: 'OpenApi',
    entry: 'lambdas/openapi.ts',
    description: 'this API as an OpenAPI 3.1 document',
    bindings: [],
    access: 'read',
    throttle: { rateLimit: 5, burstLimit: 10 },
  },
  {
    // Prometheus text of every local component (their ops ports, METRICS_TARGETS) and the gateway itself.
    method: 'GET',
    path: '/metrics',
    id: 'Metrics',
    entry: 'lambdas/metrics.ts',
    description: 'Prometheus metrics of the local components',
    bindings: [],
    // Not deployed: access and throttle only keep the table uniform.
    access: 'read',
    throttle: { rateLimit: 10, burstLimit: 20 },
    localOnly: true,
  },
  {
    // One self-contained HTML page (script and CSS inline): the dashboard and the API share one origin
    // (no CORS, no public bucket, no CloudFront for a single page).
    method: 'GET',
    path: '/',
    id: 'Dashboard',
    entry: 'lambdas/dashboard.ts',
    description: 'the dashboard page',
    bindings: ['api', 'core', 'history'],
    access: 'read',
    throttle: { rateLimit: 10, burstLimit: 20 },
    memoryMiB: 128,
    loader: { '.html': 'text' },
    dashboardAssets: true,
  },
] as const satisfies readonly RouteDef[];

export type RouteId = (typeof TABLE)[number]['id'];
/** The routes that get a function and an API route when deployed. */
export type DeployedRouteId = Exclude<(typeof TABLE)[number], { localOnly: true }>['id'];

export const ROUTES: readonly RouteDef<RouteId>[] = TABLE;
/** The routes that are deployed (each gets a function and an API route); local-only ones left out. */
export const DEPLOYED_ROUTES = TABLE.filter(
  (route): route is Extract<(typeof TABLE)[number], { id: DeployedRouteId }> => !('localOnly' in route),
) as readonly RouteDef<DeployedRouteId>[];

/**
 * Answers a known path asked with a method it does not serve: 405 with `Allow`. Deployed, one function behind an
 * `ANY <path>` route per path (API Gateway prefers the method routes); locally, the gateway's fallback.
 */
/**
 * Cross-origin calls, when origins are allowed (`-c corsOrigins` deployed, CORS_ORIGINS locally): the methods and
 * request headers a browser on another origin may use (IAM signing and JWT included), and how long it may cache a
 * preflight. The dashboard itself is served from the API's own origin and needs none.
 */
export const CORS_POLICY = {
  allowMethods: ['GET', 'POST'],
  allowHeaders: [
    'authorization',
    'content-type',
    'x-amz-content-sha256',
    'x-amz-date',
    'x-amz-security-token',
  ],
  maxAgeS: 600,
} as const;

export const METHOD_NOT_ALLOWED = {
  id: 'MethodNotAllowed',
  entry: 'lambdas/methodNotAllowed.ts',
  description: 'a known path asked with another method: 405 with Allow',
} as const;

/** The methods `path` is served with, in table order; empty for an unknown path. */
export function allowedMethods(path: string, routes: readonly RouteDef[] = ROUTES): string[] {
  return routes.filter((r) => r.path === path).map((r) => r.method);
}

/** "GET /latest": the key of a route in an HTTP API's route table. */
export function routeKey(route: Pick<RouteDef, 'method' | 'path'>): string {
  return `${route.method} ${route.path}`;
}
