/**
 * De-duplication stage: the stream is at-least-once (producer retries, overlapping replays after a restart),
 * so every event id is remembered in a bounded set and a repeat is dropped before it reaches the book.
 */

/** Insertion-ordered set that forgets its oldest entries past `capacity`; a hit refreshes the entry. */
export class LruSet {
  private readonly map = new Map<string, true>();
  constructor(readonly capacity: number) {}

  /** True if `key` was already present; records it either way. */
  seen(key: string): boolean {
    if (this.map.has(key)) {
      this.map.delete(key);
      this.map.set(key, true);
      return true;
    }
    this.map.set(key, true);
    if (this.map.size > this.capacity) this.evictOldest();
    return false;
  }

  /**
   * One long-lived keys() iterator instead of a new one per eviction: a Map iterator goes on over entries added
   * after it was made, and every entry before its position was evicted, so its next key is always the oldest.
   */
  private oldest: Iterator<string> | undefined;
  private evictOldest(): void {
    let next = this.oldest?.next();
    if (!next || next.done) {
      this.oldest = this.map.keys();
      next = this.oldest.next();
    }
    this.map.delete(next.value!);
  }

  get size(): number {
    return this.map.size;
  }
}

export class Deduplicator {
  private readonly ids: LruSet;
  /** Events dropped because their id was already applied. */
  dropped = 0;

  constructor(capacity = 200_000) {
    this.ids = new LruSet(capacity);
  }

  /** True the first time `id` comes; false (and counted) for a repeat. */
  accept(id: string): boolean {
    if (!this.ids.seen(id)) return true;
    this.dropped++;
    return false;
  }
}
