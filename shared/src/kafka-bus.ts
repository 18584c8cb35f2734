// EventBus on Apache Kafka (distributed mode), via kafkajs. It keeps the contract of bus.ts so a
// stage cannot tell it from InMemoryBus: keyed messages (per-key order through the partition),
// one consumer group per service, at-least-once, and an offset is committed only after the
// handler resolved. Topic names carry an optional prefix on the wire only; handlers see the
// unprefixed names they subscribed to.
import { RetriableError } from './errors.ts';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { Kafka, Partitioners, logLevel, type Admin, type EachBatchPayload, type IHeaders, type KafkaMessage, type LogEntry, type Producer } from 'kafkajs';
import type { BusMessage, EventBus, SubscribeOptions, Subscription } from './bus.ts';
import { createLogger, type Logger } from './log.ts';
import { withPrefix } from './topics.ts';
import { metrics, type LagRow } from './metrics.ts';
import { tracedConsume, tracedPublish } from './telemetry.ts';
import { withTimeout } from './timeout.ts';

export interface KafkaBusOptions {
  brokers: string[];
  clientId: string;
  /** Prepended as `<prefix>.<name>` to topics and consumer groups on the wire (TAMPERTRACE_TOPIC_PREFIX). */
  topicPrefix?: string;
  /** Partitions of topics this bus creates (default 4); existing topics are left as they are. */
  partitions?: number;
  /** Replication factor of topics this bus creates (default 1: a single local broker). */
  replicationFactor?: number;
  log?: Logger;
  /** Kafka's group session timeout (default 30 000; the broker refuses less than its group.min.session.timeout.ms, 6 000 by default). */
  sessionTimeoutMs?: number;
  /** Default 3 000; also the period of heartbeats sent while a handler runs. */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits on an idle partition (default 1 000); bounds how late a member notices a rebalance or a stop. */
  maxWaitTimeInMs?: number;
  /** First backoff before retrying a message whose handler threw (default 100 ms, doubling per attempt). */
  retryBackoffMs?: number;
  /** Cap of that backoff (default 5 000 ms). */
  maxRetryBackoffMs?: number;
  /** A publish not acknowledged within this long fails as a dependency outage (default 60 000 ms). */
  publishTimeoutMs?: number;
  /** How long subscribe() waits for the consumer to join its group (default 60 000 ms). */
  joinTimeoutMs?: number;
}

interface Pending {
  msg: BusMessage;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class KafkaBus implements EventBus {
  private readonly kafka: Kafka;
  private readonly prefix: string;
  private readonly log: Logger;
  /** One creation per topic per bus; a failed one is forgotten so the next call retries it. */
  private readonly topicsReady = new Map<string, Promise<void>>();
  private readonly subscriptions = new Set<Subscription>();
  /** Consumer groups (unprefixed) and the topics each reads, for lag. */
  private readonly groups = new Map<string, string[]>();
  /** A consumer that kafkajs gave up on (crashed without restarting): this process is broken. */
  private crashed: string | undefined;
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private producerBroken = false;
  private closed = false;

  private constructor(
    private readonly opts: KafkaBusOptions,
    private readonly admin: Admin,
    private producer: Producer,
    kafka: Kafka,
    log: Logger,
  ) {
    this.kafka = kafka;
    this.prefix = opts.topicPrefix ?? '';
    this.log = log;
  }

  static async connect(opts: KafkaBusOptions): Promise<KafkaBus> {
    const log = opts.log ?? createLogger('kafka-bus');
    const kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      logLevel: logLevel.WARN,
      logCreator: () => (entry: LogEntry) => kafkaLog(log, entry),
    });
    const admin = kafka.admin();
    const producer = newProducer(kafka);
    await admin.connect();
    try {
      await producer.connect();
    } catch (err) {
      await admin.disconnect().catch(() => {});
      throw err;
    }
    return new KafkaBus(opts, admin, producer, kafka, log);
  }

  private wire(topic: string): string {
    return withPrefix(this.prefix, topic);
  }

  /** Creates the (prefixed) topics that this bus has not seen yet; an existing topic is fine. */
  private async ensureTopics(topics: string[]): Promise<void> {
    await Promise.all(
      [...new Set(topics)].map((t) => {
        let p = this.topicsReady.get(t);
        if (!p) {
          p = this.admin
            .createTopics({
              topics: [{ topic: t, numPartitions: this.opts.partitions ?? 4, replicationFactor: this.opts.replicationFactor ?? 1 }],
              // Without this, the first produce/fetch races the leader election and fails.
              waitForLeaders: true,
            })
            // kafkajs' own wait gives up on "does not host this topic-partition" (code 3), which a
            // busy broker answers while it elects the new topic's leaders: ours below retries it.
            .catch((err: { code?: number }) => {
              if (err?.code !== 3) throw err;
            })
            .then(() => this.waitForLeaders(t));
          p.catch(() => this.topicsReady.delete(t));
          this.topicsReady.set(t, p);
        }
        return p;
      }),
    );
  }

  /**
   * waitForLeaders above covers only topics this client created. When several services start
   * together, another one may have created the topic a moment ago and its partitions may not be
   * served yet ("does not host this topic-partition"): wait until every partition has a leader.
   */
  private async waitForLeaders(topic: string, deadlineMs = 30_000): Promise<void> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      try {
        const meta = await this.admin.fetchTopicMetadata({ topics: [topic] });
        const parts = meta.topics[0]?.partitions ?? [];
        if (parts.length > 0 && parts.every((p) => p.leader >= 0)) return;
      } catch (err) {
        if (Date.now() > end) throw err;
      }
      if (Date.now() > end) throw new Error(`topic ${topic} has no leader for every partition after ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Creates these topics (unprefixed names) with the configured partitions, where missing; for start-up. */
  provision(topics: string[]): Promise<void> {
    return this.ensureTopics(topics.map((t) => this.wire(t)));
  }

  async publish(msg: BusMessage): Promise<void> {
    if (this.closed) throw new Error('bus is closed');
    await tracedPublish(
      msg,
      'kafka',
      (withTrace) =>
        new Promise<void>((resolve, reject) => {
          this.queue.push({ msg: withTrace, resolve, reject });
          this.flushing ??= this.flush();
        }),
    );
    metrics.messagesPublished.inc({ topic: msg.topic });
  }

  /** Readiness: the cluster answers a metadata request (Readiness bounds how long it may take). */
  async ping(): Promise<void> {
    await this.admin.describeCluster();
  }

  /** Liveness: why this process can no longer consume (a consumer kafkajs stopped restarting), if so. */
  get fatal(): string | undefined {
    return this.crashed;
  }

  /**
   * Lag of every group this process consumes with, per partition: the partition's end offset
   * minus the group's committed offset (a group with no commit yet lags by the whole partition).
   */
  async lag(): Promise<LagRow[]> {
    const rows: LagRow[] = [];
    for (const [group, topics] of this.groups) {
      const committed = await this.admin.fetchOffsets({ groupId: this.wire(group), topics: topics.map((t) => this.wire(t)) });
      for (const t of committed) {
        const ends = await this.admin.fetchTopicOffsets(t.topic);
        const topic = topics.find((name) => this.wire(name) === t.topic) ?? t.topic;
        for (const e of ends) {
          const c = t.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
          const start = c === '-1' ? BigInt(e.low) : BigInt(c);
          rows.push({ group, topic, partition: e.partition, lag: Number(BigInt(e.high) - start) });
        }
      }
    }
    return rows;
  }

  // Publishes go out one produce request at a time: kafkajs does not keep concurrent send()
  // calls in call order (measured against Kafka 4.4: one inversion in 500 concurrent sends to
  // one partition), and per-key order must be publish order. Whatever queued up while a request
  // was in flight goes out together in the next one, so concurrent publishers still batch.
  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0);
      try {
        const byTopic = new Map<string, Array<{ key: string; value: Buffer; headers: IHeaders }>>();
        for (const { msg } of batch) {
          const t = this.wire(msg.topic);
          let list = byTopic.get(t);
          if (!list) byTopic.set(t, (list = []));
          // Copied now: the caller may reuse its buffer before kafkajs encodes the request.
          list.push({ key: msg.key, value: Buffer.from(msg.value), headers: { ...msg.headers } });
        }
        const publishTimeoutMs = this.opts.publishTimeoutMs ?? 60_000;
        // The whole attempt is under the limit, the producer's renewal included: with the broker
        // away, kafkajs' connect retries for longer than a caller should wait for its answer.
        await withTimeout(
          (async () => {
            await this.ensureTopics([...byTopic.keys()]);
            if (this.producerBroken) await this.renewProducer();
            await this.producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
          })(),
          publishTimeoutMs,
          `Kafka publish not acknowledged within ${publishTimeoutMs} ms`,
        );
        for (const p of batch) p.resolve();
      } catch (err) {
        // After a broker restart kafkajs' idempotent producer can be left with a sequence the
        // broker no longer knows (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID) and then fails
        // or hangs for good; the next attempt starts a new producer session instead.
        this.producerBroken = true;
        // Whatever kafkajs says (connection lost, retries exhausted, no leader), the message is
        // fine and the broker is not: classified once, here, as a dependency outage.
        const e = new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, `Kafka publish failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
        for (const p of batch) p.reject(e);
      }
    }
    this.flushing = null;
  }

  /** A renewal still connecting (one that outlived a publish's time limit) is joined, not doubled. */
  private renewing?: Promise<void>;

  private renewProducer(): Promise<void> {
    this.renewing ??= this.replaceProducer().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async replaceProducer(): Promise<void> {
    const old = this.producer;
    await old.disconnect().catch(() => {});
    const fresh = newProducer(this.kafka);
    await fresh.connect(); // a failure leaves producerBroken set; the next publish tries again
    this.producer = fresh;
    this.producerBroken = false;
    this.log.info('Kafka producer renewed after a failed publish');
  }

  async subscribe(o: SubscribeOptions): Promise<Subscription> {
    if (this.closed) throw new Error('bus is closed');
    const wireTopics = o.topics.map((t) => this.wire(t));
    const unwire = new Map(o.topics.map((t) => [this.wire(t), t]));
    await this.ensureTopics(wireTopics);

    const heartbeatMs = this.opts.heartbeatIntervalMs ?? 3000;
    const consumer = this.kafka.consumer({
      // Prefixed like the topics, so that deployments sharing a cluster never share a group.
      groupId: this.wire(o.group),
      sessionTimeout: this.opts.sessionTimeoutMs ?? 30000,
      heartbeatInterval: heartbeatMs,
      maxWaitTimeInMs: this.opts.maxWaitTimeInMs ?? 1000,
    });
    let stopping = false;
    const wakers = new Set<() => void>();
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          wakers.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, ms);
        wakers.add(wake);
      });

    const eachBatch = async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload): Promise<void> => {
      const topic = unwire.get(batch.topic) ?? batch.topic;
      for (const m of batch.messages) {
        // Not resolving the rest is what makes them come back: kafkajs fetches the partition
        // again from the last resolved offset, and a new owner from the last committed one.
        if (stopping || !isRunning() || isStale()) return;
        const msg = toBusMessage(topic, m);
        const delivery = { group: o.group, system: 'kafka' as const, partition: batch.partition, offset: m.offset };
        for (let attempt = 1; ; attempt++) {
          try {
            metrics.inFlight.inc({ group: o.group });
            await withHeartbeats(heartbeat, heartbeatMs, () => tracedConsume(msg, delivery, () => o.handler(msg)));
            break;
          } catch (err) {
            this.log.warn({ topic, key: msg.key, partition: batch.partition, offset: m.offset, attempt, err: errText(err) }, 'handler failed; the message will be redelivered');
          } finally {
            metrics.inFlight.dec({ group: o.group });
          }
          // Retried here, in place, rather than by a seek: the partition must not move past the
          // message (per-key order), and this is exactly "the same message again, later".
          if (stopping || !isRunning() || isStale()) return;
          const base = this.opts.retryBackoffMs ?? 100;
          await sleep(Math.min(this.opts.maxRetryBackoffMs ?? 5000, base * 2 ** (attempt - 1)));
          if (stopping || !isRunning() || isStale()) return;
          await heartbeat(); // also how a rebalance reaches us while we keep failing
        }
        resolveOffset(m.offset);
        // One commit per message: a handler's side effects are the expensive part, so
        // redoing as few of them as possible after a crash is worth a round trip.
        const next = (BigInt(m.offset) + 1n).toString();
        await commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
        metrics.messagesConsumed.inc({ topic, group: o.group });
        await heartbeat();
      }
    };

    // Resolved once this member has joined its group (and got its partitions), so that a
    // caller that subscribes and then publishes knows the consumer is really there.
    const joinTimeout = this.opts.joinTimeoutMs ?? 60000;
    let timer: NodeJS.Timeout | undefined;
    const offs: Array<() => void> = [];
    const joined = new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`consumer group ${o.group} not joined within ${joinTimeout} ms`)), joinTimeout);
      offs.push(consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
      offs.push(consumer.on(consumer.events.CRASH, (e) => (e.payload.restart ? undefined : reject(e.payload.error))));
    });
    // After the join, a crash kafkajs does not restart from leaves this member consuming nothing.
    consumer.on(consumer.events.CRASH, (e) => {
      if (e.payload.restart || stopping) return;
      this.crashed = `consumer ${o.group} crashed: ${errText(e.payload.error)}`;
      this.log.error({ group: o.group, err: errText(e.payload.error) }, 'Kafka consumer crashed and will not restart');
    });
    joined.catch(() => {}); // awaited below; this only keeps an early failure from going unhandled
    try {
      await consumer.connect();
      // fromBeginning only applies while the group has no committed offset: a new service
      // processes the backlog instead of skipping it.
      await consumer.subscribe({ topics: wireTopics, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(1, o.concurrency ?? this.opts.partitions ?? 4),
        eachBatch,
      });
      await joined;
    } catch (err) {
      await consumer.disconnect().catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
      for (const off of offs) off();
    }

    this.groups.set(o.group, [...new Set([...(this.groups.get(o.group) ?? []), ...o.topics])]);
    let stopped: Promise<void> | null = null;
    const sub: Subscription = {
      stop: () =>
        (stopped ??= (async () => {
          stopping = true;
          for (const w of [...wakers]) w();
          // kafkajs waits for the running eachBatch calls (so in-flight handlers finish and
          // commit), then leaves the group so the partitions move on without a session timeout.
          await consumer.disconnect();
          this.subscriptions.delete(sub);
        })()),
    };
    this.subscriptions.add(sub);
    return sub;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.stop()));
    await this.flushing;
    await this.producer.disconnect();
    await this.admin.disconnect();
  }
}

/**
 * Idempotent + acks=-1 (set per send): a retried produce request cannot duplicate or reorder a
 * partition, and an acknowledged message survives the leader. kafkajs insists on one request in
 * flight. The default (Java-compatible murmur2) partitioner is named explicitly to silence
 * kafkajs' partitioner-change warning and to place keys where Java/Go clients would.
 */
function newProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
}

/**
 * Runs fn while heartbeating every `ms`: kafkajs only heartbeats between fetches and when asked,
 * so a handler longer than the session timeout would otherwise get this member evicted and its
 * partitions handed (and the message redelivered) to another one while it still works.
 */
async function withHeartbeats(heartbeat: () => Promise<void>, ms: number, fn: () => Promise<void>): Promise<void> {
  const t = setInterval(() => {
    // A failure here is a rebalance or a lost coordinator; the commit after fn (or the next
    // heartbeat) raises it again, where kafkajs handles it by rejoining.
    heartbeat().catch(() => {});
  }, ms);
  try {
    await fn();
  } finally {
    clearInterval(t);
  }
}

function toBusMessage(topic: string, m: KafkaMessage): BusMessage {
  const v = m.value;
  const headers: Record<string, string> = {};
  for (const [k, h] of Object.entries(m.headers ?? {})) {
    if (h === undefined) continue;
    // Kafka allows a header name more than once; our headers are a map, so the last one wins.
    const last = Array.isArray(h) ? h[h.length - 1] : h;
    if (last !== undefined) headers[k] = typeof last === 'string' ? last : last.toString('utf8');
  }
  return {
    topic,
    key: m.key ? m.key.toString('utf8') : '',
    // A plain Uint8Array view (no copy), so that it compares equal to what was published.
    value: v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(0),
    headers,
  };
}

function kafkaLog(log: Logger, { namespace, level, log: entry }: LogEntry): void {
  const { message, timestamp: _t, logger: _l, ...rest } = entry;
  const fields = { component: 'kafkajs', namespace, ...rest };
  // kafkajs logs every broker error response at ERROR, including the routine ones it retries
  // or hands back to the caller anyway (coordinator loading, rebalance in progress, topic
  // already exists); connection failures and its own give-ups keep their level.
  if (namespace === 'Connection' && message.startsWith('Response ')) log.debug(fields, message);
  else if (level === logLevel.ERROR) log.error(fields, message);
  else if (level === logLevel.WARN) log.warn(fields, message);
  else if (level === logLevel.INFO) log.info(fields, message);
  else log.debug(fields, message);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
