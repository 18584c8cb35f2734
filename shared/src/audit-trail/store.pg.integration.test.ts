// AuditStore against a REAL PostgreSQL server (deploy/local), same behaviours as store.test.ts
// and chain.test.ts (which run on PGlite) plus concurrent appends through a connection pool.
//   make infra-up   (or: deploy/local/infra.sh up postgres)
//   eval "$(deploy/local/infra.sh env)"
//   node --import tsx --test services/audit/src/store.pg.integration.test.ts
// Without TAMPERTRACE_DATABASE_URL every test is skipped. Each test gets its own schema
// (it_<run>_<n>, set as search_path on every pooled connection); all are dropped at the end.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { classify } from '../index.ts';
import { openPostgres } from '../pg.ts';
import type { SqlClient } from '../index.ts';
import { AuditStore } from './store.ts';
import { auditRecord as rec } from './testing.ts';
import { defineChainTests } from './chain.testing.ts';

const URL_ = process.env.TAMPERTRACE_DATABASE_URL;
const SKIP = URL_ ? false : 'TAMPERTRACE_DATABASE_URL is not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"` first';

const RUN = `it_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const schemas: string[] = [];
const open: SqlClient[] = [];


/** A fresh, migrated schema; every connection of the returned pool uses it as search_path. */
async function fresh(max = 5): Promise<{ db: SqlClient; store: AuditStore; schema: string }> {
  const schema = `${RUN}_${schemas.length + 1}`;
  const admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  await admin.close();
  schemas.push(schema);
  const db = await openPostgres(URL_!, { max, pool: { options: `-c search_path=${schema}` } });
  open.push(db);
  const store = new AuditStore(db);
  await store.migrate();
  return { db, store, schema };
}

after(async () => {
  if (SKIP) return;
  await Promise.all(open.map((db) => db.close().catch(() => {})));
  if (!schemas.length) return;
  const admin = await openPostgres(URL_!, { max: 1 });
  for (const s of schemas) await admin.exec(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await admin.close();
});

test('the pool really uses the per-test schema', { skip: SKIP }, async () => {
  const { db, schema } = await fresh();
  const rows = await Promise.all(Array.from({ length: 8 }, () => db.query<{ s: string }>('SELECT current_schema() AS s')));
  assert.deepEqual(new Set(rows.map((r) => r.rows[0].s)), new Set([schema]));
  const t = await db.query<{ t: string }>("SELECT to_regclass('audit_records')::text AS t");
  assert.equal(t.rows[0].t, 'audit_records');
  const where = await db.query<{ n: string }>(
    "SELECT table_schema AS n FROM information_schema.tables WHERE table_name = 'audit_records' AND table_schema = $1",
    [schema],
  );
  assert.equal(where.rows.length, 1);
});

test('migrations run twice without error (idempotent, $$ function body via exec)', { skip: SKIP }, async () => {
  const { store } = await fresh();
  await store.migrate();
  await store.migrate();
  assert.equal(await store.count(), 0);
});

test('redelivering the same event adds nothing; sequences count per tenant', { skip: SKIP }, async () => {
  const { store } = await fresh();
  assert.equal(await store.append(rec(1)), true);
  assert.equal(await store.append(rec(1)), false);
  await store.append(rec(2));
  await store.append(rec(3, 't2'));
  assert.equal(await store.count('t1'), 2);
  assert.equal(await store.count('t2'), 1);
  assert.equal(await store.count(), 3);
  const trail = await store.trail('t1', { contentSha256: 'cd'.repeat(32) });
  assert.deepEqual(trail.map((r) => r.sequence), [1, 2]);
  assert.deepEqual(trail[0].regions, ['nose', 'mouth']);
  assert.deepEqual(trail[0].models, [{ name: 'm', version: '1' }]);
  assert.deepEqual(trail[0].explanationFacts, [{ fact: 'f', value: 1 }]);
  assert.equal(trail[0].eventTime.getTime(), 1_700_000_000_001);
  // real (float4): node-postgres parses the shortest text form (0.1), which fround()s back to the stored value
  assert.equal(Math.fround(trail[0].maxForgeryScore!), Math.fround(0.1));
  assert.equal(trail[0].prevHash, '0'.repeat(64));
  assert.equal(trail[1].prevHash, trail[0].recordHash);
  assert.equal((await store.trail('t2', { analysisId: 'a1' })).length, 0, 'another tenant does not see t1 records');
  assert.deepEqual((await store.trail('t2', { analysisId: 'a3' })).map((r) => r.tenantId), ['t2']);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 2 });
  assert.deepEqual(await store.verify('t2'), { ok: true, count: 1 });
});

test('the database refuses UPDATE and DELETE of audit rows', { skip: SKIP }, async () => {
  const { db, store } = await fresh();
  await store.append(rec(1));
  await assert.rejects(db.query("UPDATE audit_records SET status = 'REJECTED'"), /append-only \(UPDATE refused\)/);
  await assert.rejects(db.query('DELETE FROM audit_records'), /append-only \(DELETE refused\)/);
  assert.equal(await store.count(), 1);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 1 });
});

test('a failed transaction rolls back and its connection stays usable', { skip: SKIP }, async () => {
  const { db, store } = await fresh(1); // one connection: a leaked/aborted one would hang or fail the next query
  await assert.rejects(
    db.transaction(async (tx) => {
      await tx.query("INSERT INTO audit_records (event_id, tenant_id, analysis_id, content_sha256, stage, status, event_time, sequence, prev_hash, record_hash) VALUES ('e','t9','a','c','s','st',now(),1,'p','h')");
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(await store.count('t9'), 0, 'the insert was rolled back');
  assert.equal(await store.append(rec(1)), true);
  assert.equal(await store.count(), 1);
});

test('verify names the record whose content was changed behind the trigger', { skip: SKIP }, async () => {
  const { db, store } = await fresh();
  for (let i = 1; i <= 5; i++) await store.append(rec(i));
  await store.append(rec(1, 'other'));
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 5 });
  await db.exec('ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update');
  await db.query("UPDATE audit_records SET verdict = 'LIKELY_AUTHENTIC' WHERE tenant_id = 't1' AND sequence = 3");
  assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 3, reason: 'record content does not match its hash' });
  await db.query("DELETE FROM audit_records WHERE tenant_id = 't1' AND sequence = 2");
  const v = await store.verify('t1');
  assert.equal(v.ok, false);
  assert.equal(!v.ok && v.sequence, 2);
  assert.equal(!v.ok && v.reason, 'record 2 is missing');
  assert.deepEqual(await store.verify('other'), { ok: true, count: 1 }, 'another tenant chain is untouched');
});

test('50 concurrent appends for one tenant through the pool: sequences 1..50, chain verifies', { skip: SKIP }, async () => {
  const { db, store } = await fresh(10);
  const N = 50;
  // Interleave a second tenant and redeliveries to stress the advisory lock and idempotency.
  const results = await Promise.all([
    ...Array.from({ length: N }, (_, i) => store.append(rec(i + 1))),
    ...Array.from({ length: 10 }, (_, i) => store.append(rec(i + 1, 't2'))),
    ...Array.from({ length: 10 }, (_, i) => store.append(rec(i + 1))), // redeliveries of t1 events
  ]);
  assert.equal(results.filter(Boolean).length, N + 10, 'each event recorded exactly once');
  const seq = await db.query<{ sequence: string }>("SELECT sequence FROM audit_records WHERE tenant_id = 't1' ORDER BY sequence");
  assert.deepEqual(seq.rows.map((r) => Number(r.sequence)), Array.from({ length: N }, (_, i) => i + 1));
  const events = await db.query<{ n: number }>("SELECT count(DISTINCT event_id)::int AS n FROM audit_records WHERE tenant_id = 't1'");
  assert.equal(events.rows[0].n, N);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: N });
  assert.deepEqual(await store.verify('t2'), { ok: true, count: 10 });
});

test('a server on a closed port fails with ECONNREFUSED (retriable for classify())', { skip: SKIP }, async () => {
  const u = new URL(URL_!);
  u.port = '1';
  await assert.rejects(openPostgres(u.toString()), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'ECONNREFUSED', String(err));
    assert.equal(classify(err).errorClass, 'retriable');
    return true;
  });
});

// Checkpoints, verification and pruning: the checks chain.test.ts runs on PGlite.
defineChainTests((name, fn) => test(name, { skip: SKIP }, fn), () => fresh());
