/**
 * Which ingestor fetches the book checks. Ingestors on one feed (INGESTORS=2 locally, `-c ingestors=2` deployed:
 * two tasks of ONE service, same settings; a rolling deploy overlaps two anyway) would each fetch every check, so
 * they share one lease, an item of the latest table (pk "_bookcheck", sk "lease": an owner and the wall-clock time
 * it expires): whoever holds it checks. It is taken and renewed every renewMs with a conditional put that only
 * succeeds when the lease is free, expired or already the caller's, so of two ingestors racing exactly one holds
 * it; a holder that dies stops renewing and the other takes over once it expired (within leaseMs + renewMs);
 * stop() gives it up at once. Locally the holder counts it as held for leaseMs - renewMs after its last successful
 * renewal started (its own monotonic clock), so hosts' wall clocks may disagree by up to renewMs.
 * The ingestor's task role may put only this item (IAM condition dynamodb:LeadingKeys).
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { isConditionFailure } from '../aws/errors.js';
import { type Clock, systemClock } from '../clock.js';
import { BOOK_CHECK_LEASE, BOOK_CHECK_LEASE_PK } from '../config.js';
import { describeError, type Logger } from '../log.js';
import { type LatestStoreOptions, latestTable } from '../storage/latest.js';

export { BOOK_CHECK_LEASE, BOOK_CHECK_LEASE_PK };

export interface BookCheckLeaseOptions extends LatestStoreOptions {
  /** This ingestor (its session). */
  owner: string;
  leaseMs?: number;
  renewMs?: number;
  clock?: Clock;
  /** Wall clock, epoch ms (the stored expiry, compared across hosts). */
  wallMs?: () => number;
  log: Logger;
}

export class BookCheckLease {
  private heldUntil = Number.NEGATIVE_INFINITY;
  private readonly clock: Clock;
  private readonly wallMs: () => number;
  private readonly leaseMs: number;
  private readonly renewMs: number;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | undefined;
  private wasHeld = false;

  constructor(private readonly o: BookCheckLeaseOptions) {
    this.clock = o.clock ?? systemClock;
    this.wallMs = o.wallMs ?? Date.now;
    this.leaseMs = o.leaseMs ?? BOOK_CHECK_LEASE.leaseMs;
    this.renewMs = o.renewMs ?? BOOK_CHECK_LEASE.renewMs;
  }

  /** This ingestor holds the lease now. */
  held(): boolean {
    return this.clock.now() < this.heldUntil;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops renewing and gives the lease up, so another ingestor takes it at its next try. */
  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
    if (!this.held()) return;
    this.heldUntil = Number.NEGATIVE_INFINITY;
    await this.put(0).catch((err: unknown) =>
      this.o.log('warn', 'book check lease not given up (it expires)', { error: describeError(err) }),
    );
  }

  /** Takes or renews the lease; true when this ingestor holds it now. */
  async tryTake(): Promise<boolean> {
    const startedAt = this.clock.now();
    try {
      await this.put(this.wallMs() + this.leaseMs);
      this.heldUntil = startedAt + this.leaseMs - this.renewMs;
    } catch (err) {
      if (!isConditionFailure(err)) {
        this.o.log('warn', 'book check lease not renewed', { error: describeError(err) });
      } else this.heldUntil = Number.NEGATIVE_INFINITY;
    }
    const held = this.held();
    if (held !== this.wasHeld) {
      this.o.log('info', held ? 'book check lease taken' : 'book check lease lost', { owner: this.o.owner });
      this.wasHeld = held;
    }
    return held;
  }

  private async put(expiresAtMs: number): Promise<void> {
    const { client, table } = latestTable(this.o);
    await client.send(
      new PutCommand({
        TableName: table,
        Item: { pk: BOOK_CHECK_LEASE_PK, sk: 'lease', owner: this.o.owner, expiresAtMs },
        ConditionExpression: 'attribute_not_exists(pk) OR #owner = :me OR expiresAtMs < :now',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':me': this.o.owner, ':now': this.wallMs() },
      }),
    );
  }

  private async run(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      await this.tryTake();
      await this.clock.sleep(this.renewMs, signal);
    }
  }
}
