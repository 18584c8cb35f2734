// The audit service's consumer: records every stage event once (group "audit"), with the trace id
// of its message, and checkpoints each tenant's chain as it grows. Messages handled at once share
// transactions (group commit): records that arrive while one is being written go together into
// the next, and with batchWaitMs a free database waits that long for company.
import type { DescMessage } from '@bufbuild/protobuf';
import { Attr, DynamicBatcher, classify, codeName, deadLetter, decodeEvent, Header, SpanName, withSpan, type BusMessage, type EventBus, type Logger, type Subscription, ConsumerGroup } from '@tampertrace/shared';
import { AUDITED, AUDITED_DEAD_LETTERS, toAuditRecord, toDeadLetterRecord, traceIdOf } from './records.ts';
import type { AuditRecordInput, AuditStore } from '@tampertrace/shared/audit-trail/store';

export const AUDIT_GROUP = ConsumerGroup.audit;

/** Most records in one append transaction. */
const MAX_RECORDS_PER_TRANSACTION = 64;

export interface AuditConsumerOptions {
  /** Partitions worked on at once (default 1); their records share append transactions. */
  concurrency?: number;
  /**
   * How long a transaction waits for more records when the database is free, ms (default 0:
   * records share one only when they queued behind another). Nothing waits on the audit trail
   * to answer a submission, so a short wait costs no one latency and saves transactions.
   */
  batchWaitMs?: number;
  /**
   * Checkpoint a tenant's chain whenever its sequence reaches a multiple of this, in the append's
   * own transaction: every N records per tenant, whichever replica appends (default 1000; 0: never).
   */
  checkpointEvery?: number;
  /**
   * Also checkpoint, this often, every tenant this consumer appended to since the last time, so a
   * quiet tenant's recent records are covered too (default 60 000 ms; 0: never).
   */
  checkpointIntervalMs?: number;
}

/** `opts` as a number is the concurrency (the earlier signature). */
export async function runAuditConsumer(bus: EventBus, store: AuditStore, log: Logger, opts: AuditConsumerOptions | number = {}): Promise<Subscription> {
  const o = typeof opts === 'number' ? { concurrency: opts } : opts;
  const checkpointEvery = o.checkpointEvery ?? 1000;
  const intervalMs = o.checkpointIntervalMs ?? 60_000;
  const schemas = new Map<string, DescMessage>(AUDITED.map((a) => [a.topic, a.schema]));
  /** Tenants appended to since the last timed checkpoint. */
  const touched = new Set<string>();
  const concurrency = o.concurrency ?? 1;
  // A failed transaction writes nothing, so after one its records are tried alone: a record the
  // database refuses fails only its own message.
  const appender = new DynamicBatcher<AuditRecordInput, boolean>((records) => store.appendMany(records, { checkpointEvery }), {
    // No more than `concurrency` records can be waiting: once they all are, waiting longer for
    // company only delays them (a cap of 64 with 8 in work: 263 records/s from a Kafka backlog;
    // this cap: 818, bench/audit.ts).
    maxBatchSize: Math.min(MAX_RECORDS_PER_TRANSACTION, concurrency),
    maxWaitMs: o.batchWaitMs ?? 0,
    maxQueue: Math.max(concurrency, MAX_RECORDS_PER_TRANSACTION),
    retryItemsAlone: true,
  });
  const sub = await bus.subscribe({
    group: AUDIT_GROUP,
    topics: [...AUDITED.map((a) => a.topic), ...AUDITED_DEAD_LETTERS],
    concurrency,
    handler: async (msg: BusMessage) => {
      let record;
      try {
        const schema = schemas.get(msg.topic);
        record = schema ? toAuditRecord(decodeEvent(schema, msg) as never) : toDeadLetterRecord(msg);
      } catch (err) {
        const e = classify(err);
        log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code) }, 'dead-lettering an unrecordable message');
        await deadLetter(bus, msg, AUDIT_GROUP, codeName(e.code), e.message);
        return;
      }
      // A database failure throws: the message is not committed and comes back. A record the
      // database can never store is dead-lettered instead, or it would hold up its partition.
      let appended: boolean;
      try {
        appended = await withSpan(SpanName.auditAppend, { [Attr.analysisId]: record.analysisId, [Attr.tenant]: record.tenantId }, () =>
          appender.submit({ ...record, traceId: traceIdOf(msg.headers[Header.traceparent]) }),
        );
      } catch (err) {
        const e = classify(err);
        if (e.errorClass !== 'invalid-input') throw err;
        log.error({ topic: msg.topic, key: msg.key, code: codeName(e.code), err: e.message }, 'dead-lettering a record the database refuses');
        await deadLetter(bus, msg, AUDIT_GROUP, codeName(e.code), e.message);
        return;
      }
      if (appended) touched.add(record.tenantId);
    },
  });
  if (intervalMs <= 0) return sub;
  let tick: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (tick || touched.size === 0) return;
    const tenants = [...touched];
    touched.clear();
    tick = (async () => {
      for (const t of tenants) {
        // Failing here loses nothing but this checkpoint; the next one covers the same records.
        await store.checkpoint(t).catch((err) => log.warn({ tenant: t, err: classify(err).message }, 'audit checkpoint failed'));
      }
    })().finally(() => (tick = undefined));
  }, intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await tick; // so the store is not closed under a running checkpoint
      await sub.stop();
    },
  };
}
