import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Header, InMemoryBus, Topic, createLogger, encodeEvent } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { EventMetaSchema, ImageIngestedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { runAuditConsumer } from './consumer.ts';
import { AuditStore } from './store.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

function ingested(i: number, traceparent?: string) {
  const meta = create(EventMetaSchema, {
    eventId: `a${i}:ingest`, analysisId: `a${i}`, tenantId: 't1', contentSha256: 'cd'.repeat(32),
    occurredAt: timestampFromDate(new Date(1_700_000_000_000 + i)),
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
