/**
 * A FIFO consumed from the head by an index, compacted now and then: dropping n items is O(n) in total, never a
 * shift of the whole array per item. For the worker's event-time windows (live quality).
 */
export class Queue<T> {
  items: T[] = [];
  head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  at(i: number): T | undefined {
    return this.items[this.head + i];
  }

  push(item: T): void {
    this.items.push(item);
  }

  drop(n: number): void {
    this.head += n;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
