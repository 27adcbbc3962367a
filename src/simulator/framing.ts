/**
 * Different frame boundaries for one connection: the same market events, packed several to a frame. Coinbase
 * batches per connection, so two connections never see the same frames; the ingestors and the worker must give the
 * same result whatever the batching. A Repacker takes the frames a Session produced for a connection and merges
 * runs of level2 frames (and of market_trades frames) into one frame of up to `maxEvents` events, numbering the
 * frames with the connection's own counter. Tickers and heartbeats between two level2 frames go out after the
 * merged frame (the book does not read them); a market_trades frame ends a level2 run, and the reverse, so trades
 * keep their place among the book changes.
 */
import type { OutFrame } from './session.js';

const PACKABLE = new Set(['l2_data', 'market_trades']);

interface Parsed {
  channel: string;
  timestamp: string;
  sequence_num: number;
  events: unknown[];
}

export class Repacker {
  private seq = 0;

  constructor(readonly maxEvents: number) {}

  /** Takes the next number for a frame sent outside the packer (a hostile frame in sequence). */
  reserve(): number {
    return this.seq++;
  }

  /** The next frame jumps `n` numbers (the server's sequence-gap fault on this connection). */
  skip(n: number): void {
    this.seq += n;
  }

  pack(frames: readonly OutFrame[]): OutFrame[] {
    const out: OutFrame[] = [];
    let run: Parsed | undefined;
    let deferred: Parsed[] = [];
    const flush = () => {
      if (run) out.push(this.emit(run));
      for (const f of deferred) out.push(this.emit(f));
      run = undefined;
      deferred = [];
    };
    for (const f of frames) {
      if (f.seq === null) {
        flush();
        out.push(f); // outside the sequence (errors, broken frames): as is
        continue;
      }
      const parsed = JSON.parse(f.text) as Parsed;
      if (!PACKABLE.has(parsed.channel)) {
        if (run?.channel === 'l2_data') deferred.push(parsed);
        else {
          flush();
          out.push(this.emit(parsed));
        }
        continue;
      }
      if (
        run &&
        run.channel === parsed.channel &&
        run.events.length + parsed.events.length <= this.maxEvents
      ) {
        run.events.push(...parsed.events);
        run.timestamp = parsed.timestamp;
        continue;
      }
      flush();
      run = { ...parsed, events: [...parsed.events] };
    }
    flush();
    return out;
  }

  private emit(f: Parsed): OutFrame {
    const seq = this.seq++;
    const text = JSON.stringify({
      channel: f.channel,
      timestamp: f.timestamp,
      sequence_num: seq,
      events: f.events,
    });
    return { text, seq };
  }
}
