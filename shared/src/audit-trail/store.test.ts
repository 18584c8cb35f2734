import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { openPglite } from '../pglite.ts';
import type { SqlClient } from '../index.ts';
import { AuditStore, recordHash } from './store.ts';
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

test('rows written before hash versions still verify after the migration, and the chain goes on with version 2', async () => {
  const db = await openPglite(undefined);
  await db.exec(await readFile(path.resolve(import.meta.dirname, '..', '..', 'migrations', 'audit-trail', '001_audit_records.sql'), 'utf8'));
  // Three records as the store appended them before 002: hash version 1, no hash_version column.
  let prev = '0'.repeat(64);
  for (let i = 1; i <= 3; i++) {
    const r = rec(i);
    const hash = recordHash(prev, r, i);
    await db.query(
      `INSERT INTO audit_records (event_id, tenant_id, analysis_id, content_sha256, stage, status, verdict, max_forgery_score,
         models, faces, regions, explanation_text, explanation_facts, error_code, error_message, source_name, event_time,
         sequence, prev_hash, record_hash)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`,
      [
        r.eventId, r.tenantId, r.analysisId, r.contentSha256, r.stage, r.status, r.verdict ?? null, r.maxForgeryScore ?? null,
        JSON.stringify(r.models), JSON.stringify(r.faces), r.regions, r.explanationText ?? null,
        r.explanationFacts ? JSON.stringify(r.explanationFacts) : null, r.errorCode ?? null, r.errorMessage ?? null,
        r.sourceName ?? null, r.eventTime.toISOString(), i, prev, hash,
      ],
    );
    prev = hash;
  }
  const store = new AuditStore(db);
  await store.migrate();
  await store.append({ ...rec(4), traceId: 'ab'.repeat(16) });
  const rows = await store.trail('t1', { contentSha256: 'cd'.repeat(32) });
  assert.deepEqual(rows.map((r) => r.hashVersion), [1, 1, 1, 2]);
  assert.equal(rows[3].prevHash, rows[2].recordHash);
  assert.deepEqual(await store.verify('t1'), { ok: true, count: 4 });
  const byVersion = await store.query('t1', { modelVersion: '1' });
  assert.equal(byVersion.records.length, 4, 'the migration derived model versions (and query tags) for the old rows too');
  await db.exec('ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update');
  await db.query("UPDATE audit_records SET trace_id = 'cafe' WHERE sequence = 2");
  assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 2, reason: 'record content does not match its hash' }, 'a field added later to an old row');
  await store.close();
});
