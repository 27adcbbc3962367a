/**
 * A minimal protocol-buffers writer: just enough wire format to emit ONNX models without python.
 * Wire types (https://protobuf.dev/programming-guides/encoding/): 0 = varint, 2 = length-delimited.
 * Messages are built bottom-up: encode a child message to bytes, then embed it as a length-delimited field.
 */

const VARINT = 0;
const LENGTH_DELIMITED = 2;

const utf8 = new TextEncoder();

/** Unsigned LEB128. Only non-negative safe integers are needed for ONNX (versions, dims, enums). */
function varint(value: number): number[] {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`varint needs a non-negative safe integer, got ${value}`);
  }
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function tag(field: number, wireType: number): number[] {
  return varint(field * 8 + wireType);
}

export class MessageWriter {
  private readonly chunks: Uint8Array[] = [];

  /** int32/int64/enum field. */
  int(field: number, value: number): this {
    this.chunks.push(Uint8Array.from([...tag(field, VARINT), ...varint(value)]));
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.chunks.push(Uint8Array.from([...tag(field, LENGTH_DELIMITED), ...varint(value.length)]), value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, utf8.encode(value));
  }

  /** Embedded message field (also used once per element for repeated message fields). */
  message(field: number, child: MessageWriter): this {
    return this.bytes(field, child.finish());
  }

  finish(): Uint8Array {
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

export interface Field {
  field: number;
  /** The varint value (wire type 0) or the raw bytes (wire type 2). */
  value: number | Uint8Array;
}

/** Reads the top-level fields of one message (varint and length-delimited only: all ONNX needs here). */
export function readFields(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  const readVarint = (): number => {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (pos >= bytes.length) throw new RangeError('truncated varint');
      const b = bytes[pos++]!;
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
  };
  while (pos < bytes.length) {
    const key = readVarint();
    const field = Math.floor(key / 8);
    const wireType = key % 8;
    if (wireType === VARINT) {
      fields.push({ field, value: readVarint() });
    } else if (wireType === LENGTH_DELIMITED) {
      const length = readVarint();
      if (pos + length > bytes.length)
        throw new RangeError(`field ${field} runs past the end of the message`);
      fields.push({ field, value: bytes.subarray(pos, pos + length) });
      pos += length;
    } else {
      throw new RangeError(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
  return fields;
}
