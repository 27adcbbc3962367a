/**
 * Run records (the role MLflow plays in the volatility design): every training run — promoted, kept or failed —
 * leaves `run.json` and a self-contained `report.html` beside its candidate's files in the registry
 * (<prefix>/<target>/<version>/). `quotewatch runs` lists them (listRuns, formatRuns).
 *
 * The record holds the parameters (training and promotion settings), the data window and row counts, the feature
 * spec's hash, the git commit, both models' held-out figures, the gate's decision and reasons, ROC / PR /
 * reliability curves for the report, the training duration and, for a failed run, the step and the error.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { PromotionConfig, TrainingConfig } from '../../src/config.js';
import type { FeatureSpec } from '../../src/features/types.js';
import { type ReliabilityBin, reliabilityCurve } from '../../src/model/metrics.js';
import { findVersionFile, versionsWithRecord, writeVersionRecord } from '../../src/model/registry.js';
import { TARGETS } from '../../src/model/types.js';
import type { EvaluatedModel } from '../train/candidate.js';
import { METRICS } from './bootstrap.js';
import type { GateDecision } from './gate.js';
import { MODELS, type WalkForwardReport } from './walkForward.js';

type Env = Record<string, string | undefined>;

export const RUN_RECORD = 'run.json';
export const RUN_REPORT = 'report.html';

export interface Curves {
  /** [false positive rate, true positive rate], from (0, 0) to (1, 1). */
  roc: [number, number][];
  /** [recall, precision], recall ascending. */
  pr: [number, number][];
  reliability: ReliabilityBin[];
}

export interface RunRecord {
  target: string;
  version: string;
  /** passed/rejected: the gate's decision after evaluation; failed: a step threw. */
  status: 'passed' | 'rejected' | 'failed';
  recordedAt: string;
  gitSha: string | null;
  featureSpecHash: string | null;
  parameters: { training: TrainingConfig; promotion?: PromotionConfig };
  data?: {
    window: { fromUs: number; toUs: number };
    rows: { train?: number; test: number };
    positives: number;
    /** vol_spike_60s: the candidate's τ per product, which labelled the held-out rows. */
    thresholds?: Record<string, number>;
  };
  /** Seconds the train step took (from its metrics.json). */
  trainingS?: number;
  candidate?: EvaluatedModel;
  active?: EvaluatedModel | null;
  decision?: GateDecision;
  curves?: { candidate: Curves; active?: Curves };
  /** Trees: total split gain per feature, largest first. */
  importance?: { feature: string; gain: number }[];
  /** The walk-forward evaluation of the training data (folds, baselines, intervals), or why it was skipped. */
  walkForward?: WalkForwardReport | { notRun: string };
  error?: { step: string; name: string; message: string };
}

/** The commit the code runs from, or null outside a git checkout (an image carries no .git). */
export function gitSha(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

/** A short hash of a feature spec: two runs on the same features have the same one. */
export function specHash(spec: FeatureSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

/** ROC and PR curves (at most ~`points` points each) and the reliability curve of probabilities `p`. */
export function curvesOf(p: ArrayLike<number>, y: ArrayLike<number>, points = 100): Curves {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b]! - p[a]!);
  let positives = 0;
  for (let i = 0; i < n; i++) positives += y[i]!;
  const negatives = n - positives;
  const roc: [number, number][] = [[0, 0]];
  const pr: [number, number][] = [];
  const every = Math.max(1, Math.floor(n / points));
  let tp = 0;
  let fp = 0;
  let lastK = 0;
  for (let k = 0; k < n; ) {
    const v = p[order[k]!]!;
    // Tied scores enter together (one threshold).
    while (k < n && p[order[k]!] === v) {
      if (y[order[k]!] === 1) tp++;
      else fp++;
      k++;
    }
    if (k - lastK >= every || k === n) {
      lastK = k;
      roc.push([negatives ? fp / negatives : 0, positives ? tp / positives : 0]);
      pr.push([positives ? tp / positives : 0, tp / (tp + fp)]);
    }
  }
  const last = roc.at(-1)!;
  if (last[0] !== 1 || last[1] !== 1) roc.push([1, 1]);
  return { roc, pr, reliability: reliabilityCurve(p, y) };
}

export async function writeRunRecord(record: RunRecord, env: Env): Promise<void> {
  await writeVersionRecord(
    record.target,
    record.version,
    RUN_RECORD,
    `${JSON.stringify(record, null, 2)}\n`,
    env,
  );
  await writeVersionRecord(record.target, record.version, RUN_REPORT, renderReport(record), env);
}

/** The run records of `targets` (all by default), newest first, at most `limit`. */
export async function listRuns(
  env: Env,
  targets: readonly string[] = TARGETS,
  limit = 50,
): Promise<RunRecord[]> {
  const out: RunRecord[] = [];
  for (const target of targets) {
    for (const version of await versionsWithRecord(target, RUN_RECORD, env)) {
      const bytes = await findVersionFile(target, version, RUN_RECORD, env);
      if (bytes) out.push(JSON.parse(new TextDecoder().decode(bytes)) as RunRecord);
    }
  }
  return out.sort((a, b) => b.recordedAt.localeCompare(a.recordedAt)).slice(0, limit);
}

const num = (v: number | undefined, digits = 4) =>
  v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);

/** One line per run: when, target, version, status, the main metric's gain [interval], why. */
export function formatRuns(runs: readonly RunRecord[]): string {
  if (runs.length === 0) return 'no run records yet';
  const rows = runs.map((r) => {
    const d = r.decision;
    const gain = d ? `${d.mainMetric} ${num(d.gain.value)} [${num(d.gain.lo)}, ${num(d.gain.hi)}]` : '';
    const why =
      r.status === 'failed' ? `${r.error?.step}: ${r.error?.message}` : (d?.reasons.join('; ') ?? '');
    return [r.recordedAt.slice(0, 19), r.target, r.version, r.status, gain, why];
  });
  const header = ['recorded', 'target', 'version', 'status', 'gain vs reference', 'reasons'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

/** A 0..1 × 0..1 line plot as inline SVG. */
function plot(title: string, xLabel: string, yLabel: string, series: Series[], diagonal: boolean): string {
  const S = 260;
  const M = 36;
  const at = ([x, y]: [number, number]) => `${(M + x * S).toFixed(1)},${(M + (1 - y) * S).toFixed(1)}`;
  const lines = series
    .map(
      (s) =>
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${s.points.map(at).join(' ')}"><title>${escapeHtml(s.name)}</title></polyline>`,
    )
    .join('');
  const legend = series
    .map((s, i) => `<text x="${M + 8}" y="${M + 16 + i * 16}" fill="${s.color}">${escapeHtml(s.name)}</text>`)
    .join('');
  return (
    `<figure><svg width="${S + 2 * M}" height="${S + 2 * M}" role="img" aria-label="${escapeHtml(title)}">` +
    `<rect x="${M}" y="${M}" width="${S}" height="${S}" fill="none" stroke="#999"/>` +
    (diagonal
      ? `<line x1="${M}" y1="${M + S}" x2="${M + S}" y2="${M}" stroke="#ccc" stroke-dasharray="4"/>`
      : '') +
    `${lines}${legend}<text x="${M + S / 2}" y="${S + 2 * M - 6}" text-anchor="middle">${escapeHtml(xLabel)}</text>` +
    `<text x="12" y="${M + S / 2}" transform="rotate(-90 12 ${M + S / 2})" text-anchor="middle">${escapeHtml(yLabel)}</text>` +
    `</svg><figcaption>${escapeHtml(title)}</figcaption></figure>`
  );
}

/** The run's report page: figures, decision, ROC / PR / reliability plots, feature importances. Self-contained. */
export function renderReport(r: RunRecord): string {
  const colors = { candidate: '#1f77b4', active: '#d62728' };
  const curveSeries = (pick: (c: Curves) => [number, number][]) => {
    const out: Series[] = [];
    if (r.curves)
      out.push({ name: `candidate ${r.version}`, color: colors.candidate, points: pick(r.curves.candidate) });
    if (r.curves?.active && r.active) {
      out.push({ name: `active ${r.active.version}`, color: colors.active, points: pick(r.curves.active) });
    }
    return out;
  };
  const figures = (m: EvaluatedModel | null | undefined, name: string) =>
    m
      ? `<tr><td>${escapeHtml(name)} ${escapeHtml(m.version)}</td><td>${num(m.prAuc)}</td><td>${num(m.auc)}</td><td>${num(m.brier)}</td><td>${num(m.logLoss)}</td><td>${num(m.calibrationError)}</td></tr>`
      : '';
  const d = r.decision;
  const maxGain = Math.max(1e-12, ...(r.importance ?? []).map((f) => f.gain));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>QuoteWatch run ${escapeHtml(r.target)} ${escapeHtml(r.version)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}figure{display:inline-block;margin:0 1em 1em 0}.bar{background:#1f77b4;height:10px;display:inline-block}</style>
</head><body>
<h1>${escapeHtml(r.target)} · ${escapeHtml(r.version)} · ${escapeHtml(r.status)}</h1>
<p>recorded ${escapeHtml(r.recordedAt)} · git ${escapeHtml(r.gitSha ?? 'unknown')} · feature spec ${escapeHtml(r.featureSpecHash ?? '—')}${r.trainingS === undefined ? '' : ` · trained in ${num(r.trainingS, 1)} s`}</p>
${r.error ? `<p><strong>failed in ${escapeHtml(r.error.step)}</strong>: ${escapeHtml(r.error.name)}: ${escapeHtml(r.error.message)}</p>` : ''}
${d ? `<h2>Decision: ${d.promote ? 'promote' : 'keep the active model'}</h2><p>${escapeHtml(d.mainMetric)} gain over ${d.reference === 'active' ? 'the active model' : 'the base rate'}: ${num(d.gain.value)} [${num(d.gain.lo)}, ${num(d.gain.hi)}] (paired block bootstrap, ${num(d.blockUs / 1e6, 1)} s blocks)</p>${d.reasons.length ? `<ul>${d.reasons.map((x) => `<li>${escapeHtml(x)}</li>`).join('')}</ul>` : ''}` : ''}
${
  r.data
    ? `<p>held-out rows ${r.data.rows.test} (${r.data.positives} positive)${r.data.rows.train === undefined ? '' : `, training rows ${r.data.rows.train}`}, ${escapeHtml(new Date(r.data.window.fromUs / 1000).toISOString())} – ${escapeHtml(new Date(r.data.window.toUs / 1000).toISOString())}${
        r.data.thresholds === undefined
          ? ''
          : `, τ ${Object.entries(r.data.thresholds)
              .map(([p, t]) => `${escapeHtml(p)} ${num(t)}`)
              .join(', ')}`
      }</p>`
    : ''
}
${r.candidate ? `<table><tr><th>model</th><th>PR-AUC</th><th>ROC-AUC</th><th>Brier</th><th>log loss</th><th>ECE</th></tr>${figures(r.candidate, 'candidate')}${figures(r.active, 'active')}</table>` : ''}
${
  r.curves
    ? plot(
        'ROC',
        'false positive rate',
        'true positive rate',
        curveSeries((c) => c.roc),
        true,
      ) +
      plot(
        'Precision-recall',
        'recall',
        'precision',
        curveSeries((c) => c.pr),
        false,
      ) +
      plot(
        'Reliability',
        'mean probability',
        'observed rate',
        curveSeries((c) => c.reliability.map((b) => [b.meanProbability, b.observedRate])),
        true,
      )
    : ''
}
${r.importance?.length ? `<h2>Feature importance (split gain)</h2><table>${r.importance.map((f) => `<tr><td>${escapeHtml(f.feature)}</td><td><span class="bar" style="width:${((200 * f.gain) / maxGain).toFixed(0)}px"></span> ${num(f.gain, 1)}</td></tr>`).join('')}</table>` : ''}
${walkForwardSection(r.walkForward)}
<h2>Parameters</h2><pre>${escapeHtml(JSON.stringify(r.parameters, null, 2))}</pre>
</body></html>
`;
}

/** The walk-forward table: every model's pooled test metrics with intervals, the folds, the trees' importances. */
function walkForwardSection(w: RunRecord['walkForward']): string {
  if (!w) return '';
  if ('notRun' in w) return `<h2>Walk-forward evaluation</h2><p>not run: ${escapeHtml(w.notRun)}</p>`;
  const cell = (i: { value: number; lo: number; hi: number }) =>
    `${num(i.value)} [${num(i.lo)}, ${num(i.hi)}]`;
  // A record written before a model existed (the chosen one) has no figures for it.
  const rows = MODELS.filter((m) => w.overall[m] !== undefined)
    .map((m) => `<tr><td>${m}</td>${METRICS.map((k) => `<td>${cell(w.overall[m][k])}</td>`).join('')}</tr>`)
    .join('');
  const folds = w.folds
    .map(
      (f) =>
        `<tr><td>${f.index}</td><td>${f.rows.train}</td><td>${f.rows.validation}</td><td>${f.rows.test}</td><td>${f.positives.test}</td><td>${num(f.metrics.gbdt[w.mainMetric])}</td><td>${f.chosen.gbdtTrees}</td><td>${f.chosen.learner ?? 'gbdt'}</td><td>${num(f.metrics.chosen?.[w.mainMetric] ?? Number.NaN)}</td></tr>`,
    )
    .join('');
  const maxGain = Math.max(1e-12, ...w.importance.map((f) => f.gain));
  return `<h2>Walk-forward evaluation (${w.folds.length} folds, ${escapeHtml(w.set)})</h2>
<p>pooled test rows ${w.test.rows} (${w.test.positives} positive, ${w.test.blocks} blocks of ${num(w.blockUs / 1e6, 0)} s), embargo ${num(w.embargoUs / 1e6, 1)} s${w.skipped.length ? `; skipped: ${escapeHtml(w.skipped.join('; '))}` : ''}</p>
<table><tr><th>model</th>${METRICS.map((k) => `<th>${k}</th>`).join('')}</tr>${rows}</table>
<p>the chosen model's gain in ${escapeHtml(w.mainMetric)}: ${Object.entries(w.gain)
    .map(([b, i]) => `vs ${escapeHtml(b)} ${cell(i)}`)
    .join(' · ')}</p>
<table><tr><th>fold</th><th>train</th><th>validation</th><th>test</th><th>test positives</th><th>gbdt ${escapeHtml(w.mainMetric)}</th><th>trees</th><th>chosen</th><th>chosen ${escapeHtml(w.mainMetric)}</th></tr>${folds}</table>
<h3>Feature importance of the trees (split gain, all folds)</h3><table>${w.importance
    .slice(0, 20)
    .map(
      (f) =>
        `<tr><td>${escapeHtml(f.feature)}</td><td><span class="bar" style="width:${((200 * f.gain) / maxGain).toFixed(0)}px"></span> ${num(f.gain, 1)}</td></tr>`,
    )
    .join('')}</table>`;
}
