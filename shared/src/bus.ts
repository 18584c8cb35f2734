// The event bus contract shared by the in-process bus (embedded mode) and Kafka (distributed
// mode). Semantics follow Kafka's so that stage code behaves the same on both: messages are
// keyed and partitioned by key (per-key order), each consumer group sees every message,
// delivery is at-least-once and a message counts as consumed only after its handler resolved.
import { metrics, type LagRow } from './metrics.ts';
import { tracedConsume, tracedPublish } from './telemetry.ts';

export interface BusMessage {
  topic: string;
  /** The analysis id: decides the partition, hence the ordering. */
  key: string;
  value: Uint8Array;
  headers: Record<string, string>;
}

/** Resolve to commit; throw to have the same message delivered again later. */
export type MessageHandler = (msg: BusMessage) => Promise<void>;

export interface SubscribeOptions {
  /** Consumer group: the service name. Groups are independent; members of a group share partitions. */
  group: string;
  topics: string[];
  handler: MessageHandler;
  /** How many partitions are worked on at once by this member. */
  concurrency?: number;
}

export interface Subscription {
  /** Stops fetching, lets in-flight handlers finish, then returns. */
  stop(): Promise<void>;
}

export interface EventBus {
  /** Resolves once the bus has durably accepted the message. */
  publish(msg: BusMessage): Promise<void>;
  subscribe(opts: SubscribeOptions): Promise<Subscription>;
  close(): Promise<void>;
}

/** Stable partition choice for a key (FNV-1a), like Kafka's default partitioner in spirit. */
export function partitionFor(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}

interface Partition {
  index: number;
  /** Offset of log[0]; older messages were consumed by every group and dropped. */
  base: number;
  log: BusMessage[];
  /** Committed offset (next to read) per group. */
  committed: Map<string, number>;
  wake: Array<() => void>;
}

export interface InMemoryBusOptions {
  partitions?: number;
  /** Backoff before redelivering a message whose handler threw, ms (doubles per attempt, capped at 2 s). */
  retryBackoffMs?: number;
  onHandlerError?: (err: unknown, msg: BusMessage, attempt: number) => void;
}

/** In-process bus for embedded mode. Holds messages in memory until every group has consumed them. */
export class InMemoryBus implements EventBus {
  private readonly topics = new Map<string, Partition[]>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly partitions: number;
  private readonly backoff: number;
  private closed = false;

  constructor(private readonly opts: InMemoryBusOptions = {}) {
    this.partitions = opts.partitions ?? 4;
    this.backoff = opts.retryBackoffMs ?? 50;
  }

  private topic(name: string): Partition[] {
    let t = this.topics.get(name);
    if (!t) {
      t = Array.from({ length: this.partitions }, (_, index) => ({ index, base: 0, log: [], committed: new Map(), wake: [] }));
      this.topics.set(name, t);
    }
    return t;
  }

  async publish(msg: BusMessage): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    await tracedPublish(msg, 'in-process', async (withTrace) => {
      const p = this.topic(msg.topic)[partitionFor(msg.key, this.partitions)];
      // Copy: the producer may reuse its buffer, and consumers must see what was published.
      p.log.push({ ...withTrace, value: Uint8Array.from(msg.value) });
      for (const w of p.wake.splice(0)) w();
    });
    metrics.messagesPublished.inc({ topic: msg.topic });
  }

  async subscribe(o: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw new Error('bus is closed');
    let running = true;
    const stopWaiters: Array<() => void> = [];
    const slots = new Semaphore(Math.max(1, o.concurrency ?? this.partitions));
    const loops: Promise<void>[] = [];
    for (const topicName of o.topics) {
      for (const p of this.topic(topicName)) {
        if (!p.committed.has(o.group)) p.committed.set(o.group, p.base);
        loops.push(this.consume(p, o, slots, () => running, stopWaiters));
      }
    }
    const sub: Subscription = {
      stop: async () => {
        running = false;
        for (const w of stopWaiters.splice(0)) w();
        for (const t of o.topics) for (const p of this.topic(t)) for (const w of p.wake.splice(0)) w();
        await Promise.all(loops);
        this.subscriptions.delete(sub);
      },
    };
    this.subscriptions.add(sub);
    return sub;
  }

  private async consume(p: Partition, o: SubscribeOptions, slots: Semaphore, running: () => boolean, stopWaiters: Array<() => void>): Promise<void> {
    while (running()) {
      const offset = p.committed.get(o.group)!;
      if (offset >= p.base + p.log.length) {
        await new Promise<void>((resolve) => p.wake.push(resolve));
        continue;
      }
      const msg = p.log[offset - p.base];
      let attempt = 0;
      for (;;) {
        attempt++;
        await slots.acquire();
        metrics.inFlight.inc({ group: o.group });
        try {
          await tracedConsume(msg, { group: o.group, system: 'in-process', partition: p.index, offset: String(offset) }, () => o.handler(msg));
          break;
        } catch (err) {
          this.opts.onHandlerError?.(err, msg, attempt);
        } finally {
          metrics.inFlight.dec({ group: o.group });
          slots.release();
        }
        if (!running()) return; // not committed: a later member of the group gets it again
        const wait = Math.min(2000, this.backoff * 2 ** (attempt - 1));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, wait);
          stopWaiters.push(() => {
            clearTimeout(t);
            resolve();
          });
        });
        if (!running()) return;
      }
      p.committed.set(o.group, offset + 1);
      metrics.messagesConsumed.inc({ topic: msg.topic, group: o.group });
      this.trim(p);
    }
  }

  private trim(p: Partition): void {
    let min = Infinity;
    for (const c of p.committed.values()) min = Math.min(min, c);
    const drop = min - p.base;
    // Drop in chunks so the array shift cost stays amortised.
    if (drop >= 256 || (drop > 0 && drop === p.log.length)) {
      p.log.splice(0, drop);
      p.base = min;
    }
  }

  /** Messages not yet consumed by `group` across a topic (the embedded analogue of consumer lag). */
  lag(topic: string, group: string): number {
    let n = 0;
    for (const p of this.topic(topic)) n += p.base + p.log.length - (p.committed.get(group) ?? p.base);
    return n;
  }

  /** Lag of every group on every partition, as tampertrace_consumer_lag_messages reports it. */
  async lagRows(): Promise<LagRow[]> {
    const rows: LagRow[] = [];
    for (const [topic, parts] of this.topics) {
      for (const p of parts) for (const [group, c] of p.committed) rows.push({ group, topic, partition: p.index, lag: p.base + p.log.length - c });
    }
    return rows;
  }

  /** Resolves once every group has consumed every message (and so nothing is in flight). */
  async idle(pollMs = 5): Promise<void> {
    const busy = () => [...this.topics.values()].some((ps) => ps.some((p) => [...p.committed.values()].some((c) => c < p.base + p.log.length)));
    while (busy()) await new Promise((r) => setTimeout(r, pollMs));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
  }
}

export class Semaphore {
  private waiting: Array<() => void> = [];
  constructor(private free: number) {}
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
