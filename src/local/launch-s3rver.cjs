// s3rver's own CLI, with one behaviour of S3 it lacks: the conditional write `PUT` with `If-None-Match: *` answers
// 412 PreconditionFailed when the object exists (S3 has honoured it since 2024; s3rver ignores the header and
// overwrites). The lake's write-once objects (src/storage/corrections.ts) rely on it. Patched before the CLI runs.
const S3rver = require('s3rver');
const Koa = require(require.resolve('koa', { paths: [require.resolve('s3rver')] }));

const PRECONDITION_FAILED =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
  '<Message>At least one of the pre-conditions you specified did not hold</Message>' +
  '<Condition>If-None-Match</Condition></Error>';

async function conditionalPut(ctx, next) {
  if (ctx.method !== 'PUT' || ctx.get('if-none-match') !== '*' || ctx.querystring.includes('uploadId=')) {
    return next();
  }
  // Path style (the project's clients set forcePathStyle): /<bucket>/<key>.
  const m = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  if (!m || !(await ctx.app.store.existsObject(m[1], decodeURIComponent(m[2])))) return next();
  ctx.status = 412;
  ctx.type = 'application/xml';
  ctx.body = PRECONDITION_FAILED;
}

const callback = Koa.prototype.callback;
S3rver.prototype.callback = function callbackWithConditionalPut() {
  // Before the router, the last middleware: after s3rver's logging, XML encoding and virtual-host rewriting.
  if (!this.middleware.includes(conditionalPut))
    this.middleware.splice(this.middleware.length - 1, 0, conditionalPut);
  return callback.call(this);
};

require('s3rver/bin/s3rver.js');
