/**
 * One side of a book: levels sorted ascending by key, held in fixed-size pages of Float64Arrays (a two-level
 * B-tree in effect). An update binary-searches the page maxima, then the page, and shifts at most one page
 * (PAGE elements) with copyWithin, so its cost does not grow with the distance from the best as one big
 * sorted array's splice did (real BTC updates land a median ~11k ticks from the best).
 *
 * The best level is the LAST key, so top-N reads look at the last page only.
 */
const PAGE = 128;
/** Two neighbours that fit in this many levels are merged, so pages stay at least ~1/4 full on average. */
const MERGE = PAGE / 2;
/** Pages below the best one that set() checks one by one before it binary-searches the rest. */
const NEAR = 4;

export class PagedSide {
  /** Page p holds level i's key at [2i] and its size at [2i + 1]: a found key's size is on its cache line. */
  private pages: Float64Array[] = [];
  /**
   * Level count and separator of each page, parallel to pages: maxKeys[p] is >= every key of page p
   * and < every key of page p + 1 (it may stay above the page's last key after a removal, which is harmless).
   */
  private lens: number[] = [];
  private maxKeys: number[] = [];
  /** Freed pages, reused so steady churn allocates nothing. */
  private spare: Float64Array[] = [];
  private count = 0;

  get depth(): number {
    return this.count;
  }

  /** Sets the size at `key`; 0 removes the level. */
  set(key: number, size: number): void {
    const pages = this.maxKeys.length;
    if (pages === 0) {
      if (size !== 0) this.insertPage(0, key, size);
      return;
    }
    // First page whose largest key is >= key; past all of them, the last page (append). Most real updates
    // land within a few pages of the best (the last page), so walk down from it before binary searching.
    const maxKeys = this.maxKeys;
    let p = pages - 1;
    const stop = p > NEAR ? p - NEAR : 0;
    while (p > stop && maxKeys[p - 1]! >= key) p--;
    if (p === stop && p > 0 && maxKeys[p - 1]! >= key) {
      let lo = 0;
      let hi = p - 1;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (maxKeys[mid]! < key) lo = mid + 1;
        else hi = mid;
      }
      p = lo;
    }
    const page = this.pages[p]!;
    const len = this.lens[p]!;
    let a = 0;
    let b = len - 1;
    while (a <= b) {
      const mid = (a + b) >>> 1;
      const k = page[2 * mid]!;
      if (k < key) a = mid + 1;
      else if (k > key) b = mid - 1;
      else {
        if (size === 0) this.removeAt(p, mid);
        else page[2 * mid + 1] = size;
        return;
      }
    }
    if (size !== 0) this.insertAt(p, a, key, size);
  }

  private insertAt(p: number, at: number, key: number, size: number): void {
    let len = this.lens[p]!;
    if (len === PAGE) {
      this.split(p);
      len = this.lens[p]!;
      if (at > len) {
        p++;
        at -= len;
        len = this.lens[p]!;
      }
    }
    const page = this.pages[p]!;
    if (at < len) page.copyWithin(2 * at + 2, 2 * at, 2 * len);
    page[2 * at] = key;
    page[2 * at + 1] = size;
    this.lens[p] = len + 1;
    if (at === len) this.maxKeys[p] = key;
    this.count++;
  }

  private removeAt(p: number, at: number): void {
    const len = this.lens[p]! - 1;
    if (at < len) this.pages[p]!.copyWithin(2 * at, 2 * at + 2, 2 * len + 2);
    this.lens[p] = len;
    this.count--;
    if (len === 0) {
      this.dropPage(p);
      return;
    }
    if (p + 1 < this.lens.length && len + this.lens[p + 1]! <= MERGE) this.merge(p);
    else if (p > 0 && len + this.lens[p - 1]! <= MERGE) this.merge(p - 1);
  }

  /** Moves the upper half of full page p into a new page p + 1. */
  private split(p: number): void {
    const half = PAGE >>> 1;
    const page = this.newPage();
    page.set(this.pages[p]!.subarray(2 * half, 2 * PAGE));
    this.pages.splice(p + 1, 0, page);
    this.lens.splice(p + 1, 0, PAGE - half);
    this.maxKeys.splice(p + 1, 0, this.maxKeys[p]!);
    this.lens[p] = half;
    this.maxKeys[p] = this.pages[p]![2 * half - 2]!;
  }

  /** Appends page p + 1 to page p and drops it. */
  private merge(p: number): void {
    const len = this.lens[p]!;
    const next = this.lens[p + 1]!;
    this.pages[p]!.set(this.pages[p + 1]!.subarray(0, 2 * next), 2 * len);
    this.lens[p] = len + next;
    this.maxKeys[p] = this.maxKeys[p + 1]!;
    this.dropPage(p + 1);
  }

  private insertPage(p: number, key: number, size: number): void {
    const page = this.newPage();
    page[0] = key;
    page[1] = size;
    this.pages.splice(p, 0, page);
    this.lens.splice(p, 0, 1);
    this.maxKeys.splice(p, 0, key);
    this.count++;
  }

  private dropPage(p: number): void {
    this.spare.push(this.pages[p]!);
    this.pages.splice(p, 1);
    this.lens.splice(p, 1);
    this.maxKeys.splice(p, 1);
  }

  private newPage(): Float64Array {
    return this.spare.pop() ?? new Float64Array(2 * PAGE);
  }

  /**
   * Key of the i-th level from the best (0 = best), NaN past the end. Walks pages from the best one, so
   * it costs O(1) for the top levels and O(i / PAGE) deep in the book.
   */
  keyAt(i: number): number {
    let p = this.lens.length - 1;
    while (p >= 0 && i >= this.lens[p]!) i -= this.lens[p--]!;
    return p < 0 || i < 0 ? Number.NaN : this.pages[p]![2 * (this.lens[p]! - 1 - i)]!;
  }

  sizeAt(i: number): number {
    let p = this.lens.length - 1;
    while (p >= 0 && i >= this.lens[p]!) i -= this.lens[p--]!;
    return p < 0 || i < 0 ? Number.NaN : this.pages[p]![2 * (this.lens[p]! - 1 - i) + 1]!;
  }

  clear(): void {
    for (let p = 0; p < this.pages.length; p++) this.spare.push(this.pages[p]!);
    this.pages.length = 0;
    this.lens.length = 0;
    this.maxKeys.length = 0;
    this.count = 0;
  }
}
