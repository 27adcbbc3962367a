/**
 * The histogram worker of models/train/gbdt.ts: a self-contained function (no imports, no closure) that the
 * trainer starts as a worker thread from its source text, so it runs the same under tsx, vitest and the esbuild
 * bundle. It owns the features [featureLo, featureHi) for binning, histograms and split search; partitions,
 * margins and gradients are spread over the workers by rows. It answers one message at a time:
 *   { op: 'bin', values, rows, step, maxBins, out }  bin edges of its features from every `step`-th row
 *        (distinct training values at evenly spaced ranks), then every row's 8-bit codes into `out` (the
 *        layout below) -> { edges }
 *   { op: 'code', values, rows, out }  the codes of other rows (validation) with those edges -> {}
 *   { op: 'leaves', parts }  per part { start, end, value, identity }: its rows' margins += value -> {}
 *   { op: 'grad', parts }  per part (rows start..end) the gradient and hessian of the log loss at the rows'
 *        margins, and the part's sums -> { sums: [G0, H0, G1, H1, ...] }
 *   { op: 'partition', parts }  stable partitions of node ranges of `order` by a split -> { mids }
 *   { op: 'level', tasks }  per node of a level, the gradient/hessian histogram of its features (256 slots per
 *        feature: the codes, slot 255 = missing), over the node's rows ({ node, start, end, identity }) or as
 *        parent minus sibling ({ node, parent, sibling }, the sibling listed before), and the best split of each
 *        node over its features -> { splits: { node, gain, feature, bin, missingLeft, leftG, leftH, rightG, rightH }[] }
 * or { error } when anything throws. A range read as `identity` is rows start..end themselves (the root: every
 * row, whatever `order` holds from the last tree); otherwise order[start..end).
 *
 * Shared memory (workerData): codes, gh (gradient and hessian of row r at 2r, 2r+1, float32), order (the rows
 * partitioned by node, ascending within each node), margin, y. Codes are column-major in columns of 32-bit
 * words, each word four features' codes of one row: feature f of row r is byte shift[f] / 8 of word
 * codes[word[f] * n + r] (little-endian). A histogram pass over a node's rows reads one word per row for four
 * features, or two for eight when two full words follow each other. The root reads the columns in place; another
 * node first gathers its rows' records into contiguous scratch: each worker keeps one record per row (its own
 * code words, then the row's gradient and hessian, filed at each root), so a row is one memory access, and the
 * gather touches 64 rows ahead so that many of those misses are in flight at once.
 */
export function histogramWorker(): void {
  // biome-ignore lint/suspicious/noExplicitAny: the worker's globals are reached by require (no imports allowed)
  const { parentPort, workerData } = (globalThis as any).process.getBuiltinModule('node:worker_threads');
  const codes: Int32Array = workerData.codes;
  const word: Int32Array = workerData.word;
  const shift: Int32Array = workerData.shift;
  const gh: Float32Array = workerData.gh;
  const order: Uint32Array = workerData.order;
  const margin: Float64Array = workerData.margin;
  const y: Uint8Array = workerData.y;
  const n: number = workerData.n;
  const l2: number = workerData.l2;
  const minChildWeight: number = workerData.minChildWeight;
  const lo: number = workerData.featureLo;
  const hi: number = workerData.featureHi;
  const W = hi - lo;
  const width = W * 512; // per feature 256 slots of (gradient, hessian)
  const MISSING = 255;
  /** Per own feature: its edges (ascending) and bins (edges + 1). */
  let edges: Float32Array[] = [];
  let bins = new Int32Array(0);
  /** The own features that can split (≥ 2 bins), local indices. */
  let active: number[] = [];
  /** The own words: per word its column and the own features in it (local indices, by byte). */
  const groups: { column: number; features: number[] }[] = [];
  for (let f = lo; f < hi; f++) {
    const column = word[f]!;
    const g = groups.find((x) => x.column === column);
    if (g) g.features[shift[f]! >> 3] = f - lo;
    else groups.push({ column, features: [f - lo] });
  }
  let hists = new Map<number, Float64Array>();
  const spare: Float64Array[] = [];
  let scratch = new Uint32Array(0);
  /**
   * Per row a record of R = groups + 2 words: the own code words, then the row's gradient and hessian (float32
   * bits; copied in at each root), so a scattered row is gathered from one place. Scratch has the same shape.
   */
  const R = groups.length + 2;
  let records = new Int32Array(0);
  let recordsF = new Float32Array(0);
  let scratchCodes = new Int32Array(0);
  // biome-ignore lint/correctness/noUnusedVariables: only written, so that build() keeps its prefetching loads
  let touched = 0;
  let scratchF = new Float32Array(0);

  /**
   * The number of edges below v (NaN: MISSING), as src/model/inputs.ts binOf counts them, in eight fixed steps
   * over the edges padded to 255 with +Infinity (never below v): half the time of a loop whose branches the
   * CPU cannot predict.
   */
  const binOf = (p: Float32Array, v: number): number => {
    if (Number.isNaN(v)) return MISSING;
    let a = 0;
    if (p[a + 127]! < v) a += 128;
    if (p[a + 63]! < v) a += 64;
    if (p[a + 31]! < v) a += 32;
    if (p[a + 15]! < v) a += 16;
    if (p[a + 7]! < v) a += 8;
    if (p[a + 3]! < v) a += 4;
    if (p[a + 1]! < v) a += 2;
    if (p[a]! < v) a += 1;
    return a;
  };
  /** Per own feature its edges padded to 256 with +Infinity (binOf). */
  let padded: Float32Array[] = [];

  /** Codes of row-major values, in blocks of rows so that a block's values stay in cache across features. */
  const code = (values: Float32Array, rows: number, out: Uint8Array) => {
    const F = values.length / rows;
    const BLOCK = 2048;
    for (let r0 = 0; r0 < rows; r0 += BLOCK) {
      const r1 = Math.min(rows, r0 + BLOCK);
      for (let f = lo; f < hi; f++) {
        const e = padded[f - lo]!;
        const o = word[f]! * rows * 4 + (shift[f]! >> 3);
        for (let r = r0; r < r1; r++) out[o + 4 * r] = binOf(e, values[r * F + f]!);
      }
    }
  };

  const bin = (values: Float32Array, rows: number, step: number, maxBins: number, out: Uint8Array) => {
    const F = values.length / rows;
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
    padded = edges.map((e) => {
      const p = new Float32Array(256).fill(Number.POSITIVE_INFINITY);
      p.set(e);
      return p;
    });
    active = [];
    for (let f = 0; f < W; f++) if (bins[f]! >= 2) active.push(f);
    code(values, rows, out);
    records = new Int32Array(n * R);
    recordsF = new Float32Array(records.buffer);
    for (let j = 0; j < groups.length; j++) {
      const col = groups[j]!.column * n;
      for (let r = 0; r < n; r++) records[r * R + j] = codes[col + r]!;
    }
    return edges;
  };

  const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

  /** Adds a leaf's value to its rows' margins (a scattered pass with nothing else in it: many loads in flight). */
  const leaf = (p: { start: number; end: number; value: number; identity: number }) => {
    const v = p.value;
    if (p.identity === 1) for (let r = p.start; r < p.end; r++) margin[r]! += v;
    else for (let k = p.start; k < p.end; k++) margin[order[k]!]! += v;
  };

  /** The gradients of rows start..end (a forward pass), and their sums. */
  const grad = (p: { start: number; end: number }, sums: number[]) => {
    let G = 0;
    let H = 0;
    for (let r = p.start; r < p.end; r++) {
      const q = sigmoid(margin[r]!);
      const g = q - y[r]!;
      const h = Math.max(q * (1 - q), 1e-16);
      gh[2 * r] = g;
      gh[2 * r + 1] = h;
      // The sums of the stored (float32) values, as the histograms add them.
      G += gh[2 * r]!;
      H += gh[2 * r + 1]!;
    }
    sums.push(G, H);
  };

  /** Left rows first, both halves in their old order; returns the first right-hand index. */
  const partition = (p: {
    start: number;
    end: number;
    feature: number;
    bin: number;
    missingLeft: number;
    identity: number;
  }) => {
    if (scratch.length < p.end - p.start) scratch = new Uint32Array(p.end - p.start);
    const col = word[p.feature]! * n;
    const sh = shift[p.feature]!;
    const bin = p.bin;
    // Missing (255) goes left when the split says so: compare it as bin 0 then.
    const missing = p.missingLeft === 1 ? 0 : MISSING;
    let l = p.start;
    let r = 0;
    if (p.identity === 1) {
      for (let row = p.start; row < p.end; row++) {
        const c = (codes[col + row]! >>> sh) & 255;
        const left = (c === MISSING ? missing : c) <= bin ? 1 : 0;
        // Branch-free: the row goes to both places, the counters say which copy counts.
        order[l] = row;
        scratch[r] = row;
        l += left;
        r += 1 - left;
      }
    } else {
      for (let k = p.start; k < p.end; k++) {
        const row = order[k]!;
        const c = (codes[col + row]! >>> sh) & 255;
        const left = (c === MISSING ? missing : c) <= bin ? 1 : 0;
        order[l] = row;
        scratch[r] = row;
        l += left;
        r += 1 - left;
      }
    }
    order.set(scratch.subarray(0, r), l);
    return l;
  };

  const take = (): Float64Array => {
    const h = spare.pop();
    if (h) return h;
    return new Float64Array(width);
  };

  /** The histogram of a node's rows: one pass per word (four features) over them. */
  const build = (start: number, end: number, identity: boolean): Float64Array => {
    const hist = take();
    hist.fill(0);
    const m = end - start;
    const G = groups.length;
    // The root reads rows 0..n-1, their codes and gradients in place (and files the gradients in the records).
    let src = codes;
    let gs = gh;
    let gBase = 0;
    let gStride = 2;
    if (identity) {
      for (let r = 0; r < n; r++) {
        recordsF[r * R + G] = gh[2 * r]!;
        recordsF[r * R + G + 1] = gh[2 * r + 1]!;
      }
    } else {
      // Another node's rows are scattered: gather their records first, in one tight loop (one memory access
      // per row, many in flight), into scratch that the passes below read forward.
      if (scratchCodes.length < R * m) {
        scratchCodes = new Int32Array(R * m);
        scratchF = new Float32Array(scratchCodes.buffer);
      }
      const from = records;
      const to = scratchCodes;
      for (let k0 = 0; k0 < m; k0 += 64) {
        const k1 = Math.min(m, k0 + 64);
        // First touch the next 64 rows' records in a loop with almost nothing else in it, so that the CPU
        // has many of their cache misses in flight at once (JavaScript has no prefetch); then copy them.
        let touch = 0;
        for (let k = k0; k < k1; k++) touch ^= from[order[start + k]! * R]!;
        touched ^= touch;
        for (let k = k0; k < k1; k++) {
          const o = order[start + k]! * R;
          const d = k * R;
          let j = 0;
          for (; j + 3 < R; j += 4) {
            to[d + j] = from[o + j]!;
            to[d + j + 1] = from[o + j + 1]!;
            to[d + j + 2] = from[o + j + 2]!;
            to[d + j + 3] = from[o + j + 3]!;
          }
          for (; j < R; j++) to[d + j] = from[o + j]!;
        }
      }
      src = scratchCodes;
      gs = scratchF;
      gBase = G;
      gStride = R;
    }
    const stride = identity ? 1 : R;
    for (let j = 0; j < G; j++) {
      const { column, features } = groups[j]!;
      // Word j of row k: codes[column * n + k] in place, scratchCodes[k * R + j] gathered.
      const col = identity ? column * n : j;
      const next = groups[j + 1];
      if (features.length === 4 && next?.features.length === 4) {
        // Two words, eight features, per pass: half the passes over the rows and their gradients.
        const d2 = identity ? (next.column - column) * n : 1;
        const h0 = features[0]! * 512;
        const h1 = features[1]! * 512;
        const h2 = features[2]! * 512;
        const h3 = features[3]! * 512;
        const h4 = next.features[0]! * 512;
        const h5 = next.features[1]! * 512;
        const h6 = next.features[2]! * 512;
        const h7 = next.features[3]! * 512;
        let wi = col;
        let gi = gBase;
        for (let k = 0; k < m; k++) {
          const w = src[wi]!;
          const x = src[wi + d2]!;
          const g = gs[gi]!;
          const h = gs[gi + 1]!;
          wi += stride;
          gi += gStride;
          const s0 = h0 + ((w & 255) << 1);
          hist[s0]! += g;
          hist[s0 + 1]! += h;
          const s1 = h1 + ((w >>> 7) & 510);
          hist[s1]! += g;
          hist[s1 + 1]! += h;
          const s2 = h2 + ((w >>> 15) & 510);
          hist[s2]! += g;
          hist[s2 + 1]! += h;
          const s3 = h3 + ((w >>> 23) & 510);
          hist[s3]! += g;
          hist[s3 + 1]! += h;
          const s4 = h4 + ((x & 255) << 1);
          hist[s4]! += g;
          hist[s4 + 1]! += h;
          const s5 = h5 + ((x >>> 7) & 510);
          hist[s5]! += g;
          hist[s5 + 1]! += h;
          const s6 = h6 + ((x >>> 15) & 510);
          hist[s6]! += g;
          hist[s6 + 1]! += h;
          const s7 = h7 + ((x >>> 23) & 510);
          hist[s7]! += g;
          hist[s7 + 1]! += h;
        }
        j++;
      } else if (features.length === 4) {
        // Histogram offsets of the four features; slot = offset + 2 * code.
        const ha = features[0]! * 512;
        const hb = features[1]! * 512;
        const hc = features[2]! * 512;
        const hd = features[3]! * 512;
        for (let k = 0; k < m; k++) {
          const w = src[col + k * stride]!;
          const g = gs[gBase + k * gStride]!;
          const h = gs[gBase + k * gStride + 1]!;
          const sa = ha + ((w & 255) << 1);
          hist[sa]! += g;
          hist[sa + 1]! += h;
          const sb = hb + ((w >>> 7) & 510);
          hist[sb]! += g;
          hist[sb + 1]! += h;
          const sc = hc + ((w >>> 15) & 510);
          hist[sc]! += g;
          hist[sc + 1]! += h;
          const sd = hd + ((w >>> 23) & 510);
          hist[sd]! += g;
          hist[sd + 1]! += h;
        }
      } else {
        for (let j = 0; j < features.length; j++) {
          const hf = features[j]! * 512;
          const sh = 8 * j;
          for (let k = 0; k < m; k++) {
            const s = hf + (((src[col + k * stride]! >>> sh) & 255) << 1);
            hist[s]! += gs[gBase + k * gStride]!;
            hist[s + 1]! += gs[gBase + k * gStride + 1]!;
          }
        }
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
    for (const fl of active) {
      const base = fl * 512;
      const nb = bins[fl]!;
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
              feature: lo + fl,
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

  type Task = {
    node: number;
    start?: number;
    end?: number;
    identity?: number;
    parent?: number;
    sibling?: number;
  };
  type Part = { start: number; end: number; value: number; identity: number };
  type Message =
    | { op: 'bin'; values: Float32Array; rows: number; step: number; maxBins: number; out: Uint8Array }
    | { op: 'code'; values: Float32Array; rows: number; out: Uint8Array }
    | { op: 'leaves'; parts: Part[] }
    | { op: 'grad'; parts: { start: number; end: number }[] }
    | {
        op: 'partition';
        parts: {
          start: number;
          end: number;
          feature: number;
          bin: number;
          missingLeft: number;
          identity: number;
        }[];
      }
    | { op: 'level'; tasks: Task[] };

  const level = (tasks: Task[]) => {
    const next = new Map<number, Float64Array>();
    for (const t of tasks) {
      if (t.parent === undefined) {
        next.set(t.node, build(t.start!, t.end!, t.identity === 1));
      } else {
        const parent = hists.get(t.parent)!;
        const sibling = next.get(t.sibling!)!;
        // The parent's histogram becomes the larger child's: nothing else reads it after this.
        for (let i = 0; i < width; i++) parent[i] = parent[i]! - sibling[i]!;
        hists.delete(t.parent);
        next.set(t.node, parent);
      }
    }
    for (const h of hists.values()) spare.push(h);
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
      } else if (msg.op === 'leaves') {
        for (const p of msg.parts) leaf(p);
        parentPort.postMessage({});
      } else if (msg.op === 'grad') {
        const sums: number[] = [];
        for (const p of msg.parts) grad(p, sums);
        parentPort.postMessage({ sums });
      } else if (msg.op === 'partition') parentPort.postMessage({ mids: msg.parts.map(partition) });
      else parentPort.postMessage({ splits: level(msg.tasks) });
    } catch (err) {
      parentPort.postMessage({ error: String((err as Error)?.stack ?? err) });
    }
  });
}
