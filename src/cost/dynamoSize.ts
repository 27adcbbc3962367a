/**
 * DynamoDB item size as AWS bills it (Developer Guide, "Item sizes and formats"), from the wire form of an item
 * (attribute-value JSON: {"S": ...}, {"N": ...}, {"B": base64}, {"M": {...}}, {"L": [...]}): attribute names
 * and values in UTF-8 bytes, numbers about one byte per two significant digits plus one, binary its bytes,
 * booleans and nulls one byte, lists and maps three bytes plus one per element. A write unit covers 1 KB.
 */
export type AttributeValueJson = Record<string, unknown>;

function numberSize(n: string): number {
  const digits = n
    .replace(/^[-+]/, '')
    .replace(/[eE].*$/, '')
    .replace('.', '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');
  return Math.ceil(Math.max(digits.length, 1) / 2) + 1;
}

export function valueSize(value: AttributeValueJson): number {
  const [type, v] = Object.entries(value)[0] ?? ['NULL', true];
  switch (type) {
    case 'S':
      return Buffer.byteLength(String(v));
    case 'N':
      return numberSize(String(v));
    case 'B':
      return typeof v === 'string' ? Buffer.from(v, 'base64').byteLength : (v as Uint8Array).byteLength;
    case 'BOOL':
    case 'NULL':
      return 1;
    case 'SS':
      return (v as string[]).reduce((n, s) => n + Buffer.byteLength(s), 0);
    case 'NS':
      return (v as string[]).reduce((n, s) => n + numberSize(s), 0);
    case 'L':
      return 3 + (v as AttributeValueJson[]).reduce((n, e) => n + valueSize(e) + 1, 0);
    case 'M':
      return (
        3 +
        Object.entries(v as Record<string, AttributeValueJson>).reduce(
          (n, [k, e]) => n + Buffer.byteLength(k) + valueSize(e) + 1,
          0,
        )
      );
    default:
      throw new Error(`unknown DynamoDB attribute type ${type}`);
  }
}

/** The item's size in bytes: every attribute's name and value. */
export function itemSize(item: Record<string, AttributeValueJson>): number {
  return Object.entries(item).reduce((n, [name, v]) => n + Buffer.byteLength(name) + valueSize(v), 0);
}

/** Write units a put of this item consumes: one per started KB. */
export function writeUnits(item: Record<string, AttributeValueJson>): number {
  return Math.max(1, Math.ceil(itemSize(item) / 1024));
}
