import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { InMemoryBus, type BusMessage } from './bus.ts';
import { InvalidInputError, RetriableError } from './errors.ts';
import { encodeEvent, nextMeta } from './events.ts';
import { AnalysisStatus, ErrorCode, Stage } from './gen/tampertrace/v1/common_pb.ts';
import { AnalysisCompletedSchema, EventMetaSchema, FacesDetectedSchema, ImageIngestedSchema } from './gen/tampertrace/v1/events_pb.ts';
import { runStage, type StageDefinition } from './stage.ts';
import { Header, Topic, deadLetterTopic } from './topics.ts';

const log = pino({ level: 'silent' });

function ingested(id: string) {
  const meta = create(EventMetaSchema, { eventId: `${id}:ingest`, analysisId: id, tenantId: 't1', contentSha256: 'ab'.repeat(32) });
  return encodeEvent(Topic.imageIngested, ImageIngestedSchema, create(ImageIngestedSchema, { meta }));
}

async function harness(behaviour: (id: string) => Promise<void>) {
  const bus = new InMemoryBus({ partitions: 2, retryBackoffMs: 1 });
  const out = { detected: [] as BusMessage[], completed: [] as BusMessage[], dlq: [] as BusMessage[] };
  await bus.subscribe({ group: 'obs1', topics: [Topic.facesDetected], handler: async (m) => void out.detected.push(m) });
  await bus.subscribe({ group: 'obs2', topics: [Topic.analysisCompleted], handler: async (m) => void out.completed.push(m) });
  await bus.subscribe({ group: 'obs3', topics: [deadLetterTopic('face-detection')], handler: async (m) => void out.dlq.push(m) });
  const def: StageDefinition<typeof ImageIngestedSchema, typeof FacesDetectedSchema> = {
    name: 'face-detection',
    stage: Stage.FACE_DETECTION,
    span: 'tampertrace.face_detection.detect',
    input: { topic: Topic.imageIngested, schema: ImageIngestedSchema },
    output: { topic: Topic.facesDetected, schema: FacesDetectedSchema },
    async handle(e) {
      await behaviour(e.meta!.analysisId);
      return create(FacesDetectedSchema, { meta: nextMeta(e.meta!, Stage.FACE_DETECTION, 'face-detection') });
    },
  };
  await runStage(bus, def, { concurrency: 2, maxAttempts: 3, log });
  return { bus, out };
}

test('a good event produces the output event, keyed by analysis id, with the stage timing appended', async () => {
  const { bus, out } = await harness(async () => {});
  await bus.publish(ingested('a1'));
  await bus.idle();
  assert.equal(out.detected.length, 1);
  assert.equal(out.detected[0].key, 'a1');
  assert.equal(out.detected[0].headers[Header.tenant], 't1');
  const e = fromBinary(FacesDetectedSchema, out.detected[0].value);
  assert.equal(e.meta!.eventId, 'a1:face-detection');
  assert.equal(e.meta!.timings.length, 1);
  assert.equal(e.meta!.timings[0].stage, Stage.FACE_DETECTION);
  await bus.close();
});

test('garbage bytes on the topic go to the dead-letter topic with provenance, and consumption goes on', async () => {
  const { bus, out } = await harness(async () => {});
  await bus.publish({ topic: Topic.imageIngested, key: 'junk', value: new Uint8Array([0xff, 0xff, 0xff, 0x01]), headers: {} });
  await bus.publish(ingested('a2'));
  await bus.idle();
  assert.equal(out.dlq.length, 1);
  assert.equal(out.dlq[0].key, 'junk');
  assert.deepEqual([...out.dlq[0].value], [0xff, 0xff, 0xff, 0x01]);
  assert.equal(out.dlq[0].headers[Header.dlqCode], 'INVALID_MESSAGE');
  assert.equal(out.dlq[0].headers[Header.dlqStage], 'face-detection');
  assert.equal(out.dlq[0].headers[Header.dlqOriginalTopic], Topic.imageIngested);
  assert.ok(!Number.isNaN(Date.parse(out.dlq[0].headers[Header.dlqTime])));
  assert.equal(out.detected.length, 1, 'the good event after the poison one still went through');
  await bus.close();
});

test('invalid input becomes a REJECTED final result with its code, not a dead letter', async () => {
  const { bus, out } = await harness(async () => {
    throw new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, 'ends early');
  });
  await bus.publish(ingested('a3'));
  await bus.idle();
  assert.equal(out.dlq.length, 0);
  assert.equal(out.completed.length, 1);
  const a = fromBinary(AnalysisCompletedSchema, out.completed[0].value).analysis!;
  assert.equal(a.status, AnalysisStatus.REJECTED);
  assert.equal(a.error!.code, ErrorCode.TRUNCATED_IMAGE);
  assert.equal(a.error!.stage, Stage.FACE_DETECTION);
  await bus.close();
});

test('a dependency outage is waited out past maxAttempts; a message that keeps timing out ends FAILED and dead-lettered', async () => {
  let calls = 0;
  const { bus, out } = await harness(async (id) => {
    calls++;
    // maxAttempts is 3: the store is down for 6 attempts, then back.
    if (id === 'outage' && calls <= 6) throw new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, 'store down');
    if (id === 'slow') throw new RetriableError(ErrorCode.TIMEOUT, 'inference timed out');
  });
  await bus.publish(ingested('outage'));
  await bus.idle();
  assert.equal(calls, 7);
  assert.equal(out.detected.length, 1);
  assert.equal(out.dlq.length, 0);
  await bus.publish(ingested('slow'));
  await bus.idle();
  assert.equal(calls, 10, 'three attempts for the timing-out message');
  assert.equal(out.dlq.length, 1);
  assert.equal(out.dlq[0].headers[Header.dlqCode], 'TIMEOUT');
  const a = fromBinary(AnalysisCompletedSchema, out.completed[0].value).analysis!;
  assert.equal(a.status, AnalysisStatus.FAILED);
  await bus.close();
});
