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
 */
export type RouteBinding = 'core' | 'api' | 'latestTable' | 'modelRegistry';

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
    // One self-contained HTML page, inlined by the text loader: the dashboard and the API share one origin
    // (no CORS, no public bucket, no CloudFront for a single page).
    method: 'GET',
    path: '/',
    id: 'Dashboard',
    entry: 'lambdas/dashboard.ts',
    description: 'the dashboard page',
    bindings: [],
    access: 'read',
    throttle: { rateLimit: 10, burstLimit: 20 },
    memoryMiB: 128,
    loader: { '.html': 'text' },
  },
] as const satisfies readonly RouteDef[];

export type RouteId = (typeof TABLE)[number]['id'];

export const ROUTES: readonly RouteDef<RouteId>[] = TABLE;

/** "GET /latest": the key of a route in an HTTP API's route table. */
export function routeKey(route: Pick<RouteDef, 'method' | 'path'>): string {
  return `${route.method} ${route.path}`;
}
