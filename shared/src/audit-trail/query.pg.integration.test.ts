// query() on a REAL PostgreSQL (deploy/local) at a size where plans matter: 20 000 records across
// 3 tenants, ANALYZEd. Every filter (and some combinations) must return exactly the records that
// the JS expectation names, each once across its pages, never another tenant's, and its plan
// must reach audit_records through an index. Skipped without TAMPERTRACE_DATABASE_URL; its own
// schema (search_path on every pooled connection), dropped at the end.
//   eval "$(deploy/local/infra.sh env)"; node --import tsx --test services/audit/src/query.pg.integration.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { openPostgres } from '../pg.ts';
import type { SqlClient } from '../index.ts';
import { AuditStore, type AuditRow } from './store.ts';
import { pageQuery } from './query.ts';
import { allPages, chainRecords, filterCases, insertRows, matchesFilter, newestFirst, syntheticRecords } from './testing.ts';

const URL_ = process.env.TAMPERTRACE_DATABASE_URL;
const SKIP = URL_ ? false : 'TAMPERTRACE_DATABASE_URL is not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"` first';
const SCHEMA = `it_query_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
const START = new Date('2024-01-01T00:00:00Z');
const SPAN = 90 * 86_400_000;
const TENANTS = [{ id: 'tenant-a', weight: 5 }, { id: 'tenant-b', weight: 3 }, { id: 'tenant-c', weight: 2 }];
const COUNT = 20_000;
const APPENDED = 30;
const CASES = filterCases(START, SPAN);

let db: SqlClient;
let store: AuditStore;
/** Every record in the table, as generated (bulk) or appended. */
let rows: AuditRow[];

before(async () => {
  if (SKIP) return;
  const admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`CREATE SCHEMA ${SCHEMA}`);
  await admin.close();
  db = await openPostgres(URL_!, { max: 4, pool: { options: `-c search_path=${SCHEMA}` } });
  store = new AuditStore(db);
  await store.migrate();
  const heads = new Map<string, { sequence: number; recordHash: string }>();
  rows = chainRecords(syntheticRecords({ tenants: TENANTS, count: COUNT, seed: 5, start: START, spanMs: SPAN }), heads);
  for (let i = 0; i < rows.length; i += 4000) await insertRows(db, rows.slice(i, i + 4000));
  // A few through the real append path too (the newest records of each tenant).
  const later = [...syntheticRecords({ tenants: TENANTS, count: APPENDED, seed: 6, start: new Date(START.getTime() + SPAN), spanMs: 3_600_000 })];
  for (const r of later) {
    const rec = { ...r, eventId: `appended:${r.eventId}` };
    assert.equal(await store.append(rec), true);
    const sequence = heads.get(r.tenantId)!.sequence + 1;
    heads.set(r.tenantId, { sequence, recordHash: '' });
    rows.push({ ...rec, sequence, prevHash: '', recordHash: '', recordedTime: new Date(), hashVersion: 2 });
  }
  await db.exec('ANALYZE');
});

after(async () => {
  if (SKIP) return;
  await db?.close().catch(() => {});
  const admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.close();
});

test('each filter returns exactly the expected records, newest first, each once across its pages', { skip: SKIP }, async () => {
  let nonEmpty = 0;
  for (const [i, [name, filter]] of CASES.entries()) {
    const limit = [1000, 100, 37][i % 3];
    for (const t of TENANTS) {
      const expected = rows.filter((r) => r.tenantId === t.id && matchesFilter(r, filter)).sort(newestFirst);
      const { rows: got, pages } = await allPages(store, t.id, filter, limit);
      assert.deepEqual(got.map((r) => r.eventId), expected.map((r) => r.eventId), `${name}, ${t.id}, pages of ${limit}`);
      assert.equal(pages, Math.max(1, Math.ceil(expected.length / limit)));
      if (expected.length > 0) nonEmpty++;
    }
  }
  assert.ok(nonEmpty >= (CASES.length - 1) * TENANTS.length - 3, `most cases match something (${nonEmpty})`);
});

test("tenant A's queries never return tenant B's records, whatever the filter or cursor", { skip: SKIP }, async () => {
  const byTenant = new Map(TENANTS.map((t) => [t.id, new Set(rows.filter((r) => r.tenantId === t.id).map((r) => r.eventId))]));
  for (const [name, filter] of CASES) {
    for (const t of TENANTS) {
      const page = await store.query(t.id, filter, { limit: 1000 });
      for (const r of page.records) {
        assert.equal(r.tenantId, t.id, name);
        assert.ok(byTenant.get(t.id)!.has(r.eventId), `${name}: ${r.eventId} belongs to ${t.id}`);
      }
      // Another tenant's cursor only positions within one's own records.
      const other = TENANTS.find((o) => o.id !== t.id)!;
      const foreign = await store.query(other.id, filter, { limit: 5 });
      if (foreign.nextCursor) {
        const p = await store.query(t.id, filter, { limit: 50, cursor: foreign.nextCursor });
        assert.ok(p.records.every((r) => r.tenantId === t.id), `${name}: foreign cursor`);
      }
    }
  }
  // trail() too: another tenant's analysis id answers nothing.
  const b = rows.find((r) => r.tenantId === 'tenant-b')!;
  assert.deepEqual(await store.trail('tenant-a', { analysisId: b.analysisId }), []);
  assert.ok((await store.trail('tenant-b', { analysisId: b.analysisId })).length > 0);
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

test('every filter query reaches the records through an index (EXPLAIN: no Seq Scan on audit_records)', { skip: SKIP }, async () => {
  for (const [name, filter] of CASES) {
    const first = await store.query('tenant-a', filter, { limit: 100 });
    for (const cursor of first.nextCursor ? [undefined, first.nextCursor] : [undefined]) {
      const q = pageQuery('tenant-a', filter, { limit: 100, cursor });
      const res = await db.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (FORMAT JSON) ${q.sql}`, q.params);
      const nodes: PlanNode[] = [];
      const walk = (n: PlanNode) => {
        nodes.push(n);
        n.Plans?.forEach(walk);
      };
      walk(res.rows[0]['QUERY PLAN'][0].Plan);
      const shape = nodes.map((n) => `${n['Node Type']}${n['Relation Name'] ? ` on ${n['Relation Name']}` : ''}${n['Index Name'] ? ` using ${n['Index Name']}` : ''}`).join(' > ');
      const seq = nodes.filter((n) => n['Node Type'] === 'Seq Scan' && /^audit_record/.test(n['Relation Name'] ?? ''));
      assert.equal(seq.length, 0, `${name}${cursor ? ' (next page)' : ''}: ${shape}`);
      assert.ok(nodes.some((n) => /Index/.test(n['Node Type'])), `${name}: no index in ${shape}`);
      if (process.env.AUDIT_SHOW_PLANS) console.log(`${name}${cursor ? ' (next page)' : ''}: ${shape}`);
    }
  }
});
