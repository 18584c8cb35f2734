// Beside its stage, the provenance service reads the results topic and records each analysis's
// final status and verdict, so that a later re-post can say how the earlier one was judged.
import { ConsumerGroup, Topic, classify, codeName, deadLetter, decodeEvent, type EventBus, type Logger, type Subscription } from '@tampertrace/shared';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { HashStore } from './store.ts';

export const PROVENANCE_VERDICTS = ConsumerGroup.provenanceVerdicts;

export function runVerdictRecorder(bus: EventBus, hashes: Pick<HashStore, 'recordFinal'>, log: Logger, concurrency: number): Promise<Subscription> {
  return bus.subscribe({
    group: PROVENANCE_VERDICTS,
    topics: [Topic.analysisCompleted],
    concurrency,
    handler: async (msg) => {
      let a;
      try {
        a = decodeEvent(AnalysisCompletedSchema, msg).analysis;
      } catch (err) {
        const e = classify(err);
        log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code) }, 'dead-lettering an undecodable result');
        await deadLetter(bus, msg, PROVENANCE_VERDICTS, codeName(e.code), e.message);
        return;
      }
      if (!a) return;
      // Idempotent: the same final state written again. A database outage throws: redelivered.
      await hashes.recordFinal(a.tenantId, a.analysisId, a.status, a.verdict, a.maxForgeryScore);
    },
  });
}
