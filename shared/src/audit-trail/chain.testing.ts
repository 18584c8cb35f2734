// Tamper-evidence behaviours of the audit store, registered by chain.test.ts (PGlite) and by
// store.pg.integration.test.ts (PostgreSQL), so both databases are held to the same checks.
// Tampering is done as a superuser would: with the append-only triggers disabled.
import assert from 'node:assert/strict';
import type { SqlClient } from '../index.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import { recordHash, type AuditStore } from './store.ts';
import { checkpointHash } from './chain.ts';
import { auditRecord as rec } from './testing.ts';

export type Fresh = () => Promise<{ db: SqlClient; store: AuditStore }>;
export type Register = (name: string, fn: () => Promise<void>) => void;

async function appendN(store: AuditStore, n: number, tenantId = 't1', from = 1): Promise<void> {
  for (let i = from; i < from + n; i++) await store.append(rec(i, tenantId));
}

const disableTriggers = (db: SqlClient) =>
  db.exec(`ALTER TABLE audit_records DISABLE TRIGGER USER; ALTER TABLE audit_checkpoints DISABLE TRIGGER USER; ALTER TABLE audit_prunes DISABLE TRIGGER USER`);

export function defineChainTests(register: Register, fresh: Fresh): void {
  register('checkpoints record the chain head, chain to each other and export as plain JSON', async () => {
    const { db, store } = await fresh();
    assert.equal(await store.checkpoint('t1'), null, 'an empty chain has no checkpoint');
    await appendN(store, 3);
    const c1 = await store.checkpoint('t1');
    const head = await db.query<{ record_hash: string }>("SELECT record_hash FROM audit_records WHERE tenant_id = 't1' AND sequence = 3");
    assert.equal(c1?.checkpointSequence, 1);
    assert.equal(c1?.recordSequence, 3);
    assert.equal(c1?.headHash, head.rows[0].record_hash);
    assert.equal(c1?.prevCheckpointHash, '0'.repeat(64));
    assert.deepEqual(await store.checkpoint('t1'), c1, 'an unmoved head writes nothing new');
    await appendN(store, 2, 't1', 4);
    const c2 = await store.checkpoint('t1');
    assert.equal(c2?.checkpointSequence, 2);
    assert.equal(c2?.recordSequence, 5);
    assert.equal(c2?.prevCheckpointHash, c1?.checkpointHash);
    assert.equal(c2 && checkpointHash(c2), c2?.checkpointHash);
    const exported = await store.exportCheckpoints('t1');
    assert.deepEqual(JSON.parse(JSON.stringify(exported)), [c1, c2], 'JSON round trip keeps every field');
    assert.deepEqual(await store.exportCheckpoints('t2'), [], 'another tenant has none');
    assert.deepEqual(await store.verify('t1', { checkpoints: exported }), { ok: true, count: 5 });
  });

  register('append with checkpointEvery checkpoints in its own transaction at every multiple of N', async () => {
    const { store } = await fresh();
    for (let i = 1; i <= 7; i++) await store.append(rec(i), { checkpointEvery: 3 });
    await store.append(rec(3), { checkpointEvery: 3 }); // a redelivery: no record, no checkpoint
    assert.deepEqual((await store.exportCheckpoints('t1')).map((c) => c.recordSequence), [3, 6]);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 7 });
  });

  register('appendMany writes a batch of two tenants in one transaction, as the same appends one by one would', async () => {
    const { store } = await fresh();
    await store.append(rec(1));
    const batch = [rec(2), rec(1, 't2'), rec(1), rec(3), rec(3), rec(2, 't2'), rec(4)];
    // rec(1) was recorded before the batch, the second rec(3) within it: neither moves a chain.
    assert.deepEqual(await store.appendMany(batch, { checkpointEvery: 3 }), [true, true, false, true, false, true, true]);
    assert.deepEqual(await store.appendMany([]), []);
    const t1 = await store.trail('t1', { contentSha256: 'cd'.repeat(32) });
    assert.deepEqual(t1.map((r) => [r.analysisId, r.sequence]), [['a1', 1], ['a2', 2], ['a3', 3], ['a4', 4]]);
    for (let i = 1; i < t1.length; i++) assert.equal(t1[i].prevHash, t1[i - 1].recordHash);
    assert.deepEqual((await store.trail('t2', { contentSha256: 'cd'.repeat(32) })).map((r) => r.sequence), [1, 2]);
    assert.deepEqual((await store.exportCheckpoints('t1')).map((c) => c.recordSequence), [3], 'checkpointed inside the batch');
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 4 });
    assert.deepEqual(await store.verify('t2'), { ok: true, count: 2 });
  });

  register('a batch the database refuses writes nothing', async () => {
    const { store } = await fresh();
    // An event time PostgreSQL cannot store fails the whole transaction.
    await assert.rejects(store.appendMany([rec(1), { ...rec(2), eventTime: new Date(8.64e15) }]));
    assert.equal(await store.count('t1'), 0);
    assert.deepEqual(await store.appendMany([rec(1)]), [true]);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 1 });
  });

  register('the database refuses UPDATE, DELETE and TRUNCATE of checkpoints and prunes, and TRUNCATE of records', async () => {
    const { db, store } = await fresh();
    await appendN(store, 4);
    await store.checkpoint('t1');
    await store.pruneBefore('t1', 1);
    await appendN(store, 1, 't1', 5);
    await assert.rejects(db.query("UPDATE audit_checkpoints SET head_hash = 'x'"), /audit_checkpoints is append-only \(UPDATE refused\)/);
    await assert.rejects(db.query('DELETE FROM audit_checkpoints'), /audit_checkpoints is append-only \(DELETE refused\)/);
    await assert.rejects(db.exec('TRUNCATE audit_checkpoints CASCADE'), /is append-only \(TRUNCATE refused\)/);
    await assert.rejects(db.query('UPDATE audit_prunes SET checkpoint_sequence = 2'), /audit_prunes is append-only \(UPDATE refused\)/);
    await assert.rejects(db.query('DELETE FROM audit_prunes'), /audit_prunes is append-only \(DELETE refused\)/);
    await assert.rejects(db.exec('TRUNCATE audit_prunes'), /audit_prunes is append-only \(TRUNCATE refused\)/);
    await assert.rejects(db.exec('TRUNCATE audit_records'), /audit_records is append-only \(TRUNCATE refused\)/);
    assert.equal(await store.count('t1'), 1);
    assert.equal((await store.exportCheckpoints('t1')).length, 1);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 1 });
  });

  register('verify names a changed field, a deleted record and two swapped records', async () => {
    const { db, store } = await fresh();
    for (const t of ['changed', 'deleted', 'swapped', 'untouched']) {
      await appendN(store, 6, t);
      await store.checkpoint(t);
    }
    await disableTriggers(db);
    await db.query("UPDATE audit_records SET max_forgery_score = 0.99 WHERE tenant_id = 'changed' AND sequence = 4");
    await db.query("DELETE FROM audit_records WHERE tenant_id = 'deleted' AND sequence = 2");
    // Rows 3 and 4 trade places (each keeps its own hashes).
    await db.query("UPDATE audit_records SET sequence = -3 WHERE tenant_id = 'swapped' AND sequence = 3");
    await db.query("UPDATE audit_records SET sequence = 3 WHERE tenant_id = 'swapped' AND sequence = 4");
    await db.query("UPDATE audit_records SET sequence = 4 WHERE tenant_id = 'swapped' AND sequence = -3");
    assert.deepEqual(await store.verify('changed'), { ok: false, sequence: 4, reason: 'record content does not match its hash' });
    assert.deepEqual(await store.verify('deleted'), { ok: false, sequence: 2, reason: 'record 2 is missing' });
    assert.deepEqual(await store.verify('swapped'), { ok: false, sequence: 3, reason: 'prev_hash does not match the previous record' });
    assert.deepEqual(await store.verify('untouched'), { ok: true, count: 6 });
  });

  register('verify covers the recording time, trace id and submitter of new records', async () => {
    const { db, store } = await fresh();
    for (const t of ['time', 'trace', 'submitter']) await store.append({ ...rec(1, t), traceId: 'ab'.repeat(16), submittedBy: 'key-1' });
    const [row] = await store.trail('trace', { analysisId: 'a1' });
    assert.equal(row.traceId, 'ab'.repeat(16));
    assert.equal(row.submittedBy, 'key-1');
    assert.equal(row.hashVersion, 2);
    await disableTriggers(db);
    await db.query("UPDATE audit_records SET recorded_time = recorded_time + interval '1 second' WHERE tenant_id = 'time'");
    await db.query("UPDATE audit_records SET trace_id = 'cd' WHERE tenant_id = 'trace'");
    await db.query("UPDATE audit_records SET submitted_by = NULL WHERE tenant_id = 'submitter'");
    for (const t of ['time', 'trace', 'submitter']) {
      assert.deepEqual(await store.verify(t), { ok: false, sequence: 1, reason: 'record content does not match its hash' }, t);
    }
  });

  register('verify finds records removed from the end up to the last checkpoint, and a forged checkpoint', async () => {
    const { db, store } = await fresh();
    await appendN(store, 6);
    await store.checkpoint('t1');
    await appendN(store, 2, 't1', 7);
    await appendN(store, 3, 'forged');
    await store.checkpoint('forged');
    await disableTriggers(db);
    // After the last checkpoint nothing vouches for the tail: only a kept checkpoint could tell.
    await db.query("DELETE FROM audit_records WHERE tenant_id = 't1' AND sequence > 6");
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 6 });
    await db.query("DELETE FROM audit_records WHERE tenant_id = 't1' AND sequence > 4");
    assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 5, reason: 'record 5 is missing' });
    await db.query(`UPDATE audit_checkpoints SET head_hash = '${'e'.repeat(64)}' WHERE tenant_id = 'forged'`);
    assert.deepEqual(await store.verify('forged'), { ok: false, sequence: 3, reason: 'checkpoint 1 does not match its hash' });
  });

  register('verify checks the checkpoints\' own chain, also from the middle of a range', async () => {
    const { db, store } = await fresh();
    for (let k = 0; k < 4; k++) {
      await appendN(store, 3, 't1', 3 * k + 1);
      await store.checkpoint('t1'); // at records 3, 6, 9, 12
    }
    assert.deepEqual(await store.verify('t1', { fromSequence: 5 }), { ok: true, count: 8 });
    await disableTriggers(db);
    await db.query("DELETE FROM audit_checkpoints WHERE tenant_id = 't1' AND checkpoint_sequence = 3");
    assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 12, reason: 'checkpoint 3 is missing' });
    assert.deepEqual(await store.verify('t1', { fromSequence: 10 }), { ok: false, sequence: 12, reason: 'checkpoint 3 is missing' });
    assert.deepEqual(await store.verify('t1', { toSequence: 9 }), { ok: true, count: 9 }, 'the gap is after this range');
  });

  register('verify with exported checkpoints catches a chain rewritten together with its checkpoints', async () => {
    const { db, store } = await fresh();
    await appendN(store, 5);
    await store.checkpoint('t1');
    const kept = await store.exportCheckpoints('t1');
    await disableTriggers(db);
    // Record 3 changed, then every later hash and the checkpoint recomputed to match.
    let prev = (await store.trail('t1', { analysisId: 'a2' }))[0].recordHash;
    for (let i = 3; i <= 5; i++) {
      const [row] = await store.trail('t1', { analysisId: `a${i}` });
      const changed = i === 3 ? { ...row, verdict: 'LIKELY_AUTHENTIC' } : row;
      const hash = recordHash(prev, changed, i, { recordedTime: row.recordedTime });
      await db.query("UPDATE audit_records SET verdict = $1, prev_hash = $2, record_hash = $3 WHERE tenant_id = 't1' AND sequence = $4", [changed.verdict, prev, hash, i]);
      prev = hash;
    }
    const forged = { ...kept[0], headHash: prev };
    await db.query("UPDATE audit_checkpoints SET head_hash = $1, checkpoint_hash = $2 WHERE tenant_id = 't1'", [prev, checkpointHash(forged)]);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 5 }, 'the database alone cannot tell');
    assert.deepEqual(await store.verify('t1', { checkpoints: kept }), { ok: false, sequence: 5, reason: 'checkpoint 1 differs from the kept copy' });
  });

  register('verify checks a range, anchored on the record before it', async () => {
    const { db, store } = await fresh();
    await appendN(store, 10);
    await disableTriggers(db);
    await db.query("UPDATE audit_records SET status = 'FAILED' WHERE tenant_id = 't1' AND sequence = 8");
    assert.deepEqual(await store.verify('t1', { toSequence: 5 }), { ok: true, count: 5 });
    assert.deepEqual(await store.verify('t1', { fromSequence: 3, toSequence: 7 }), { ok: true, count: 5 });
    assert.deepEqual(await store.verify('t1', { fromSequence: 6 }), { ok: false, sequence: 8, reason: 'record content does not match its hash' });
    assert.deepEqual(await store.verify('t1', { fromSequence: 2, batchSize: 3 }), { ok: false, sequence: 8, reason: 'record content does not match its hash' });
    assert.deepEqual(await store.verify('t1', { fromSequence: 11 }), { ok: true, count: 0 });
    await db.query("DELETE FROM audit_records WHERE tenant_id = 't1' AND sequence = 4");
    assert.deepEqual(await store.verify('t1', { fromSequence: 5, toSequence: 7 }), { ok: false, sequence: 4, reason: 'record 4 is missing' }, 'no anchor');
    await assert.rejects(store.verify('t1', { fromSequence: 0 }), (e: { code?: unknown }) => e.code === ErrorCode.INVALID_MESSAGE);
  });

  register('pruneBefore deletes exactly the prefix up to a checkpoint and the rest verifies from its head hash', async () => {
    const { db, store } = await fresh();
    await appendN(store, 4);
    await store.checkpoint('t1');
    await appendN(store, 6, 't1', 5);
    await store.checkpoint('t1');
    await appendN(store, 3, 'other');
    assert.deepEqual(await store.pruneBefore('t1', 1), { pruned: 4 });
    assert.equal(await store.count('t1'), 6);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 6 });
    assert.deepEqual(await store.trail('t1', { analysisId: 'a2' }), []);
    const tags = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_record_tags WHERE tenant_id = 't1' AND sequence <= 4");
    assert.equal(tags.rows[0].n, 0, 'the pruned records left no query tags behind');
    assert.deepEqual(await store.pruneBefore('t1', 1), { pruned: 0 }, 'pruned already');
    await assert.rejects(store.pruneBefore('t1', 9), (e: { code?: unknown }) => e.code === ErrorCode.NOT_FOUND);
    await assert.rejects(store.pruneBefore('other', 1), (e: { code?: unknown }) => e.code === ErrorCode.NOT_FOUND, 'checkpoints are per tenant');
    // The trigger allows deletion only inside a prune and only of what a prune covers.
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("SELECT set_config('tampertrace.audit_prune', 't1', true)");
        await tx.query("DELETE FROM audit_records WHERE tenant_id = 't1' AND sequence = 5");
      }),
      /append-only \(DELETE refused\)/,
    );
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("SELECT set_config('tampertrace.audit_prune', 'other', true)");
        await tx.query("DELETE FROM audit_records WHERE tenant_id = 'other' AND sequence = 1");
      }),
      /append-only \(DELETE refused\)/,
    );
    await assert.rejects(db.query("DELETE FROM audit_records WHERE tenant_id = 't1'"), /append-only \(DELETE refused\)/);
    // A temporary table of the same name does not vouch for a deletion either.
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query('CREATE TEMP TABLE audit_prunes (tenant_id text, checkpoint_sequence bigint) ON COMMIT DROP');
        await tx.query('CREATE TEMP TABLE audit_checkpoints (tenant_id text, checkpoint_sequence bigint, record_sequence bigint) ON COMMIT DROP');
        await tx.query("INSERT INTO audit_prunes VALUES ('other', 1)");
        await tx.query("INSERT INTO audit_checkpoints VALUES ('other', 1, 100)");
        await tx.query("SELECT set_config('tampertrace.audit_prune', 'other', true)");
        await tx.query("DELETE FROM audit_records WHERE tenant_id = 'other' AND sequence = 1");
      }),
      /append-only \(DELETE refused\)/,
    );
    assert.equal(await store.count('t1'), 6);
    assert.deepEqual(await store.verify('other'), { ok: true, count: 3 });
    // Pruning the whole chain: the next record continues it from the checkpoint.
    assert.deepEqual(await store.pruneBefore('t1', 2), { pruned: 6 });
    assert.equal(await store.count('t1'), 0);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 0 });
    await appendN(store, 1, 't1', 11);
    const [next] = await store.trail('t1', { analysisId: 'a11' });
    assert.equal(next.sequence, 11);
    assert.equal(next.prevHash, (await store.exportCheckpoints('t1'))[1].headHash);
    assert.deepEqual(await store.verify('t1'), { ok: true, count: 1 });
    // Tampering after a prune is still found.
    await disableTriggers(db);
    await db.query("UPDATE audit_records SET prev_hash = $1 WHERE tenant_id = 't1' AND sequence = 11", ['f'.repeat(64)]);
    assert.deepEqual(await store.verify('t1'), { ok: false, sequence: 11, reason: 'prev_hash does not match the previous record' });
  });

  register('pruneBefore refuses a prefix that does not verify', async () => {
    const { db, store } = await fresh();
    await appendN(store, 4);
    await store.checkpoint('t1');
    await db.exec('ALTER TABLE audit_records DISABLE TRIGGER audit_records_no_update');
    await db.query("UPDATE audit_records SET verdict = NULL WHERE tenant_id = 't1' AND sequence = 2");
    await db.exec('ALTER TABLE audit_records ENABLE TRIGGER audit_records_no_update');
    await assert.rejects(store.pruneBefore('t1', 1), /refusing to prune: record 2 does not verify/);
    assert.equal(await store.count('t1'), 4);
  });
}
