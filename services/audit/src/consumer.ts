// The audit service's consumer: records every stage event once (group "audit").
import type { DescMessage } from '@bufbuild/protobuf';
import { classify, codeName, deadLetter, decodeEvent, type BusMessage, type EventBus, type Logger, type Subscription, ConsumerGroup } from '@tampertrace/shared';
import { AUDITED, toAuditRecord } from './records.ts';
import type { AuditStore } from './store.ts';

export const AUDIT_GROUP = ConsumerGroup.audit;

export async function runAuditConsumer(bus: EventBus, store: AuditStore, log: Logger, concurrency = 1): Promise<Subscription> {
  const schemas = new Map<string, DescMessage>(AUDITED.map((a) => [a.topic, a.schema]));
  return bus.subscribe({
    group: AUDIT_GROUP,
    topics: AUDITED.map((a) => a.topic),
    concurrency,
    handler: async (msg: BusMessage) => {
      let record;
      try {
        record = toAuditRecord(decodeEvent(schemas.get(msg.topic)!, msg) as never);
      } catch (err) {
        const e = classify(err);
        log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code) }, 'dead-lettering an unrecordable message');
        await deadLetter(bus, msg, AUDIT_GROUP, codeName(e.code), e.message);
        return;
      }
      // A database failure throws: the message is not committed and comes back.
      await store.append(record);
    },
  });
}
