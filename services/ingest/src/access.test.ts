// Access on PGlite: API key to tenant, the per-tenant token bucket, and the in-flight look that
// refuses early (the atomic cap itself is admission.test.ts's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { CallerError, uuidv7 } from '@tampertrace/shared';
import { AnalysisSchema } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysesStore } from './analyses.ts';
import { openIngestUnderTest, type IngestUnderTest } from './service.testing.ts';

let t: IngestUnderTest;

before(async () => {
  t = await openIngestUnderTest();
});

after(() => t?.close());

/** The CallerError code (by name) a call is refused with. */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; retryAfterMs?: number }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CallerError, `a CallerError, not ${String(err)}`);
    return { code: ErrorCode[err.code], message: err.message, retryAfterMs: err.retryAfterMs };
  }
  assert.fail('the call was not refused');
}

/** A PENDING analysis of the tenant, as Submit records it. */
async function pending(tenantId: string): Promise<string> {
  const analysisId = uuidv7();
  await new AnalysesStore(t.sql).pending(create(AnalysisSchema, { analysisId, tenantId, contentSha256: 'cd'.repeat(32), status: AnalysisStatus.PENDING, submittedAt: timestampNow() }));
  return analysisId;
}

test('an API key names its tenant; a missing or wrong key is UNAUTHENTICATED with a message that says which', async () => {
  const { tenantId, apiKey } = await t.tenant();
  assert.equal((await t.ingest.access.tenantOf(apiKey)).tenantId, tenantId);
  const missing = await refusal(t.ingest.access.tenantOf(undefined));
  assert.equal(missing.code, 'UNAUTHENTICATED');
  assert.match(missing.message, /an API key is required/);
  const wrong = await refusal(t.ingest.access.tenantOf(`${apiKey.slice(0, -2)}xx`));
  assert.deepEqual(wrong, { code: 'UNAUTHENTICATED', message: 'the API key is not valid', retryAfterMs: undefined });
});

test('the token bucket lets a burst through, then refuses with a retry hint; other tenants keep theirs', async () => {
  const a = await t.ingest.access.tenantOf((await t.tenant({ ratePerS: 0.5, burst: 3 })).apiKey);
  const b = await t.ingest.access.tenantOf((await t.tenant({ ratePerS: 0.5, burst: 3 })).apiKey);
  await t.ingest.access.admit(a, 2);
  await t.ingest.access.admit(a);
  const r = await refusal(t.ingest.access.admit(a));
  assert.equal(r.code, 'QUOTA_EXCEEDED');
  assert.equal(r.message, 'rate limit of 0.5/s reached');
  // One token at 0.5/s is two seconds away, less what elapsed since the bucket emptied.
  assert.ok(r.retryAfterMs! > 0 && r.retryAfterMs! <= 2000, `retry after ${r.retryAfterMs} ms`);
  await t.ingest.access.admit(b, 3);
});

test('a tenant at its in-flight cap is refused before taking a token, and admitted again when one ends', async () => {
  const tenant = await t.ingest.access.tenantOf((await t.tenant({ ratePerS: 0.001, burst: 1, maxInFlight: 2 })).apiKey);
  const ids = [await pending(tenant.tenantId), await pending(tenant.tenantId)];
  const r = await refusal(t.ingest.access.admit(tenant));
  assert.deepEqual([r.code, r.message, r.retryAfterMs], ['QUOTA_EXCEEDED', '2 analyses in flight; the maximum is 2', 1000]);
  await new AnalysesStore(t.sql).forget(ids[0]);
  // The refused call took no token: the tenant's single one is still there.
  await t.ingest.access.admit(tenant);
  assert.equal((await refusal(t.ingest.access.admit(tenant))).message, 'rate limit of 0.001/s reached');
});

test('a batch of n is refused whole when n would pass the cap', async () => {
  const tenant = await t.ingest.access.tenantOf((await t.tenant({ maxInFlight: 3 })).apiKey);
  await pending(tenant.tenantId);
  await pending(tenant.tenantId);
  assert.equal((await refusal(t.ingest.access.admit(tenant, 2))).message, '2 analyses in flight; the maximum is 3');
  await t.ingest.access.admit(tenant, 1);
});
