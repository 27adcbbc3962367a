/**
 * The dashboard page: page.html (inlined by esbuild's text loader) with the client script, uPlot's CSS and the
 * page's settings put in. Deployed, the script and CSS are files beside the Lambda's bundle (written at synth by
 * build.ts); locally there are none beside the source, so the same build runs once, on the first request.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DASHBOARD_FILES, type DashboardAssets } from './files.js';
import page from './page.html';

/** What the browser code reads from the page (#qw-config). */
export interface DashboardSettings {
  products: readonly string[];
  deltaMs: number;
  volHorizonS: number;
  /** How often /latest is polled. */
  pollMs: number;
  /** How often recent /history rows (labels mature late), /health and /models are re-read. */
  refreshMs: number;
  /** How far back the charts reach (and load from /history on open). */
  historyMinutes: number;
  /** A card turns stale when its snapshot is older than this (/health's limit). */
  staleMs: number;
  /** The WebSocket API the page subscribes to (WS_URL); absent: it polls /latest. */
  wsUrl?: string;
  /** The feature tick (a push entry's `n` counts these). */
  tickMs: number;
}

// A variable, not a literal: esbuild must not follow it into the Lambda bundle (build.ts needs esbuild itself).
const BUILDER = './build.js';

let assets: Promise<DashboardAssets> | undefined;

export function dashboardAssets(): Promise<DashboardAssets> {
  assets ??= (async () => {
    const beside = (name: string) => fileURLToPath(new URL(name, import.meta.url));
    if (existsSync(beside(DASHBOARD_FILES.script))) {
      return {
        script: readFileSync(beside(DASHBOARD_FILES.script), 'utf8'),
        css: readFileSync(beside(DASHBOARD_FILES.css), 'utf8'),
      };
    }
    const { buildDashboard } = (await import(BUILDER)) as typeof import('./build.js');
    return buildDashboard();
  })();
  assets.catch(() => {
    assets = undefined;
  });
  return assets;
}

/** Text safe inside a <script> or <style> element: nothing in it can close the element early. */
function inElement(text: string, element: 'script' | 'style'): string {
  return text.replace(new RegExp(`</(${element})`, 'gi'), '<\\/$1');
}

export function renderDashboard(a: DashboardAssets, settings: DashboardSettings): string {
  const parts: Record<string, string> = {
    '/*UPLOT_CSS*/': inElement(a.css, 'style'),
    '"__CONFIG__"': JSON.stringify(settings).replace(/</g, '\\u003c'),
    '/*SCRIPT*/': inElement(a.script, 'script'),
  };
  // A function replacement: the minified script is full of `$` sequences a replacement string would interpret.
  return page.replace(
    // Placeholders valid where they stand (a CSS comment, a JSON string, a JS comment): page.html stays lintable.
    /\/\*UPLOT_CSS\*\/|"__CONFIG__"|\/\*SCRIPT\*\//g,
    (placeholder) => parts[placeholder] ?? placeholder,
  );
}
