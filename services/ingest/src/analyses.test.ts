// The results view's list query (ListAnalyses) on PGlite: newest first, filters, pages that
// never repeat or skip a row (also with equal submission times), one tenant only, and the
// backfill of rows written before the list columns existed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysesStore, type AnalysisListFilter, type ListCursor } from './analyses.ts';

let db: SqlClient;
let store: AnalysesStore;
const ANY: AnalysisListFilter = { status: 0, verdict: 0, minForgeryScore: 0 };
const T0 = Date.parse('2026-11-01T00:00:00Z');

const id = (n: number) => `0190${String(n).padStart(4, '0')}-0000-7000-8000-000000000000`;
function analysis(n: number, tenantId: string, fields: MessageInitShape<typeof AnalysisSchema> = {}): Analysis {
  // Pairs of analyses share a submission time, so ties must be broken by id.
  return create(AnalysisSchema, { analysisId: id(n), tenantId, contentSha256: 'ab'.repeat(32), status: AnalysisStatus.PENDING, submittedAt: timestampFromDate(new Date(T0 + Math.floor(n / 2) * 1000)), ...fields });
}

before(async () => {
  db = await openPglite(undefined);
  store = new AnalysesStore(db);
  await store.migrate();
  for (let n = 0; n < 30; n++) {
    const a = analysis(n, n % 3 === 2 ? 'tenant-b' : 'tenant-a');
    await store.pending(a);
    if (n % 2 === 0) {
      const verdict = n % 4 === 0 ? Verdict.LIKELY_FORGED : Verdict.LIKELY_AUTHENTIC;
      await store.final(create(AnalysisSchema, { ...a, status: AnalysisStatus.COMPLETED, verdict, maxForgeryScore: n / 30 }));
    }
  }
});

after(() => db?.close());

async function walk(tenantId: string, f: AnalysisListFilter, size: number): Promise<string[][]> {
  const pages: string[][] = [];
  let after: ListCursor | undefined;
  for (;;) {
    const rows = await store.list(tenantId, f, size, after);
    if (rows.length === 0) return pages;
    pages.push(rows.map((r) => r.analysis.analysisId));
    after = rows.at(-1)!.cursor;
  }
}

test('a walk over pages returns each of the tenant\'s analyses once, newest first, ties by id', async () => {
  const pages = await walk('tenant-a', ANY, 4);
  const all = pages.flat();
  const expected = Array.from({ length: 30 }, (_, n) => n).filter((n) => n % 3 !== 2).reverse().map(id);
  assert.deepEqual(all, expected);
  assert.equal(pages[0].length, 4);
  assert.equal(new Set(all).size, all.length);
});

test('filters by status, verdict and minimum score combine', async () => {
  const ids = async (f: Partial<AnalysisListFilter>) => (await store.list('tenant-a', { ...ANY, ...f }, 100)).map((r) => r.analysis.analysisId);
  const n = (xs: number[]) => xs.filter((x) => x % 3 !== 2).reverse().map(id);
  const range = Array.from({ length: 30 }, (_, i) => i);
  assert.deepEqual(await ids({ status: AnalysisStatus.PENDING }), n(range.filter((x) => x % 2 === 1)));
  assert.deepEqual(await ids({ status: AnalysisStatus.COMPLETED }), n(range.filter((x) => x % 2 === 0)));
  assert.deepEqual(await ids({ verdict: Verdict.LIKELY_FORGED }), n(range.filter((x) => x % 4 === 0)));
  assert.deepEqual(await ids({ verdict: Verdict.LIKELY_FORGED, minForgeryScore: 0.5 }), n(range.filter((x) => x % 4 === 0 && x / 30 >= 0.5)));
});

test('another tenant\'s analyses are never listed', async () => {
  const b = (await walk('tenant-b', ANY, 7)).flat();
  assert.deepEqual(b, Array.from({ length: 30 }, (_, n) => n).filter((n) => n % 3 === 2).reverse().map(id));
  assert.deepEqual(await store.list('tenant-c', ANY, 10), []);
});

test('rows written before the list columns existed are filled in from their stored message', async () => {
  const a = analysis(99, 'tenant-old', { status: AnalysisStatus.COMPLETED, verdict: Verdict.UNCERTAIN, maxForgeryScore: 0.61 });
  await store.final(a);
  await db.query('UPDATE analyses SET verdict = NULL, max_forgery_score = NULL WHERE analysis_id = $1', [a.analysisId]);
  assert.deepEqual(await store.list('tenant-old', { ...ANY, verdict: Verdict.UNCERTAIN }, 10), []);
  await store.migrate();
  const rows = await store.list('tenant-old', { ...ANY, verdict: Verdict.UNCERTAIN, minForgeryScore: 0.6 }, 10);
  assert.deepEqual(rows.map((r) => r.analysis.analysisId), [a.analysisId]);
});
