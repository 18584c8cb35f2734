import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPglite } from '@tampertrace/shared/pglite';
import type { SqlClient } from '@tampertrace/shared';
import { AuditStore } from './store.ts';
import { auditRecord as rec } from './testing.ts';


async function fresh(): Promise<{ db: SqlClient; store: AuditStore }> {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  return { db, store };
}

test('redelivering the same event adds nothing; sequences count per tenant', async () => {
  const { store } = await fresh();
  assert.equal(await store.append(rec(1)), true);
  assert.equal(await store.append(rec(1)), false);
  await store.append(rec(2));
  await store.append(rec(3, 't2'));
  assert.equal(await store.count('t1'), 2);
  assert.equal(await store.count('t2'), 1);
  const trail = await store.trail('t1', { contentSha256: 'cd'.repeat(32) });
  assert.deepEqual(trail.map((r) => r.sequence), [1, 2]);
  assert.deepEqual(trail[0].regions, ['nose', 'mouth']);
  assert.equal((await store.trail('t2', { analysisId: 'a1' })).length, 0, 'another tenant does not see t1 records');
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 2 });
  await store.close();
});

test('the database refuses UPDATE and DELETE of audit rows', async () => {
  const { db, store } = await fresh();
  await store.append(rec(1));
  await assert.rejects(db.query("UPDATE audit_records SET status = 'REJECTED'"), /append-only/);
  await assert.rejects(db.query('DELETE FROM audit_records'), /append-only/);
  await store.close();
});

test('verify names the record whose content was changed behind the trigger', async () => {
  const { db, store } = await fresh();
  for (let i = 1; i <= 5; i++) await store.append(rec(i));
  await db.exec('ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update');
  await db.query("UPDATE audit_records SET verdict = 'LIKELY_AUTHENTIC' WHERE sequence = 3");
  assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 3, reason: 'record content does not match its hash' });
  await db.query('DELETE FROM audit_records WHERE sequence = 2');
  const v = await store.verify('t1');
  assert.equal(v.ok, false);
  assert.equal(!v.ok && v.sequence, 2);
  await store.close();
});
