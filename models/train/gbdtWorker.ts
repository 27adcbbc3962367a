/**
 * The histogram worker of models/train/gbdt.ts: a self-contained function (no imports, no closure) that the
 * trainer starts as a worker thread from its source text, so it runs the same under tsx, vitest and the esbuild
 * bundle. It owns the features [featureLo, featureHi) and answers one message at a time:
 *   { op: 'bin', values, rows, step, maxBins, out }  bin edges of its features from every `step`-th row
 *        (distinct training values at evenly spaced ranks), then every row's 8-bit codes into `out` -> { edges }
 *   { op: 'code', values, rows, out }  the codes of other rows (validation) with those edges -> {}
 *   { op: 'partition', parts }  stable partitions of node ranges of `order` by a split -> { mids }
 *   { op: 'level', tasks }  per node of a level, the gradient/hessian histogram of its features (256 slots per
 *        feature: the codes, slot 255 = missing), over the node's rows ({ node, start, end }) or as parent minus
 *        sibling ({ node, parent, sibling }, the sibling listed before), and the best split of each node over its
 *        features -> { splits: { node, gain, feature, bin, missingLeft, leftG, leftH, rightG, rightH }[] }
 * or { error } when anything throws. Shared memory (workerData): codes (row-major), grad, hess, order (the rows
 * partitioned by node, ascending within each node).
 */
export function histogramWorker(): void {
  // biome-ignore lint/suspicious/noExplicitAny: the worker's globals are reached by require (no imports allowed)
  const { parentPort, workerData } = (globalThis as any).process.getBuiltinModule('node:worker_threads');
  const codes: Uint8Array = workerData.codes;
  const grad: Float32Array = workerData.grad;
  const hess: Float32Array = workerData.hess;
  const order: Uint32Array = workerData.order;
  const n: number = workerData.n;
  const F: number = workerData.features;
  /** Per own feature: its edges (ascending) and bins (edges + 1). */
  let edges: Float32Array[] = [];
  let bins = new Int32Array(0);
  const l2: number = workerData.l2;
  const minChildWeight: number = workerData.minChildWeight;
  const lo: number = workerData.featureLo;
  const hi: number = workerData.featureHi;
  const width = (hi - lo) * 512; // per feature 256 slots of (gradient, hessian)
  const MISSING = 255;
  let hists = new Map<number, Float64Array>();
  const W = hi - lo;
  let scratch = new Uint32Array(0);

  const binOf = (e: Float32Array, v: number): number => {
    if (Number.isNaN(v)) return MISSING;
    let a = 0;
    let b = e.length;
    while (a < b) {
      const mid = (a + b) >> 1;
      if (e[mid]! < v) a = mid + 1;
      else b = mid;
    }
    return a;
  };

  const code = (values: Float32Array, rows: number, out: Uint8Array) => {
    for (let f = lo; f < hi; f++) {
      const e = edges[f - lo]!;
      for (let r = 0; r < rows; r++) out[r * F + f] = binOf(e, values[r * F + f]!);
    }
  };

  const bin = (values: Float32Array, rows: number, step: number, maxBins: number, out: Uint8Array) => {
    edges = [];
    const sample = new Float32Array(Math.ceil(rows / step));
    for (let f = lo; f < hi; f++) {
      let m = 0;
      for (let r = 0; r < rows; r += step) {
        const v = values[r * F + f]!;
        if (!Number.isNaN(v)) sample[m++] = v;
      }
      const sorted = sample.subarray(0, m).sort();
      const e: number[] = [];
      // maxBins bins need maxBins - 1 edges.
      for (let k = 1; k < maxBins && m > 0; k++) {
        const v = sorted[Math.min(m - 1, Math.floor((k * m) / maxBins))]!;
        if (e.length === 0 || v > e[e.length - 1]!) e.push(v);
      }
      // An edge at the largest value would leave nothing above it to split from.
      if (e.length > 0 && e[e.length - 1]! >= sorted[m - 1]!) e.pop();
      edges.push(Float32Array.from(e));
    }
    bins = Int32Array.from(edges, (e) => e.length + 1);
    code(values, rows, out);
    return edges;
  };

  const partition = (p: {
    start: number;
    end: number;
    feature: number;
    bin: number;
    missingLeft: number;
  }) => {
    if (scratch.length < p.end - p.start) scratch = new Uint32Array(p.end - p.start);
    let l = p.start;
    let r = 0;
    const missLeft = p.missingLeft === 1;
    for (let k = p.start; k < p.end; k++) {
      const row = order[k]!;
      const c = codes[row * F + p.feature]!;
      if (c === MISSING ? missLeft : c <= p.bin) order[l++] = row;
      else scratch[r++] = row;
    }
    order.set(scratch.subarray(0, r), l);
    return l;
  };

  /** The histogram of rows order[start, end) (all rows when they are all of them: a plain forward scan). */
  const build = (start: number, end: number): Float64Array => {
    const hist = new Float64Array(width);
    if (end - start === n) {
      for (let r = 0; r < n; r++) {
        const gv = grad[r]!;
        const hv = hess[r]!;
        const o = r * F + lo;
        for (let f = 0; f < W; f++) {
          const slot = f * 512 + 2 * codes[o + f]!;
          hist[slot]! += gv;
          hist[slot + 1]! += hv;
        }
      }
      return hist;
    }
    for (let k = start; k < end; k++) {
      const r = order[k]!;
      const gv = grad[r]!;
      const hv = hess[r]!;
      const o = r * F + lo;
      for (let f = 0; f < W; f++) {
        const slot = f * 512 + 2 * codes[o + f]!;
        hist[slot]! += gv;
        hist[slot + 1]! += hv;
      }
    }
    return hist;
  };

  const score = (g: number, h: number) => (g * g) / (h + l2);

  const bestSplit = (node: number, hist: Float64Array) => {
    let best = {
      node,
      gain: Number.NEGATIVE_INFINITY,
      feature: -1,
      bin: -1,
      missingLeft: 0,
      leftG: 0,
      leftH: 0,
      rightG: 0,
      rightH: 0,
    };
    for (let f = lo; f < hi; f++) {
      const base = (f - lo) * 512;
      const nb = bins[f - lo]!;
      if (nb < 2) continue;
      let G = 0;
      let H = 0;
      for (let b = 0; b < nb; b++) {
        G += hist[base + 2 * b]!;
        H += hist[base + 2 * b + 1]!;
      }
      const Gm = hist[base + 2 * MISSING]!;
      const Hm = hist[base + 2 * MISSING + 1]!;
      G += Gm;
      H += Hm;
      const parent = score(G, H);
      let GL = 0;
      let HL = 0;
      for (let b = 0; b < nb - 1; b++) {
        GL += hist[base + 2 * b]!;
        HL += hist[base + 2 * b + 1]!;
        for (let m = 0; m < (Hm > 0 ? 2 : 1); m++) {
          const gl = m === 1 ? GL + Gm : GL;
          const hl = m === 1 ? HL + Hm : HL;
          const gr = G - gl;
          const hr = H - hl;
          if (hl < minChildWeight || hr < minChildWeight) continue;
          const gain = score(gl, hl) + score(gr, hr) - parent;
          if (gain > best.gain) {
            best = {
              node,
              gain,
              feature: f,
              bin: b,
              missingLeft: m,
              leftG: gl,
              leftH: hl,
              rightG: gr,
              rightH: hr,
            };
          }
        }
      }
    }
    return best;
  };

  type Task = { node: number; start?: number; end?: number; parent?: number; sibling?: number };
  type Message =
    | { op: 'bin'; values: Float32Array; rows: number; step: number; maxBins: number; out: Uint8Array }
    | { op: 'code'; values: Float32Array; rows: number; out: Uint8Array }
    | {
        op: 'partition';
        parts: { start: number; end: number; feature: number; bin: number; missingLeft: number }[];
      }
    | { op: 'level'; tasks: Task[] };

  const level = (tasks: Task[]) => {
    const next = new Map<number, Float64Array>();
    for (const t of tasks) {
      if (t.parent === undefined) {
        next.set(t.node, build(t.start!, t.end!));
      } else {
        const parent = hists.get(t.parent)!;
        const sibling = next.get(t.sibling!)!;
        const hist = new Float64Array(width);
        for (let i = 0; i < width; i++) hist[i] = parent[i]! - sibling[i]!;
        next.set(t.node, hist);
      }
    }
    hists = next;
    return tasks.map((t) => bestSplit(t.node, next.get(t.node)!)).filter((s) => s.feature >= 0);
  };

  parentPort.on('message', (msg: Message) => {
    try {
      if (msg.op === 'bin')
        parentPort.postMessage({ edges: bin(msg.values, msg.rows, msg.step, msg.maxBins, msg.out) });
      else if (msg.op === 'code') {
        code(msg.values, msg.rows, msg.out);
        parentPort.postMessage({});
      } else if (msg.op === 'partition') parentPort.postMessage({ mids: msg.parts.map(partition) });
      else parentPort.postMessage({ splits: level(msg.tasks) });
    } catch (err) {
      parentPort.postMessage({ error: String((err as Error)?.stack ?? err) });
    }
  });
}
