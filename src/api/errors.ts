/**
 * Errors the API domain throws, each carrying its HTTP status and a stable code. Anything else that
 * escapes a handler is a bug and becomes a 500 (see middleware.ts).
 */
import { QuoteWatchError } from '../errors.js';

export abstract class ApiError extends QuoteWatchError {
  abstract readonly status: number;
  abstract readonly code: string;
}

/** The request is malformed: the message tells the caller what to fix. */
export class BadRequestError extends ApiError {
  readonly status = 400;
  readonly code = 'bad_request';
}

/** The thing asked for does not exist (e.g. a product with no snapshot). */
export class NotFoundError extends ApiError {
  readonly status = 404;
  readonly code = 'not_found';
}

/** A dependency (DynamoDB, the model registry, the worker's output) is down or not ready: retry later. */
export class DependencyError extends ApiError {
  readonly status = 503;
  readonly code = 'unavailable';
}
