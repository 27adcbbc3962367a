/** GET / on the deployed HTTP API: the dashboard page, inlined into the bundle by esbuild's text loader. */
import html from '../src/gateway/dashboard.html';

export const handler = async () => ({
  statusCode: 200,
  headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' },
  body: html,
});
