// Submission on PGlite, the in-memory bus and a local store: the PENDING row is recorded before
// the event goes out, a submission abandoned before publishing leaves no trace, files over the
// limit are hashed as a stream and refused, deduplication returns the prior's outcome, and keys
// outside the tenant's prefix are never looked at.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Bucket, CallerError, Topic, sha256Hex } from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { openIngestUnderTest, png, type IngestUnderTest } from './service.testing.ts';

let t: IngestUnderTest;
/** For each ImageIngested event: the analysis's status in the table when the event was consumed. */
const published = new Map<string, AnalysisStatus | undefined>();

before(async () => {
  t = await openIngestUnderTest({ TAMPERTRACE_MAX_INPUT_BYTES: '20000' });
  await t.bus.subscribe({
    group: 'submission-test',
    topics: [Topic.imageIngested],
    handler: async (msg) => {
      const rows = await t.sql.query<{ status: number }>('SELECT status FROM analyses WHERE analysis_id = $1', [msg.key]);
      published.set(msg.key, rows.rows[0]?.status);
    },
  });
});

after(() => t?.close());

const count = async (tenantId: string) => Number((await t.sql.query<{ n: number }>('SELECT count(*)::int AS n FROM analyses WHERE tenant_id = $1', [tenantId])).rows[0].n);

test('the PENDING row is there before the ImageIngested event goes out', async () => {
  const { tenantId } = await t.tenant();
  const r = await t.ingest.submission.submit(await png(1), { tenantId, sourceName: 'one.png' });
  await t.bus.idle();
  assert.equal(published.get(r.analysisId), AnalysisStatus.PENDING);
});

test('a submission whose caller gave up before publishing leaves no row and no event', async () => {
  const { tenantId } = await t.tenant();
  const gaveUp = new AbortController();
  gaveUp.abort(new Error('deadline passed'));
  await t.bus.idle();
  const before = published.size;
  await assert.rejects(t.ingest.submission.submit(await png(2), { tenantId, signal: gaveUp.signal }), /deadline passed/);
  await t.bus.idle();
  assert.equal(await count(tenantId), 0);
  assert.equal(published.size, before);
});

test('a submission over the in-flight cap is refused with QUOTA_EXCEEDED and publishes nothing', async () => {
  const { tenantId } = await t.tenant();
  await t.ingest.submission.submit(await png(3), { tenantId, maxInFlight: 1 });
  await t.bus.idle();
  const before = published.size;
  await assert.rejects(t.ingest.submission.submit(await png(4), { tenantId, maxInFlight: 1 }), (err) => err instanceof CallerError && err.code === ErrorCode.QUOTA_EXCEEDED && err.message === '1 analyses in flight; the maximum is 1');
  await t.bus.idle();
  assert.equal(published.size, before);
  assert.equal(await count(tenantId), 1);
});

test('a file within the limit is submitted as its bytes; a bigger one is REJECTED (TOO_LARGE) under the hash of its content', async () => {
  const { tenantId } = await t.tenant();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tt-submission-'));
  const small = await png(5);
  await writeFile(path.join(dir, 'small.png'), small);
  const r = await t.ingest.submission.submitFile(path.join(dir, 'small.png'), { tenantId });
  assert.deepEqual([r.contentSha256, r.rejected], [sha256Hex(small), undefined]);
  const big = Buffer.alloc(t.cfg.TAMPERTRACE_MAX_INPUT_BYTES * 3 + 17, 0xab);
  await writeFile(path.join(dir, 'big.raw'), big);
  const rejected = await t.ingest.submission.submitFile(path.join(dir, 'big.raw'), { tenantId, dedupe: true });
  assert.equal(rejected.contentSha256, createHash('sha256').update(big).digest('hex'));
  assert.equal(rejected.rejected?.code, ErrorCode.TOO_LARGE);
  await t.bus.idle();
  // Deduplicated like any other input: the same file again answers with the same refusal.
  const again = await t.ingest.submission.submitFile(path.join(dir, 'big.raw'), { tenantId, dedupe: true });
  assert.deepEqual([again.analysisId, again.deduplicated, again.rejected?.code], [rejected.analysisId, true, ErrorCode.TOO_LARGE]);
});

test('a deduplicated refused image answers with its prior refusal', async () => {
  const { tenantId } = await t.tenant();
  const garbage = Buffer.from('not an image, twice');
  const first = await t.ingest.submission.submit(garbage, { tenantId, dedupe: true });
  assert.equal(first.rejected?.code, ErrorCode.UNSUPPORTED_FORMAT);
  await t.bus.idle();
  const again = await t.ingest.submission.submit(garbage, { tenantId, dedupe: true });
  assert.deepEqual([again.analysisId, again.deduplicated, again.rejected?.code], [first.analysisId, true, ErrorCode.UNSUPPORTED_FORMAT]);
});

test('object keys outside the tenant\'s prefix, traversals and unknown buckets are NOT_FOUND without a look', async () => {
  const { tenantId } = await t.tenant();
  const other = await t.tenant();
  const ref = await t.store.put(Bucket.originals, `${other.tenantId}/x.png`, await png(6), 'image/png');
  for (const r of [ref, { bucket: Bucket.originals, key: `${tenantId}/../${other.tenantId}/x.png` }, { bucket: 'elsewhere', key: `${tenantId}/x.png` }]) {
    await assert.rejects(t.ingest.submission.submitObject(r, { tenantId }), (err) => err instanceof CallerError && err.code === ErrorCode.NOT_FOUND, r.key);
  }
  assert.equal(await count(tenantId), 0);
});
