/** GET /models/report?target=&version=: the HTML report of the training run that made a version. */
import { BadRequestError } from '../src/api/errors.js';
import { apiHandler } from '../src/api/middleware.js';
import { runReport } from '../src/api/models.js';
import { ReportQuery } from '../src/api/schemas.js';

export const handler = apiHandler(async (event) => {
  const parsed = ReportQuery.safeParse(event.queryStringParameters ?? {});
  if (!parsed.success)
    throw new BadRequestError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const html = await runReport(parsed.data.target, parsed.data.version);
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'max-age=300' },
    body: html,
  };
});
