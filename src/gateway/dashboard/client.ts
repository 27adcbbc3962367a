/**
 * The dashboard, in the browser (bundled by esbuild with uPlot; served by lambdas/dashboard.ts). Per product: the
 * latest quote, both probabilities with their model and live quality, a top-3 ladder, and charts of price
 * (bid/ask/mid) and of both probabilities on one time axis with the matured labels marked. Across products: the
 * /health verdict, the models with their run reports, live quality over time by model version, feed health and
 * end-to-end latency.
 *
 * Data: /history fills the charts on load (so a reload keeps the picture) and every `refreshMs` (labels mature
 * later). The live values come by push when the page is given the WebSocket API (`wsUrl`): it subscribes to its
 * products and renders each pushed entry, dropping one whose tick counter `n` is not above the shown one; the
 * socket goes connecting -> subscribed -> reconnecting -> backoff (jittered, capped) -> connecting..., it
 * unsubscribes while the tab is hidden, and while it is down /latest is polled every `pollMs` (the only mode
 * without `wsUrl`). The seconds missed while the API was down or the socket lost are refilled from /history
 * (a jump in `n` alone is no gap: the publisher skips ticks that look the same).
 * Raw values travel in data-value attributes so tests can compare them with the API.
 */
import uPlot from 'uplot';
import { feedVerdict } from '../../api/feedVerdict.js';
import type { PushEntry, ServerMessage } from '../../api/push.js';
import type { HistoryRowView, SnapshotView } from '../../api/schemas.js';
import { isSpike } from '../../labels/volSpike.js';
import type { DashboardSettings } from './assets.js';

// The API's own answer types (type-only: erased from the browser bundle), so the page reads what the API serves.
type Snapshot = SnapshotView;
/** What a card shows: a polled snapshot, or a pushed entry (no features) with its age when sent. */
type Shown = Omit<Snapshot, 'features' | 'seq'>;
type HistoryRow = HistoryRowView;
type Quality = NonNullable<Snapshot['quality']>;

const QUOTE = 'quote_change_500ms';
const VOL = 'vol_spike_60s';
const TARGETS = [
  { target: QUOTE, prob: 'prob', bar: 'probBar', model: 'model', quality: 'quality', label: 'quote' },
  { target: VOL, prob: 'vol', bar: 'volBar', model: 'volModel', quality: 'volQuality', label: 'vol' },
] as const;
const COLORS = { bid: '#3fb950', ask: '#f85149', mid: '#58a6ff', vol: '#d29922', muted: '#8b98a5' };

const config = JSON.parse(document.getElementById('qw-config')!.textContent!) as DashboardSettings;
const $ = (id: string) => document.getElementById(id)!;

/** One point of a product's chart: a history row (1 s) or a live snapshot (every poll). */
interface Point {
  bid: number;
  ask: number;
  mid: number;
  pq: number | null;
  pv: number | null;
  /** Matured labels: 1/0 for a quote change, 1/0 for a spike above τ. */
  lq: number | null;
  lv: number | null;
}

interface Card {
  el: HTMLElement;
  fields: Record<string, HTMLElement>;
  points: Map<number, Point>;
  price: uPlot;
  prob: uPlot;
  snapshot: Shown | null;
  fetchedAt: number;
  /** The tick counter of the values shown (tsUs / tickMs): a pushed entry not above it is stale. */
  n: number;
}

const cards = new Map<string, Card>();
/** Across products, by second: quality per target, feed health, latencies (for p50/p99). */
const shared = new Map<number, { quality?: Quality; feed?: HistoryRow['feed']; latencies: number[] }>();

function fmt(n: number | string, digits: number): string {
  return Number(n).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
/** Text for innerHTML: what the API returns is data, never markup. */
function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function decimalsOf(s: string): number {
  const i = s.indexOf('.');
  return i < 0 ? 0 : s.length - i - 1;
}
function set(field: HTMLElement, text: string, value?: unknown): void {
  field.textContent = text;
  if (value !== undefined) field.dataset.value = String(value);
}

function chart(
  el: HTMLElement,
  title: string,
  series: uPlot.Series[],
  scales: uPlot.Scales,
  height: number,
): uPlot {
  const width = Math.max(300, el.clientWidth || el.parentElement?.clientWidth || 600);
  const axis = { stroke: COLORS.muted, grid: { stroke: '#2a3541' }, ticks: { stroke: '#2a3541' } };
  const plot = new uPlot(
    {
      title,
      width,
      height,
      scales: { x: { time: true }, ...scales },
      series: [{}, ...series],
      // One axis per scale: the first on the left, a second (e.g. latency in ms) on the right.
      axes: [
        axis,
        ...[...new Set(series.map((x) => x.scale ?? 'y'))]
          .slice(0, 2)
          .map((scale, i) =>
            i === 0 ? { ...axis, scale } : { ...axis, scale, side: 1, grid: { show: false } },
          ),
      ],
      legend: { live: false },
    },
    [[], ...series.map(() => [])],
    el,
  );
  // Charts follow their panel's width (uPlot draws at a fixed size).
  new ResizeObserver(() => {
    const w = Math.max(300, el.clientWidth);
    if (w !== plot.width) plot.setSize({ width: w, height });
  }).observe(el);
  return plot;
}

function cardFor(product: string): Card {
  const existing = cards.get(product);
  if (existing) return existing;
  const template = $('card-template') as HTMLTemplateElement;
  const el = template.content.firstElementChild!.cloneNode(true) as HTMLElement;
  el.dataset.testid = `card-${product}`;
  el.querySelector('.product')!.textContent = product;
  const fields: Record<string, HTMLElement> = {};
  for (const f of el.querySelectorAll<HTMLElement>('[data-field]')) {
    fields[f.dataset.field!] = f;
    f.dataset.testid = `${f.dataset.field}-${product}`;
  }
  el.querySelector('[data-label="quote"]')!.textContent = `P(quote change within ${config.deltaMs} ms)`;
  el.querySelector('[data-label="vol"]')!.textContent = `P(volatility spike within ${config.volHorizonS} s)`;
  // Keep cards in product order whatever order they first arrive in.
  const after = [...cards.keys()].sort().find((p) => p > product);
  $('cards').insertBefore(el, after ? cards.get(after)!.el : null);
  const price = chart(
    fields.priceChart!,
    'bid / ask / mid',
    [
      { label: 'bid', stroke: COLORS.bid, width: 1 },
      { label: 'ask', stroke: COLORS.ask, width: 1 },
      { label: 'mid', stroke: COLORS.mid, width: 1.5 },
    ],
    {},
    150,
  );
  const dot = (stroke: string) => ({ stroke, width: 0, points: { show: true, size: 5, fill: stroke } });
  const prob = chart(
    fields.probChart!,
    'probabilities and matured labels (dots: 1 = it happened)',
    [
      { label: `P(quote change ${config.deltaMs} ms)`, stroke: COLORS.mid, width: 1.5, scale: 'p' },
      { label: `P(vol spike ${config.volHorizonS} s)`, stroke: COLORS.vol, width: 1.5, scale: 'p' },
      { label: 'quote changed', ...dot(COLORS.mid), scale: 'p' },
      { label: 'spike', ...dot(COLORS.vol), scale: 'p' },
    ],
    { p: { range: [-0.05, 1.05] } },
    130,
  );
  const card: Card = { el, fields, points: new Map(), price, prob, snapshot: null, fetchedAt: 0, n: -1 };
  cards.set(product, card);
  return card;
}

/**
 * Labels as chart values: 0/1; the vol label is a forward volatility, a spike by the rule and τ of the model that
 * predicted the row (isSpike: relative to the row's trailing level); none where the model had no τ for it.
 */
function labelValues(row: HistoryRow): { lq: number | null; lv: number | null } {
  const q = row.labels?.[QUOTE];
  const v = row.labels?.[VOL];
  const p = row.predictions[VOL];
  const tau = p?.threshold;
  if (v === undefined || tau === undefined || tau === null) return { lq: q ?? null, lv: null };
  const judge = p?.levelBps === undefined ? { tau } : { tau, levelBps: p.levelBps };
  return { lq: q ?? null, lv: isSpike(v, judge) ? 1 : 0 };
}

function addHistory(product: string, rows: HistoryRow[]): void {
  // A configured product with neither history nor a snapshot gets no card (yet).
  if (rows.length === 0 && !cards.has(product)) return;
  const card = cardFor(product);
  for (const row of rows) {
    card.points.set(row.tsUs, {
      bid: row.bid,
      ask: row.ask,
      mid: row.mid,
      pq: row.predictions[QUOTE]?.probability ?? null,
      pv: row.predictions[VOL]?.probability ?? null,
      ...labelValues(row),
    });
    const second = Math.floor(row.tsUs / 1e6);
    const s = shared.get(second) ?? { latencies: [] };
    if (row.quality) s.quality = row.quality;
    if (row.feed) s.feed = row.feed;
    s.latencies.push(row.latencyMs);
    shared.set(second, s);
  }
  drawCard(card);
  drawShared();
}

function trim<T>(map: Map<number, T>, fromKey: number): void {
  for (const k of map.keys()) if (k < fromKey) map.delete(k);
}

function drawCard(card: Card): void {
  const nowUs = Date.now() * 1000;
  trim(card.points, nowUs - config.historyMinutes * 60e6);
  const ts = [...card.points.keys()].sort((a, b) => a - b);
  const p = ts.map((t) => card.points.get(t)!);
  const x = ts.map((t) => t / 1e6);
  card.price.setData([x, p.map((v) => v.bid), p.map((v) => v.ask), p.map((v) => v.mid)]);
  card.prob.setData([x, p.map((v) => v.pq), p.map((v) => v.pv), p.map((v) => v.lq), p.map((v) => v.lv)]);
  card.fields.priceChart!.dataset.points = String(x.length);
  card.fields.probChart!.dataset.labels = String(p.filter((v) => v.lq !== null || v.lv !== null).length);
}

let qualityChart: uPlot | undefined;
let feedChart: uPlot | undefined;

function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

function drawShared(): void {
  trim(shared, Date.now() / 1000 - config.historyMinutes * 60);
  const seconds = [...shared.keys()].sort((a, b) => a - b);
  qualityChart ??= chart(
    $('quality-chart'),
    '',
    [
      { label: 'AUC quote change', stroke: COLORS.mid, width: 1.5, scale: 'q' },
      { label: 'AUC vol spike', stroke: COLORS.vol, width: 1.5, scale: 'q' },
      { label: 'PR-AUC quote change', stroke: COLORS.mid, width: 1, dash: [10, 3, 2, 3], scale: 'q' },
      { label: 'PR-AUC vol spike', stroke: COLORS.vol, width: 1, dash: [10, 3, 2, 3], scale: 'q' },
      { label: 'Brier quote change', stroke: COLORS.mid, width: 1, dash: [4, 4], scale: 'q' },
      { label: 'Brier vol spike', stroke: COLORS.vol, width: 1, dash: [4, 4], scale: 'q' },
      { label: 'model switch', stroke: COLORS.ask, width: 0, points: { show: true, size: 8 }, scale: 'q' },
    ],
    { q: { range: [0, 1] } },
    160,
  );
  const q = seconds.map((t) => shared.get(t)!.quality);
  // A change of either target's served version, marked where it happened.
  let previous = '';
  const switches = q.map((quality) => {
    const versions = quality ? `${quality[QUOTE]?.modelVersion}|${quality[VOL]?.modelVersion}` : previous;
    const switched = previous !== '' && versions !== previous;
    previous = versions;
    return switched ? 1 : null;
  });
  qualityChart.setData([
    seconds,
    q.map((v) => v?.[QUOTE]?.auc ?? null),
    q.map((v) => v?.[VOL]?.auc ?? null),
    q.map((v) => v?.[QUOTE]?.prAuc ?? null),
    q.map((v) => v?.[VOL]?.prAuc ?? null),
    q.map((v) => v?.[QUOTE]?.brier ?? null),
    q.map((v) => v?.[VOL]?.brier ?? null),
    switches,
  ]);
  $('quality-chart').dataset.points = String(q.filter(Boolean).length);
  $('quality-chart').dataset.switches = String(switches.filter(Boolean).length);

  feedChart ??= chart(
    $('feed-chart'),
    '',
    [
      { label: 'msg/s', stroke: COLORS.mid, width: 1, scale: 'rate' },
      { label: 'heartbeat age s', stroke: COLORS.muted, width: 1, scale: 'rate' },
      { label: 'reconnects', stroke: COLORS.ask, width: 1, scale: 'rate' },
      { label: 'resyncs', stroke: COLORS.vol, width: 1, scale: 'rate' },
      { label: 'latency p50 ms', stroke: COLORS.bid, width: 1.5, scale: 'ms' },
      { label: 'latency p99 ms', stroke: COLORS.ask, width: 1.5, scale: 'ms' },
    ],
    {},
    160,
  );
  // p50 / p99 over the 30 s up to each second.
  const window: number[][] = [];
  const p50: (number | null)[] = [];
  const p99: (number | null)[] = [];
  for (const t of seconds) {
    window.push(shared.get(t)!.latencies);
    if (window.length > 30) window.shift();
    const all = window.flat();
    p50.push(quantile(all, 0.5));
    p99.push(quantile(all, 0.99));
  }
  const f = seconds.map((t) => shared.get(t)!.feed);
  feedChart.setData([
    seconds,
    f.map((v) => v?.messagesPerS ?? null),
    f.map((v) => (v?.heartbeatAgeMs == null ? null : v.heartbeatAgeMs / 1000)),
    f.map((v) => v?.reconnects ?? null),
    f.map((v) => v?.resyncs ?? null),
    p50,
    p99,
  ]);
  $('feed-chart').dataset.points = String(seconds.length);
}

function renderQuality(field: HTMLElement, q: Quality[string] | undefined): void {
  if (!q || q.n === 0) {
    set(field, 'live: awaiting labels', '');
    field.title = '';
    return;
  }
  const num = (v: number | null, digits: number) => (v === null ? '—' : fmt(v, digits));
  const base = q.baseRate === null ? '—' : `${fmt(q.baseRate * 100, 1)}%`;
  set(
    field,
    `live AUC ${num(q.auc, 3)} · PR-AUC ${num(q.prAuc ?? null, 3)} · Brier ${num(q.brier, 4)} · base ${base}`,
    q.auc ?? '',
  );
  field.title = `live quality over the last ${q.n} matured labels of ${q.modelVersion}, all products`;
}

/** The book's state and its last check against the exchange's own, flagged when either is not fine. */
function renderBook(field: HTMLElement, s: Shown): void {
  if (!s.book) {
    set(field, 'ticker only', '');
    return;
  }
  const v = s.verification;
  const check =
    !v || v.result === 'pending'
      ? 'not checked yet'
      : `${v.result} at ${new Date((v.atUs ?? 0) / 1000).toISOString().slice(11, 19)}`;
  set(field, `${s.book} · ${check}`, `${s.book}:${v?.result ?? 'pending'}`);
  field.title = v?.reason ?? '';
  field.classList.toggle('warn', s.book !== 'synced' || v?.result === 'mismatch');
}

function render(s: Shown, fetchedAt: number): void {
  const card = cardFor(s.product);
  const n = Math.round(s.tsUs / 1000 / config.tickMs);
  // Older than what is shown (a poll answered after a newer push): stale.
  if (n < card.n) return;
  const f = card.fields;
  card.snapshot = s;
  card.fetchedAt = fetchedAt;
  card.n = n;
  card.el.dataset.tsUs = String(s.tsUs);
  card.el.dataset.n = String(card.n);
  lastUpdateAt = fetchedAt;
  const digits = Math.max(decimalsOf(s.bestBid), decimalsOf(s.bestAsk));
  set(f.mid!, fmt(s.mid, digits + 1), s.mid);
  set(f.bid!, fmt(s.bestBid, digits), s.bestBid);
  set(f.ask!, fmt(s.bestAsk, digits), s.bestAsk);
  set(f.spread!, `${fmt(s.spread, digits)} (${fmt(s.spreadBps, 2)} bps)`, s.spread);
  set(f.latency!, `${fmt(s.latencyMs, 0)} ms`, s.latencyMs);
  renderBook(f.book!, s);
  for (const t of TARGETS) {
    const p = s.predictions?.[t.target];
    if (p) {
      set(f[t.prob]!, `${fmt(p.probability * 100, 1)}%`, p.probability);
      // An abstained prediction stays visible, marked, with its reason on hover.
      f[t.prob]!.classList.toggle('abstain', p.abstain !== undefined);
      f[t.prob]!.title = p.abstain ?? '';
      set(f[t.model]!, p.modelVersion, p.modelVersion);
      f[t.model]!.title = p.modelVersion;
      f[t.bar]!.style.width = `${Math.round(p.probability * 100)}%`;
    } else {
      set(f[t.prob]!, '—', '');
      set(f[t.model]!, 'no model', '');
      f[t.bar]!.style.width = '0';
    }
    renderQuality(f[t.quality]!, s.quality?.[t.target]);
  }
  const rows = [0, 1, 2].map((i) => {
    const b = s.bids[i];
    const a = s.asks[i];
    return `<tr><td class="bid">${esc(b?.[1])}</td><td class="bid">${esc(b?.[0])}</td><td class="ask">${esc(a?.[0])}</td><td class="ask">${esc(a?.[1])}</td></tr>`;
  });
  f.ladder!.querySelector('tbody')!.innerHTML = rows.join('');
  f.ladder!.dataset.value = JSON.stringify([s.bids.slice(0, 3), s.asks.slice(0, 3)]);
  if (!card.points.has(s.tsUs)) {
    const previous = [...card.points.values()].at(-1);
    card.points.set(s.tsUs, {
      bid: Number(s.bestBid),
      ask: Number(s.bestAsk),
      mid: s.mid,
      pq: s.predictions?.[QUOTE]?.probability ?? null,
      pv: s.predictions?.[VOL]?.probability ?? null,
      lq: null,
      lv: null,
    });
    if (previous !== undefined || card.points.size === 1) drawCard(card);
  }
}

let feed: {
  stats: NonNullable<Snapshot['feed']>;
  heartbeatAgeMs: number | null;
  serverTimeMs: number;
  fetchedAt: number;
} | null = null;

function setFeed(field: HTMLElement, value: unknown, before: string, strong: string, after: string): void {
  const b = document.createElement('b');
  b.textContent = strong;
  field.replaceChildren(before, b, after);
  field.dataset.value = String(value);
}

function renderFeed(now: number): void {
  if (!feed) return;
  const $feed = $('feed');
  const fields = Object.fromEntries(
    [...$feed.querySelectorAll<HTMLElement>('[data-field]')].map((f) => {
      f.dataset.testid = `feed-${f.dataset.field}`;
      return [f.dataset.field!, f];
    }),
  );
  const s = feed.stats;
  const plural = (n: number, word: string) => `${word}${n === 1 ? '' : 's'}`;
  setFeed(fields.rate!, s.messagesPerS, '', fmt(s.messagesPerS, 0), ' msg/s');
  setFeed(
    fields.reconnects!,
    s.reconnects,
    '',
    fmt(s.reconnects, 0),
    ` ${plural(s.reconnects, 'reconnect')}`,
  );
  setFeed(fields.resyncs!, s.resyncs, '', fmt(s.resyncs, 0), ` ${plural(s.resyncs, 'resync')}`);
  const hb = feed.heartbeatAgeMs === null ? null : feed.heartbeatAgeMs + (now - feed.fetchedAt);
  if (hb === null) setFeed(fields.heartbeat!, '', 'heartbeat ', 'none yet', '');
  else setFeed(fields.heartbeat!, Math.round(hb), 'heartbeat ', `${(hb / 1000).toFixed(1)} s`, ' ago');
  // Judged as /health judges it (the wall age above also counts the stats' way to the table).
  const verdict = feedVerdict(s, feed.serverTimeMs + (now - feed.fetchedAt), config.staleMs);
  $feed.classList.toggle('degraded', !verdict.ok);
  $feed.title = verdict.reason ?? '';
  $feed.hidden = false;
}

/** Ages keep ticking between polls, so a stalled worker shows even while the API answers. */
function tickAges(): void {
  const now = performance.now();
  for (const card of cards.values()) {
    if (!card.snapshot) continue;
    const age = card.snapshot.ageMs + (now - card.fetchedAt);
    set(
      card.fields.age!,
      age < 1000 ? `${Math.round(age)} ms ago` : `${(age / 1000).toFixed(1)} s ago`,
      Math.round(age),
    );
    card.el.classList.toggle('stale', down || age > config.staleMs);
  }
  renderFeed(now);
  renderMode(now);
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: 'no-store' });
  const body = (await res.json()) as T & { error?: { message: string } };
  if (!res.ok) throw new Error(body?.error ? body.error.message : `HTTP ${res.status}`);
  return body;
}

async function loadHistory(product: string, fromMs: number): Promise<void> {
  let next: string | undefined;
  do {
    const q = new URLSearchParams({ product, from: String(Math.floor(fromMs)), to: String(Date.now()) });
    if (next) q.set('next', next);
    const page = await getJson<{ rows: HistoryRow[]; next?: string }>(`/history?${q}`);
    addHistory(product, page.rows);
    next = page.next;
  } while (next);
}

/** When the API was last reachable: a gap after it is refilled from /history. */
let lastOkMs = 0;
let down = false;

async function poll(): Promise<void> {
  if (pushUp()) {
    // Push carries the live values: no /latest while the socket is up.
    setTimeout(() => void poll(), config.pollMs);
    return;
  }
  try {
    const body = await getJson<{ products: Snapshot[]; serverTimeMs: number }>('/latest');
    const fetchedAt = performance.now();
    for (const s of body.products) render(s, fetchedAt);
    let newest: Snapshot | null = null;
    for (const s of body.products) if (s.feed && (!newest || s.updatedAtMs > newest.updatedAtMs)) newest = s;
    if (newest?.feed) {
      const hb = newest.feed.lastHeartbeatUs;
      feed = {
        stats: newest.feed,
        fetchedAt,
        serverTimeMs: body.serverTimeMs,
        heartbeatAgeMs: hb > 0 ? Math.max(0, body.serverTimeMs - hb / 1000) : null,
      };
      renderFeed(fetchedAt);
    }
    live(body.products.length);
  } catch (err) {
    // The health panel says why at once rather than at its next refresh.
    if (!down) void refreshHealth();
    down = true;
    $('status').className = 'error';
    $('status').textContent = `API unavailable: ${(err as Error).message}`;
    for (const card of cards.values()) card.el.classList.add('stale');
  } finally {
    setTimeout(() => void poll(), config.pollMs);
  }
}

/** The API answered (a poll, or a push subscription): the status says so, and a gap while it was down is refilled. */
function live(products: number): void {
  $('empty').hidden = products > 0;
  $('status').className = 'ok';
  $('status').textContent = `live · ${products} product${products === 1 ? '' : 's'}`;
  if (down) {
    down = false;
    void refreshHealth();
    for (const product of cards.keys()) void loadHistory(product, lastOkMs - 5000).catch(() => {});
  }
  lastOkMs = Date.now();
}

// Push: the WebSocket API (config.wsUrl) and its client states.
type PushState = 'off' | 'connecting' | 'subscribed' | 'reconnecting' | 'backoff';
let pushState: PushState = 'off';
let socket: WebSocket | undefined;
/** Failed connects in a row (the backoff's exponent). */
let attempts = 0;
/** When push was lost (Date.now()): the seconds after it are refilled from /history once it is back. */
let lostAtMs = 0;
/** performance.now() of the last values shown, by either path. */
let lastUpdateAt = 0;
let dropped = 0;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8000;

const pushUp = () => pushState === 'subscribed' && socket?.readyState === WebSocket.OPEN;

function setPushState(state: PushState): void {
  pushState = state;
  renderMode(performance.now());
}

function renderMode(now: number): void {
  const el = $('mode');
  const mode = pushUp() ? 'push' : 'poll';
  el.dataset.mode = mode;
  el.dataset.state = pushState;
  const age = lastUpdateAt ? ` · last update ${((now - lastUpdateAt) / 1000).toFixed(1)} s ago` : '';
  el.textContent =
    mode === 'push'
      ? `push${age}`
      : config.wsUrl
        ? `polling /latest (push ${pushState === 'backoff' ? 'waiting to reconnect' : pushState})${age}`
        : `polling /latest${age}`;
}

function connectPush(): void {
  const ws = new WebSocket(config.wsUrl!);
  socket = ws;
  if (pushState !== 'reconnecting') setPushState('connecting');
  ws.onopen = () => {
    if (!document.hidden) subscribe();
  };
  ws.onmessage = (e) => {
    let message: ServerMessage;
    try {
      message = JSON.parse(String(e.data)) as ServerMessage;
    } catch {
      return;
    }
    onPush(message);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = undefined;
    if (lostAtMs === 0) lostAtMs = Date.now();
    attempts++;
    // The first retry at once (a cut at API Gateway's limits is normal), then jittered, capped backoff.
    if (attempts === 1) {
      setPushState('reconnecting');
      connectPush();
      return;
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempts - 2)) * (0.5 + Math.random() / 2);
    setPushState('backoff');
    setTimeout(() => {
      setPushState('reconnecting');
      connectPush();
    }, delay);
  };
}

function subscribe(): void {
  socket?.send(JSON.stringify({ action: 'subscribe', products: config.products }));
}

function onPush(message: ServerMessage): void {
  if (message.type === 'subscribed') {
    attempts = 0;
    setPushState('subscribed');
    show(message.snapshots, message.sentAtMs);
    if (lostAtMs > 0) {
      for (const product of cards.keys()) void loadHistory(product, lostAtMs - 5000).catch(() => {});
      lostAtMs = 0;
    }
    live(cards.size);
  } else if (message.type === 'snapshot') {
    show(message.snapshots, message.sentAtMs);
    if (down) live(cards.size);
  }
  // 'unsubscribed' (the tab is hidden) keeps the state: the socket is up, nothing is polled meanwhile.
}

/** Pushed entries: one whose counter is not above the shown one is stale and dropped. */
function show(entries: readonly PushEntry[], sentAtMs: number): void {
  const at = performance.now();
  for (const e of entries) {
    const card = cards.get(e.product);
    if (card && e.n <= card.n) {
      dropped++;
      $('mode').dataset.dropped = String(dropped);
      continue;
    }
    render({ ...e, ageMs: Math.max(0, sentAtMs - e.updatedAtMs) }, at);
  }
}

/** A hidden tab needs no pushes: it unsubscribes, and subscribes again (with the current values) when shown. */
function onVisibility(): void {
  if (socket?.readyState !== WebSocket.OPEN) return;
  if (document.hidden) {
    if (pushState === 'subscribed' && lostAtMs === 0) lostAtMs = Date.now();
    socket.send(JSON.stringify({ action: 'unsubscribe' }));
  } else {
    subscribe();
  }
}

async function refreshHealth(): Promise<void> {
  try {
    const res = await fetch('/health', { cache: 'no-store' });
    const h = (await res.json()) as { status: string; reasons: string[] };
    set($('health'), h.status, h.status);
    $('health').className = h.status === 'ok' ? 'ok' : 'degraded';
    $('health-reasons').innerHTML = '';
    for (const r of h.reasons) {
      const li = document.createElement('li');
      li.textContent = r;
      $('health-reasons').append(li);
    }
  } catch {
    set($('health'), 'unreachable', 'unreachable');
    $('health').className = 'degraded';
  }
}

async function refreshModels(): Promise<void> {
  try {
    const m = await getJson<{
      targets: {
        target: string;
        active: string | null;
        versions: {
          version: string;
          active: boolean;
          metrics: Record<string, unknown> | null;
          report: string | null;
        }[];
      }[];
    }>('/models');
    const rows = m.targets.map((t) => {
      const active = t.versions.find((v) => v.active);
      const auc = active?.metrics?.auc;
      const report = active?.report
        ? ` · <a href="${esc(active.report)}" target="_blank" rel="noopener" data-testid="report-${esc(t.target)}">run report</a>`
        : '';
      const testAuc = typeof auc === 'number' ? ` · test AUC ${fmt(auc, 3)}` : '';
      return `<tr data-testid="model-${esc(t.target)}"><td><span class="target-name">${esc(t.target)}</span><br><span class="version">${esc(t.active ?? 'no active model')}</span>${testAuc}${report}</td></tr>`;
    });
    $('models').querySelector('tbody')!.innerHTML = rows.join('');
  } catch {
    // The models line is context; the live picture does not depend on it.
  }
}

async function start(): Promise<void> {
  try {
    const v = await getJson<{ version: string; buildSha: string | null }>('/version');
    $('version').textContent = `v${v.version}${v.buildSha ? ` · ${v.buildSha.slice(0, 7)}` : ''}`;
  } catch {
    // decoration
  }
  const fromMs = Date.now() - config.historyMinutes * 60_000;
  await Promise.all(config.products.map((p) => loadHistory(p, fromMs).catch(() => {})));
  if (config.wsUrl) {
    connectPush();
    document.addEventListener('visibilitychange', onVisibility);
  }
  renderMode(performance.now());
  void poll();
  void refreshHealth();
  void refreshModels();
  setInterval(tickAges, 100);
  // Labels mature after their horizon (the vol label after a minute): re-read the recent rows now and then.
  setInterval(() => {
    for (const p of cards.keys())
      void loadHistory(p, Date.now() - (config.volHorizonS + 30) * 1000).catch(() => {});
    void refreshHealth();
  }, config.refreshMs);
  setInterval(() => void refreshModels(), Math.max(config.refreshMs, 30_000));
}

void start();
