/**
 * Builds the dashboard's browser code: client.ts with uPlot bundled into one script, and uPlot's stylesheet.
 * The one build both ways the page is served: the CDK runs it after bundling the Dashboard Lambda and writes its
 * output beside the bundle (dashboardBuildCommands), and the local gateway runs it on the first request (assets.ts). Needs esbuild,
 * a devDependency: never imported statically by code that runs in a Lambda.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';
import { DASHBOARD_FILES, type DashboardAssets } from './files.js';

const require = createRequire(import.meta.url);

export function buildDashboard(): DashboardAssets {
  const result = buildSync({
    entryPoints: [path.join(import.meta.dirname, 'client.ts')],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  const script = result.outputFiles[0]?.text;
  if (script === undefined) throw new Error('esbuild produced no dashboard script');
  // uPlot's package has no "exports": its files resolve by path.
  const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  return { script, css };
}

/** Writes dashboard.js and dashboard.css into a Lambda bundle's directory, where assets.ts looks first. */
export function writeDashboardAssets(outputDir: string): void {
  const { script, css } = buildDashboard();
  writeFileSync(path.join(outputDir, DASHBOARD_FILES.script), script);
  writeFileSync(path.join(outputDir, DASHBOARD_FILES.css), css);
}

/**
 * The shell command that runs writeDashboardAssets (this file, through tsx, on this Node) after esbuild has
 * bundled the Dashboard function: a NodejsFunction `afterBundling` hook.
 */
export function dashboardBuildCommands(outputDir: string): string[] {
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  return [`"${process.execPath}" --import "${tsx}" "${fileURLToPath(import.meta.url)}" "${outputDir}"`];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outputDir = process.argv[2];
  if (!outputDir) throw new Error('usage: build.ts OUTPUT_DIR');
  writeDashboardAssets(outputDir);
}
