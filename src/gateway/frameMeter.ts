/**
 * Reads the WebSocket frame headers of a client's byte stream (RFC 6455 §5.2) beside the `ws` library, which
 * only limits whole messages: API Gateway also limits each frame (32 KB). Fed every chunk the socket receives;
 * calls `onOversized` once when a frame announces more payload than the limit.
 */
export class FrameMeter {
  /** Header bytes collected of the frame being read (at most 14). */
  private header = Buffer.alloc(14);
  private headerLength = 0;
  /** Payload bytes (and mask) of the current frame still to skip. */
  private skip = 0;
  private done = false;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly onOversized: (announced: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.done) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        continue;
      }
      this.header[this.headerLength++] = chunk[i++]!;
      const needed = this.headerNeeds();
      if (needed === undefined || this.headerLength < needed) continue;
      const b1 = this.header[1]!;
      const len7 = b1 & 0x7f;
      const payload =
        len7 < 126
          ? len7
          : len7 === 126
            ? this.header.readUInt16BE(2)
            : Number(this.header.readBigUInt64BE(2));
      this.headerLength = 0;
      if (payload > this.maxFrameBytes) {
        this.done = true;
        this.onOversized(payload);
        return;
      }
      // The mask key is part of the header, already counted in `needed`.
      this.skip = payload;
    }
  }

  /** The header's full length once its first two bytes are known. */
  private headerNeeds(): number | undefined {
    if (this.headerLength < 2) return undefined;
    const b1 = this.header[1]!;
    const len7 = b1 & 0x7f;
    const ext = len7 < 126 ? 0 : len7 === 126 ? 2 : 8;
    return 2 + ext + ((b1 & 0x80) !== 0 ? 4 : 0);
  }
}
