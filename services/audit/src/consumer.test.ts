import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Header, InMemoryBus, Topic, createLogger, deadLetterTopic, encodeEvent } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { EventMetaSchema, ImageIngestedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { AUDIT_GROUP, runAuditConsumer } from './consumer.ts';
import { UNATTRIBUTED_TENANT } from './records.ts';
import { AuditStore } from '@tampertrace/shared/audit-trail/store';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

function ingested(i: number, traceparent?: string, occurredAt = new Date(1_700_000_000_000 + i)) {
  const meta = create(EventMetaSchema, {
    eventId: `a${i}:ingest`, analysisId: `a${i}`, tenantId: 't1', contentSha256: 'cd'.repeat(32),
    occurredAt: timestampFromDate(occurredAt),
  });
  const msg = encodeEvent(Topic.imageIngested, ImageIngestedSchema, create(ImageIngestedSchema, { meta }));
  if (traceparent) msg.headers[Header.traceparent] = traceparent;
  return msg;
}

test('the consumer records the trace id of each message and checkpoints every N records per tenant', async () => {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const bus = new InMemoryBus();
  const sub = await runAuditConsumer(bus, store, createLogger('audit-test', 'silent'), { checkpointEvery: 2, checkpointIntervalMs: 0 });
  for (let i = 1; i <= 5; i++) await bus.publish(ingested(i, i === 1 ? 'broken' : `00-${TRACE}-00f067aa0ba902b7-01`));
  await bus.publish(ingested(3)); // a redelivery: nothing new
  for (let k = 0; k < 100 && (await store.count('t1')) < 5; k++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 50));
  await sub.stop();
  assert.equal(await store.count('t1'), 5);
  assert.equal((await store.trail('t1', { analysisId: 'a1' }))[0].traceId, undefined, 'a malformed traceparent records no trace id');
  assert.equal((await store.trail('t1', { analysisId: 'a2' }))[0].traceId, TRACE);
  assert.deepEqual((await store.exportCheckpoints('t1')).map((c) => c.recordSequence), [2, 4]);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 5 });
  await bus.close();
  await store.close();
});

test('the consumer checkpoints the tenants it appended to on its timer', async () => {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const bus = new InMemoryBus();
  const sub = await runAuditConsumer(bus, store, createLogger('audit-test', 'silent'), { checkpointEvery: 0, checkpointIntervalMs: 30 });
  for (let i = 1; i <= 3; i++) await bus.publish(ingested(i));
  let cps = await store.exportCheckpoints('t1');
  for (let k = 0; k < 100 && cps.at(-1)?.recordSequence !== 3; k++) {
    await new Promise((r) => setTimeout(r, 20));
    cps = await store.exportCheckpoints('t1');
  }
  await sub.stop();
  assert.equal(cps.at(-1)?.recordSequence, 3);
  await bus.close();
  await store.close();
});

test('dead letters of the other consumers are recorded once each, FAILED at their stage with code and reason', async () => {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const bus = new InMemoryBus();
  const sub = await runAuditConsumer(bus, store, createLogger('audit-test', 'silent'), { checkpointIntervalMs: 0 });
  const id = '01a21cbd-0000-7000-8000-000000000001';
  const letter = {
    topic: deadLetterTopic('face-detection'),
    key: id,
    value: new Uint8Array([0xde, 0xad]),
    headers: {
      [Header.tenant]: 't1',
      [Header.contentSha256]: 'ab'.repeat(32),
      [Header.dlqCode]: 'INVALID_MESSAGE',
      [Header.dlqReason]: 'premature end of input',
      [Header.dlqStage]: 'face-detection',
      [Header.dlqTime]: '2026-11-27T12:00:00.000Z',
      [Header.dlqOriginalTopic]: Topic.imageIngested,
    },
  };
  await bus.publish(letter);
  await bus.publish(letter); // redelivered: recorded once
  await bus.publish({ topic: deadLetterTopic('ingest-submissions'), key: 'post-9', value: new Uint8Array([1]), headers: { [Header.dlqCode]: 'UNAUTHENTICATED', [Header.dlqStage]: 'ingest-submissions', [Header.dlqTime]: '2026-11-27T12:00:01.000Z' } });
  await bus.idle();
  await sub.stop();
  const [r] = await store.trail('t1', { analysisId: id });
  assert.equal(await store.count('t1'), 1);
  assert.equal(r.stage, 'FACE_DETECTION');
  assert.equal(r.status, 'FAILED');
  assert.equal(r.errorCode, 'INVALID_MESSAGE');
  assert.match(r.errorMessage!, /face-detection from tampertrace\.image\.ingested\.v1: premature end of input/);
  // No tenant header (garbage from outside): kept for operators under its own tenant, never shown to a tenant.
  const [u] = (await store.query(UNATTRIBUTED_TENANT)).records;
  assert.equal(u.errorCode, 'UNAUTHENTICATED');
  assert.equal(u.stage, 'INGEST');
  await bus.close();
  await store.close();
});

test('messages handled at once share append transactions; a record the database refuses is dead-lettered alone', async () => {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const batches: number[] = [];
  const appendMany = store.appendMany.bind(store);
  store.appendMany = (records, opts) => {
    batches.push(records.length);
    return appendMany(records, opts);
  };
  const bus = new InMemoryBus({ partitions: 8 });
  const sub = await runAuditConsumer(bus, store, createLogger('audit-test', 'silent'), { concurrency: 8, checkpointIntervalMs: 0 });
  const dead: string[] = [];
  const dlq = await bus.subscribe({ group: 'test', topics: [deadLetterTopic(AUDIT_GROUP)], handler: async (m) => void dead.push(`${m.key} ${m.headers[Header.dlqCode]}`) });
  // An event time the database cannot store: its record fails every transaction it is in.
  await bus.publish(ingested(13, undefined, new Date(8.64e15)));
  for (let i = 1; i <= 40; i++) if (i !== 13) await bus.publish(ingested(i));
  await bus.idle();
  await Promise.all([sub.stop(), dlq.stop()]);
  assert.deepEqual(dead, ['a13 INVALID_MESSAGE']);
  assert.equal(await store.count('t1'), 39, 'every other record is written');
  assert.equal((await store.trail('t1', { analysisId: 'a13' })).length, 0);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 39 });
  assert.ok(Math.max(...batches) > 1, `records shared transactions (batch sizes ${batches.join(',')})`);
  await bus.close();
  await store.close();
});
