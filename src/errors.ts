/**
 * The base of QuoteWatch's own errors: `name` is the subclass's name and `cause` is kept, so a subclass needs no
 * constructor of its own (`export class BookError extends QuoteWatchError {}`); one with extra fields or its own
 * message format still calls `super(message, options)`.
 *
 * `new.target.name` survives bundling only when the bundler keeps names: the container Dockerfiles pass esbuild
 * `--keep-names`; a minifying bundle must set the same option (esbuild `keepNames`).
 */
export class QuoteWatchError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
