// The submissions topic on a REAL Kafka broker: a message that does not prove its tenant
// (unsigned, wrongly signed, an unknown tenant, or carrying a forged tt-dlq-tenant) is
// dead-lettered and recorded only for operators (UNATTRIBUTED_TENANT), never in the chain of
// the tenant it names; a signed one is analysed and recorded in its tenant's chain. The ingest
// service's consumer and the audit consumer run here on the broker, with the embedded database.
//   eval "$(deploy/local/infra.sh env)"; node --import tsx --test services/tampertrace/src/submissions-auth.integration.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { pino } from 'pino';
import sharp from 'sharp';
import { ConsumerGroup, FsObjectStore, Header, KafkaBus, Topic, allTopics, deadLetterTopic, loadConfig, type BusMessage, type SqlClient, type Subscription } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { SubmitRequestSchema } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { openIngest, type Ingest } from '@tampertrace/ingest/service';
import { submissionSignature } from '@tampertrace/ingest/submissions-topic';
import { runAuditConsumer } from '@tampertrace/audit/consumer';
import { UNATTRIBUTED_TENANT } from '@tampertrace/audit/records';
import { waitFor } from './cluster.testing.ts';

const brokers = process.env.TAMPERTRACE_KAFKA_BROKERS;
const SKIP = brokers ? false : 'TAMPERTRACE_KAFKA_BROKERS is not set: run `make infra-up servers=kafka` and `eval "$(deploy/local/infra.sh env)"`';

let bus: KafkaBus;
let sql: SqlClient;
let ingest: Ingest;
const subs: Subscription[] = [];

before(async () => {
  if (SKIP) return;
  const prefix = `it-subauth-${Date.now()}-${process.pid}`;
  const log = pino({ level: 'silent' });
  bus = await KafkaBus.connect({ brokers: brokers!.split(','), clientId: prefix, topicPrefix: prefix, partitions: 1, log, sessionTimeoutMs: 6000, heartbeatIntervalMs: 300, maxWaitTimeInMs: 200 });
  await bus.provision(allTopics());
  const home = await mkdtemp(path.join(os.tmpdir(), 'tt-subauth-'));
  sql = await openPglite(undefined);
  ingest = await openIngest({ cfg: loadConfig({ ...process.env, TAMPERTRACE_HOME: home }), log, bus, store: new FsObjectStore(path.join(home, 'objects')), sql, pepper: 'subauth-test-pepper' });
  subs.push(await runAuditConsumer(bus, ingest.audit, log, { checkpointIntervalMs: 0 }));
});

after(async () => {
  for (const s of subs) await s.stop();
  await ingest?.stop();
  await bus?.close();
  await sql?.close();
});

test('unauthenticated submissions are dead-lettered and never enter the chain of the tenant they name', { skip: SKIP, timeout: 120_000 }, async () => {
  const victim = await ingest.tenants.create('victim');
  const other = await ingest.tenants.create('other');
  const secret = (t: typeof victim.tenant) => t.signingSecret.toString('base64url');
  const dlq: BusMessage[] = [];
  subs.push(await bus.subscribe({ group: 'subauth-dlq-reader', topics: [deadLetterTopic(ConsumerGroup.ingestSubmissions)], handler: async (m) => void dlq.push(m) }));

  const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 10, g: 20, b: 30 } } }).png().toBuffer();
  const value = toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { source: { case: 'content', value: png }, sourceName: 'forged.png' }));
  const send = (key: string, headers: Record<string, string>) => bus.publish({ topic: Topic.submissions, key, value, headers });
  await send('unsigned', { [Header.tenant]: 'victim' });
  await send('wrong-signature', { [Header.tenant]: 'victim', [Header.submissionSignature]: submissionSignature('victim', value, secret(other.tenant)) });
  await send('unknown-tenant', { [Header.tenant]: 'ghost', [Header.submissionSignature]: submissionSignature('ghost', value, secret(victim.tenant)) });
  await send('forged-dlq-tenant', { [Header.tenant]: 'victim', [Header.dlqTenant]: 'victim', [Header.dlqOriginalTopic]: Topic.imageIngested });
  // The control: properly signed, so analysed and recorded as the victim's own.
  await send('signed', { [Header.tenant]: 'victim', [Header.submissionSignature]: submissionSignature('victim', value, secret(victim.tenant)) });

  let unattributed = 0;
  let own = 0;
  await waitFor(() => dlq.length >= 4, 60_000, 'four dead letters');
  const poll = async () => {
    unattributed = await ingest.audit.count(UNATTRIBUTED_TENANT);
    own = await ingest.audit.count('victim');
  };
  for (const end = Date.now() + 60_000; (unattributed < 4 || own < 1) && Date.now() < end; await new Promise((r) => setTimeout(r, 200))) await poll();

  assert.deepEqual(dlq.map((m) => m.key).sort(), ['forged-dlq-tenant', 'unknown-tenant', 'unsigned', 'wrong-signature']);
  for (const m of dlq) {
    assert.equal(m.headers[Header.dlqCode], 'UNAUTHENTICATED', m.key);
    assert.equal(m.headers[Header.dlqTenant], undefined, `${m.key}: a dead letter vouches for no tenant it did not authenticate`);
  }
  // Operators see all four, each with the tenant it claimed.
  const ops = (await ingest.audit.query(UNATTRIBUTED_TENANT)).records;
  assert.equal(ops.length, 4);
  assert.ok(ops.every((r) => r.errorCode === 'UNAUTHENTICATED' && r.stage === 'INGEST'));
  assert.equal(ops.filter((r) => /claims tenant "victim"/.test(r.errorMessage ?? '')).length, 3);
  // The victim's chain holds only its own signed submission, and verifies.
  const records = (await ingest.audit.query('victim')).records;
  assert.ok(records.length >= 1);
  assert.ok(records.every((r) => r.submittedBy === 'stream:victim' && r.errorCode !== 'UNAUTHENTICATED'), JSON.stringify(records.map((r) => [r.stage, r.status, r.errorCode, r.submittedBy])));
  assert.equal((await ingest.audit.verify('victim')).ok, true);
  assert.equal(await ingest.audit.count('ghost'), 0);
});
