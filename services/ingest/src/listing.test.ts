// Listing on PGlite: one analysis by id within its tenant, pages capped at 200 (50 unless asked),
// and page tokens that round-trip and refuse anything this service did not make.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { CallerError } from '@tampertrace/shared';
import { AnalysisSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ListAnalysesRequestSchema } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AnalysesStore } from './analyses.ts';
import { cursorOf, tokenOf } from './listing.ts';
import { openIngestUnderTest, type IngestUnderTest } from './service.testing.ts';

let t: IngestUnderTest;
let tenantId: string;
const T0 = Date.parse('2026-10-01T00:00:00Z');
const id = (n: number) => `0191${String(n).padStart(4, '0')}-0000-7000-8000-000000000000`;

before(async () => {
  t = await openIngestUnderTest();
  ({ tenantId } = await t.tenant());
  const store = new AnalysesStore(t.sql);
  for (let n = 0; n < 205; n++) {
    await store.pending(create(AnalysisSchema, { analysisId: id(n), tenantId, contentSha256: 'aa'.repeat(32), status: AnalysisStatus.PENDING, submittedAt: timestampFromDate(new Date(T0 + n * 1000)) }));
  }
});

after(() => t?.close());

const list = (init: Parameters<typeof create<typeof ListAnalysesRequestSchema>>[1]) => t.ingest.listing.list(tenantId, create(ListAnalysesRequestSchema, init));
const invalid = (err: unknown) => err instanceof CallerError && err.code === ErrorCode.INVALID_MESSAGE;

test('get answers the tenant\'s own analysis and nothing for another tenant or a malformed id', async () => {
  assert.equal((await t.ingest.listing.get(tenantId, id(7)))?.analysisId, id(7));
  assert.equal(await t.ingest.listing.get('someone-else', id(7)), undefined);
  assert.equal(await t.ingest.listing.get(tenantId, "7' OR '1'='1"), undefined);
});

test('pages hold 50 unless asked, never more than 200, newest first, and a walk sees each analysis once', async () => {
  const first = await list({});
  assert.equal(first.analyses.length, 50);
  assert.equal(first.analyses[0].analysisId, id(204));
  assert.equal((await list({ pageSize: 1000 })).analyses.length, 200);
  const seen: string[] = [];
  let pageToken = '';
  do {
    const page = await list({ pageSize: 60, pageToken });
    seen.push(...page.analyses.map((a) => a.analysisId));
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.deepEqual(seen, Array.from({ length: 205 }, (_, n) => id(204 - n)));
});

test('a page token round-trips its cursor; anything else, or a date past the last one, is INVALID_MESSAGE', async () => {
  const c = { submittedAt: new Date(T0 + 5000), analysisId: id(5) };
  assert.deepEqual(cursorOf(tokenOf(c)), c);
  for (const token of ['', 'not a token', Buffer.from(`12.${id(1)}x`).toString('base64url'), Buffer.from(`9999999999999999.${id(1)}`).toString('base64url')]) {
    assert.throws(() => cursorOf(token), invalid, token);
  }
  await assert.rejects(list({ pageToken: 'garbage' }), invalid);
  await assert.rejects(list({ minForgeryScore: -0.1 }), invalid);
  await assert.rejects(list({ minForgeryScore: Number.NaN }), invalid);
});

test('related answers the links an analysis holds with each linked analysis as it stands, read within the tenant only', async () => {
  const store = new AnalysesStore(t.sql);
  const foreign = create(AnalysisSchema, { analysisId: id(9000), tenantId: 'someone-else', contentSha256: 'cc'.repeat(32), status: AnalysisStatus.PENDING, submittedAt: timestampFromDate(new Date(T0)) });
  await store.pending(foreign);
  const repost = { analysisId: id(9001), tenantId, contentSha256: 'dd'.repeat(32), submittedAt: timestampFromDate(new Date(T0 + 999_000)) };
  await store.pending(create(AnalysisSchema, { ...repost, status: AnalysisStatus.PENDING }));
  const related = [{ analysisId: id(3), hammingDistance: 4 }, { analysisId: foreign.analysisId, hammingDistance: 1 }];
  await store.final(create(AnalysisSchema, { ...repost, status: AnalysisStatus.COMPLETED, provenance: { related } }));
  const r = (await t.ingest.listing.related(tenantId, repost.analysisId))!;
  assert.deepEqual(r.related.map((l) => [l.analysisId, l.hammingDistance]), [[id(3), 4], [foreign.analysisId, 1]]);
  // The link to another tenant's analysis (which the provenance stage never makes) reads as nothing.
  assert.deepEqual(r.analyses.map((a) => a.analysisId), [id(3)]);
  assert.equal(await t.ingest.listing.related('someone-else', repost.analysisId), undefined);
  assert.equal(await t.ingest.listing.related(tenantId, id(9999)), undefined);
});
