/**
 * The verdict channel of the book check (#17), worker -> ingestor: the worker that finds its book of a product
 * different from the exchange's REST book (src/book/verify.ts) puts a `verdict` item for that product into the
 * latest table (pk = product, sk = "verdict", one item per product, the newest verdict replacing the previous);
 * every ingestor reads them back every BOOK_VERDICT_POLL_MS (src/ingest/verdictPoller.ts) and resyncs that
 * product once per verdict (`checkId`). The same table and client as the latest items (src/storage/latest.ts).
 */
import { BatchGetCommand, type BatchGetCommandOutput, PutCommand } from '@aws-sdk/lib-dynamodb';
import * as z from 'zod';
import { PRODUCT_ID_PATTERN } from '../config.js';
import { LatestStoreError, type LatestStoreOptions, latestTable } from './latest.js';

/** The worker's finding that its book of `product` differed from the exchange's book at one check. */
export interface BookVerdict {
  product: string;
  result: 'mismatch';
  /** The id of the `book_check` event the book was compared with: the ingestor acts once per id. */
  checkId: string;
  /** When the worker reached the verdict: WALL-clock epoch µs (an ingestor ignores verdicts from before its start). */
  atUs: number;
  /** What differed, for the resync's reason and the logs. */
  reason: string;
}

export const VERDICT_SK = 'verdict';

const VerdictSchema = z.object({
  product: z.string().regex(PRODUCT_ID_PATTERN, 'expected a product like BTC-USD'),
  result: z.literal('mismatch'),
  checkId: z.string().min(1).max(512),
  atUs: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  reason: z.string().max(1000),
});

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(item)'}: ${i.message}`).join('; ');
}

/** Writes the verdict as its product's `verdict` item (replacing the previous one). */
export async function putBookVerdict(verdict: BookVerdict, opts: LatestStoreOptions = {}): Promise<void> {
  const parsed = VerdictSchema.safeParse(verdict);
  if (!parsed.success) {
    throw new LatestStoreError(`not a book verdict: ${describeIssues(parsed.error)}`);
  }
  const { client, table } = latestTable(opts);
  const v = parsed.data;
  try {
    await client.send(new PutCommand({ TableName: table, Item: { pk: v.product, sk: VERDICT_SK, ...v } }));
  } catch (cause) {
    throw new LatestStoreError(`writing the book verdict of ${v.product} to ${table} failed`, { cause });
  }
}

export interface ReadVerdictOptions extends LatestStoreOptions {
  /** An item that is not a verdict is skipped (the others still count) and reported here. */
  onMalformed?: (product: string, problem: string) => void;
}

/** The newest verdict of each product that has one, in the order asked (BatchGet, eventually consistent). */
export async function readBookVerdicts(
  products: readonly string[],
  opts: ReadVerdictOptions = {},
): Promise<BookVerdict[]> {
  const { client, table } = latestTable(opts);
  const found = new Map<string, Record<string, unknown>>();
  // BatchGet takes at most 100 keys and may leave some unprocessed.
  for (let i = 0; i < products.length; i += 100) {
    let keys: Record<string, unknown>[] | undefined = products
      .slice(i, i + 100)
      .map((p) => ({ pk: p, sk: VERDICT_SK }));
    for (let attempt = 0; keys && keys.length > 0; attempt++) {
      if (attempt > 5)
        throw new LatestStoreError(`reading book verdicts from ${table}: keys left unprocessed`);
      let out: BatchGetCommandOutput;
      try {
        out = await client.send(new BatchGetCommand({ RequestItems: { [table]: { Keys: keys } } }));
      } catch (cause) {
        throw new LatestStoreError(`reading book verdicts from ${table} failed`, { cause });
      }
      for (const item of out.Responses?.[table] ?? []) found.set(String(item.pk), item);
      keys = out.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return products.flatMap((product) => {
    const item = found.get(product);
    if (!item) return [];
    // Unknown attributes (the keys among them) are stripped by the schema.
    const parsed = VerdictSchema.safeParse(item);
    if (!parsed.success || parsed.data.product !== item.pk) {
      opts.onMalformed?.(
        product,
        parsed.success ? `product ${parsed.data.product} under ${product}` : describeIssues(parsed.error),
      );
      return [];
    }
    return [parsed.data];
  });
}
