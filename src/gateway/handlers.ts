/**
 * The gateway's reading of the route table (src/api/routes.ts): each route's handler is loaded from the entry
 * file the table names, by a path computed at run time. That is the contract Lambda itself uses — a function
 * is configured with a handler file and export name, not linked to it — so the core holds no import of
 * lambdas/ (.dependency-cruiser.mjs checks that). Loading a module runs its module-scope setup (configuration,
 * clients) as a Lambda cold start does: set the environment first.
 */

import { readFileSync } from 'node:fs';
import module from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { AuthorizerResult, WebSocketAuthorizerEvent } from '../api/push.js';
import {
  METHOD_NOT_ALLOWED,
  ROUTES,
  type RouteDef,
  routeKey,
  WEBSOCKET_AUTHORIZER,
  WEBSOCKET_ROUTES,
  type WebSocketRouteDef,
} from '../api/routes.js';
import { QuoteWatchError } from '../errors.js';
import type { RouteHandler, RouteTable } from './server.js';
import type { WebSocketHandler, WebSocketRoutes } from './websocket.js';

/** The checkout the table's entries are relative to. */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export class RouteLoadError extends QuoteWatchError {
  constructor(
    readonly route: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${route}: ${message}`, options);
  }
}

/**
 * Imports every route's handler module (in table order, as the stack deploys them) into a route-key table, and
 * the 405 handler under `ANY <path>` of every path, as the deployed API routes the other methods.
 */
export async function loadRoutes(routes: readonly RouteDef[] = ROUTES): Promise<RouteTable> {
  const table: RouteTable = {};
  for (const route of routes) {
    const key = routeKey(route);
    for (const [extension, loader] of Object.entries(route.loader ?? {})) useLoader(key, extension, loader);
    table[key] = await loadHandler(key, route.entry);
  }
  const fallback = await loadHandler(METHOD_NOT_ALLOWED.id, METHOD_NOT_ALLOWED.entry);
  for (const route of routes) table[`ANY ${route.path}`] = fallback;
  return table;
}

/** The WebSocket API's handlers by route key (src/api/routes.ts WEBSOCKET_ROUTES), and its two-way routes. */
export async function loadWebSocketRoutes(
  routes: readonly WebSocketRouteDef[] = WEBSOCKET_ROUTES,
): Promise<WebSocketRoutes> {
  const handlers: Record<string, WebSocketHandler> = {};
  for (const route of routes) {
    handlers[route.routeKey] = (await loadHandler(`WS ${route.routeKey}`, route.entry)) as never;
  }
  return { handlers, twoWay: new Set(routes.filter((r) => r.returnResponse).map((r) => r.routeKey)) };
}

/** The WebSocket API's REQUEST authorizer function (loaded like a route's handler). */
export async function loadWebSocketAuthorizer(): Promise<
  (event: WebSocketAuthorizerEvent) => Promise<AuthorizerResult>
> {
  return (await loadHandler(WEBSOCKET_AUTHORIZER.id, WEBSOCKET_AUTHORIZER.entry)) as never;
}

async function loadHandler(key: string, entry: string): Promise<RouteHandler> {
  let loaded: { handler?: unknown };
  try {
    loaded = await import(pathToFileURL(resolve(REPO_ROOT, entry)).href);
  } catch (err) {
    throw new RouteLoadError(key, `cannot load ${entry}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof loaded.handler !== 'function')
    throw new RouteLoadError(key, `${entry} exports no handler function`);
  return loaded.handler as RouteHandler;
}

/** What esbuild's text loader makes of a file: a module whose default export is the file's text. */
export function textModule(file: string): string {
  return `export default ${JSON.stringify(readFileSync(file, 'utf8'))};`;
}

const textExtensions = new Set<string>();

/** esbuild's loaders as the table names them, for Node: a module hook that turns such files into text modules. */
function useLoader(route: string, extension: string, loader: string): void {
  if (loader !== 'text')
    throw new RouteLoadError(route, `loader ${loader} for ${extension} is not supported`);
  if (textExtensions.size === 0) {
    if (typeof module.registerHooks !== 'function') {
      throw new RouteLoadError(
        route,
        `the ${extension} text loader needs Node >= 22.15 (module.registerHooks)`,
      );
    }
    module.registerHooks({
      load(url, context, nextLoad) {
        if (!url.startsWith('file:')) return nextLoad(url, context);
        const file = fileURLToPath(url);
        for (const ext of textExtensions) {
          if (file.endsWith(ext)) return { format: 'module', source: textModule(file), shortCircuit: true };
        }
        return nextLoad(url, context);
      },
    });
  }
  textExtensions.add(extension);
}
