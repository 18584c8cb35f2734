// SubmitSources on PGlite, the in-memory bus and a local object store: each kind of source (bytes,
// an object of the tenant's, a URL on a loopback server), the options every submission gets
// (source name, submitter, deduplication, the in-flight cap for API callers only), and refusals.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { Bucket, CallerError, InvalidInputError, ObjectKey, TamperTraceError, sha256Hex } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { SubmitRequestSchema, type SubmitRequest } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { openIngestUnderTest, png, type IngestUnderTest } from './service.testing.ts';
import type { Tenant } from './tenants.ts';

let t: IngestUnderTest;
let server: Server;
let imageUrl: string;
let served: Buffer;

before(async () => {
  // Loopback URLs are allowed here, as an operator may allow a private range.
  t = await openIngestUnderTest({ TAMPERTRACE_URL_ALLOW_HTTP: 'true', TAMPERTRACE_URL_ALLOW_PRIVATE: '127.0.0.1/32' });
  served = await png(200);
  server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(served));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  imageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/photo.png`;
});

after(async () => {
  server?.closeAllConnections();
  server?.close();
  await t?.close();
});

const request = (init: Parameters<typeof create<typeof SubmitRequestSchema>>[1]): SubmitRequest => create(SubmitRequestSchema, init);
const tenantOf = async (opts?: { maxInFlight?: number }): Promise<Tenant> => t.ingest.access.tenantOf((await t.tenant(opts)).apiKey);
const row = (tenant: Tenant, id: string) => t.ingest.listing.get(tenant.tenantId, id);

/** The code (by name) a call is refused with. */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof TamperTraceError, `a classified error, not ${String(err)}`);
    return ErrorCode[err.code];
  }
  assert.fail('the call was not refused');
}

test('bytes in the request are submitted as the tenant, by its key, with the source name cut to 200 characters', async () => {
  const tenant = await tenantOf();
  const bytes = await png(1);
  const r = await t.ingest.sources.submit(request({ source: { case: 'content', value: bytes }, sourceName: 'x'.repeat(300) }), tenant);
  assert.deepEqual([r.contentSha256, r.deduplicated, r.rejected], [sha256Hex(bytes), false, undefined]);
  const a = (await row(tenant, r.analysisId))!;
  assert.equal(a.status, AnalysisStatus.PENDING);
  assert.equal(a.sourceName, 'x'.repeat(200));
  // The stored original is the submitted bytes, under the tenant's prefix.
  assert.deepEqual(await t.store.get(Bucket.originals, ObjectKey.original(tenant.tenantId, r.contentSha256)), bytes);
});

test('the same bytes again deduplicate to the first analysis, unless reanalysis is asked for', async () => {
  const tenant = await tenantOf();
  const source = { case: 'content' as const, value: await png(2) };
  const first = await t.ingest.sources.submit(request({ source }), tenant);
  const again = await t.ingest.sources.submit(request({ source }), tenant);
  assert.deepEqual([again.analysisId, again.deduplicated], [first.analysisId, true]);
  const fresh = await t.ingest.sources.submit(request({ source, reanalyze: true }), tenant);
  assert.notEqual(fresh.analysisId, first.analysisId);
  assert.equal(fresh.deduplicated, false);
  // Deduplication is per tenant: another tenant's copy is its own analysis.
  const other = await t.ingest.sources.submit(request({ source }), await tenantOf());
  assert.equal(other.deduplicated, false);
});

test('an object of the tenant\'s originals is submitted; another tenant\'s is NOT_FOUND, an artefact PERMISSION_DENIED', async () => {
  const tenant = await tenantOf();
  const bytes = await png(3);
  const own = await t.store.put(Bucket.originals, `${tenant.tenantId}/uploads/three.png`, bytes, 'image/png');
  const r = await t.ingest.sources.submit(request({ source: { case: 'object', value: own } }), tenant);
  assert.equal(r.contentSha256, sha256Hex(bytes));
  const intruder = await tenantOf();
  assert.equal(await codeOf(t.ingest.sources.submit(request({ source: { case: 'object', value: own } }), intruder)), 'NOT_FOUND');
  assert.equal(await codeOf(t.ingest.sources.submit(request({ source: { case: 'object', value: { bucket: Bucket.originals, key: `${tenant.tenantId}/missing.png` } } }), tenant)), 'NOT_FOUND');
  const artefact = await t.store.put(Bucket.artifacts, `${tenant.tenantId}/mask.png`, bytes, 'image/png');
  assert.equal(await codeOf(t.ingest.sources.submit(request({ source: { case: 'object', value: artefact } }), tenant)), 'PERMISSION_DENIED');
});

test('a URL is fetched and submitted under its own name when the request gives none', async () => {
  const tenant = await tenantOf();
  const r = await t.ingest.sources.submit(request({ source: { case: 'url', value: imageUrl } }), tenant);
  assert.equal(r.contentSha256, sha256Hex(served));
  assert.equal((await row(tenant, r.analysisId))!.sourceName, imageUrl);
  const named = await t.ingest.sources.submit(request({ source: { case: 'url', value: imageUrl }, sourceName: 'given', reanalyze: true }), tenant);
  assert.equal((await row(tenant, named.analysisId))!.sourceName, 'given');
});

test('a request without a source is EMPTY_INPUT; a bad webhook URL is refused before anything is recorded', async () => {
  const tenant = await tenantOf();
  await assert.rejects(t.ingest.sources.submit(request({}), tenant), (err) => err instanceof InvalidInputError && err.code === ErrorCode.EMPTY_INPUT);
  const bytes = await png(4);
  assert.equal(await codeOf(t.ingest.sources.submit(request({ source: { case: 'content', value: bytes }, webhookUrl: 'ftp://example.com/hook' }), tenant)), 'URL_REFUSED');
  const rows = await t.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM analyses WHERE tenant_id = $1', [tenant.tenantId]);
  assert.equal(Number(rows.rows[0].n), 0);
});

test('the in-flight cap holds for API callers, not for the submissions topic (submittedBy)', async () => {
  const tenant = await tenantOf({ maxInFlight: 1 });
  await t.ingest.sources.submit(request({ source: { case: 'content', value: await png(5) } }), tenant);
  await assert.rejects(t.ingest.sources.submit(request({ source: { case: 'content', value: await png(6) } }), tenant), (err) => err instanceof CallerError && err.code === ErrorCode.QUOTA_EXCEEDED);
  const streamed = await t.ingest.sources.submit(request({ source: { case: 'content', value: await png(7) } }), tenant, undefined, `stream:${tenant.tenantId}`);
  assert.equal(streamed.deduplicated, false);
});

test('an input over the size limit that the caller hashed gets its REJECTED (TOO_LARGE) analysis, deduplicated like any other', async () => {
  const tenant = await tenantOf();
  const sha = 'ef'.repeat(32);
  const size = t.cfg.TAMPERTRACE_MAX_INPUT_BYTES + 1;
  const r = await t.ingest.sources.submitTooLarge(sha, size, { sourceName: 'big.raw', reanalyze: false }, tenant);
  assert.equal(r.rejected?.code, ErrorCode.TOO_LARGE);
  assert.equal(r.contentSha256, sha);
  await t.bus.idle();
  const a = (await row(tenant, r.analysisId))!;
  assert.deepEqual([a.status, a.error?.code, a.sourceName], [AnalysisStatus.REJECTED, ErrorCode.TOO_LARGE, 'big.raw']);
  const again = await t.ingest.sources.submitTooLarge(sha, size, { sourceName: 'big.raw', reanalyze: false }, tenant);
  assert.deepEqual([again.analysisId, again.deduplicated], [r.analysisId, true]);
});
