/**
 * SNAPPY page compression for the lake: the same algorithm as hyparquet-writer's built-in compressor (snappyjs,
 * itself a port of the reference implementation), so it produces the same bytes, but written straight into one
 * reused output buffer instead of a growing ByteWriter that checks its size on every byte. Page compression was
 * about a third of the worker's Parquet encoding time. test/storage.snappy.test.ts checks byte equality with
 * the library's compressor.
 */

const MAX_HASH_TABLE_BITS = 14;
const MAX_OFFSET = 0xffff;
const INPUT_MARGIN = 15;
const hashTables: (Uint32Array | undefined)[] = [];
let out = new Uint8Array(1 << 16);

const hash = (key: number, shift: number) => Math.imul(key, 0x1e35a7bd) >>> shift;

function load32(a: Uint8Array, i: number): number {
  return a[i]! + (a[i + 1]! << 8) + (a[i + 2]! << 16) + (a[i + 3]! << 24);
}

function equals32(a: Uint8Array, i: number, j: number): boolean {
  return a[i] === a[j] && a[i + 1] === a[j + 1] && a[i + 2] === a[j + 2] && a[i + 3] === a[j + 3];
}

/** Snappy's bound on the compressed size (uncompressed length varint included). */
const maxCompressedLength = (n: number) => 32 + n + Math.floor(n / 6);

/** Emits input[from, from + len) as a literal at out[op]; returns the new output position. */
function literal(o: Uint8Array, op: number, input: Uint8Array, from: number, len: number): number {
  if (len <= 60) {
    o[op++] = (len - 1) << 2;
  } else {
    const value = len - 1;
    const bytes = value < 0x100 ? 1 : value < 0x10000 ? 2 : value < 0x1000000 ? 3 : 4;
    o[op++] = (59 + bytes) << 2;
    for (let i = 0; i < bytes; i++) o[op++] = (value >>> (i * 8)) & 0xff;
  }
  o.set(input.subarray(from, from + len), op);
  return op + len;
}

function copyLessThan64(o: Uint8Array, op: number, offset: number, len: number): number {
  if (len < 12 && offset < 2048) {
    o[op++] = 1 + ((len - 4) << 2) + ((offset >>> 8) << 5);
    o[op++] = offset & 0xff;
  } else {
    o[op++] = 2 + ((len - 1) << 2);
    o[op++] = offset & 0xff;
    o[op++] = offset >>> 8;
  }
  return op;
}

function copy(o: Uint8Array, op: number, offset: number, len: number): number {
  while (len >= 68) {
    op = copyLessThan64(o, op, offset, 64);
    len -= 64;
  }
  if (len > 64) {
    op = copyLessThan64(o, op, offset, 60);
    len -= 60;
  }
  return copyLessThan64(o, op, offset, len);
}

export function snappyCompress(input: Uint8Array): Uint8Array {
  const n = input.length;
  if (out.length < maxCompressedLength(n)) out = new Uint8Array(maxCompressedLength(n) * 2);
  const o = out;
  let op = 0;
  for (let v = n; ; v = Math.floor(v / 128)) {
    if (v < 128) {
      o[op++] = v;
      break;
    }
    o[op++] = (v & 0x7f) | 0x80;
  }

  let bits = 1;
  while (1 << bits <= n && bits <= MAX_HASH_TABLE_BITS) bits++;
  bits--;
  const shift = 32 - bits;
  let table = hashTables[bits];
  if (table) table.fill(0);
  else {
    table = new Uint32Array(1 << bits);
    hashTables[bits] = table;
  }

  let nextEmit = 0;
  if (n >= INPUT_MARGIN) {
    const ipLimit = n - INPUT_MARGIN;
    let ip = 1;
    let nextHash = hash(load32(input, ip), shift);
    let running = true;
    while (running) {
      let skip = 32;
      let nextIp = ip;
      let candidate = 0;
      do {
        ip = nextIp;
        const h = nextHash;
        const step = skip >>> 5;
        skip++;
        nextIp = ip + step;
        if (ip > ipLimit) {
          running = false;
          break;
        }
        nextHash = hash(load32(input, nextIp), shift);
        candidate = table[h]!;
        table[h] = ip;
      } while (ip - candidate > MAX_OFFSET || !equals32(input, ip, candidate));
      if (!running) break;

      op = literal(o, op, input, nextEmit, ip - nextEmit);
      do {
        const base = ip;
        let matched = 4;
        while (ip + matched < n && input[ip + matched] === input[candidate + matched]) matched++;
        ip += matched;
        op = copy(o, op, base - candidate, matched);
        nextEmit = ip;
        if (ip >= ipLimit) {
          running = false;
          break;
        }
        table[hash(load32(input, ip - 1), shift)] = ip - 1;
        const h = hash(load32(input, ip), shift);
        candidate = table[h]!;
        table[h] = ip;
      } while (ip - candidate <= MAX_OFFSET && equals32(input, ip, candidate));
      if (!running) break;
      ip++;
      nextHash = hash(load32(input, ip), shift);
    }
  }
  if (nextEmit < n) op = literal(o, op, input, nextEmit, n - nextEmit);
  return o.slice(0, op);
}
