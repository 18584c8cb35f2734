// S3ObjectStore against a REAL S3 server (S3Proxy from deploy/local, signature checks on).
//   make infra-up   (or: deploy/local/infra.sh up s3)
//   eval "$(deploy/local/infra.sh env)"
//   node --import tsx --test shared/src/s3-object-store.integration.test.ts
// Without TAMPERTRACE_S3_ENDPOINT every test is skipped.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { classify } from './errors.ts';
import { sha256Hex } from './ids.ts';
import { Bucket, ObjectKey, ObjectNotFoundError } from './object-store.ts';
import { S3ObjectStore } from './s3-object-store.ts';

const ENDPOINT = process.env.TAMPERTRACE_S3_ENDPOINT;
const SKIP = ENDPOINT ? false : 'TAMPERTRACE_S3_ENDPOINT is not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"` first';

// Unique per run, so runs never see each other's objects; buckets are removed at the end.
const RUN = `it-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}-`;
const BUCKETS = [Bucket.originals, Bucket.artifacts];
let store: S3ObjectStore;

before(async () => {
  if (SKIP) return;
  store = S3ObjectStore.fromEnv({ ...process.env, TAMPERTRACE_S3_BUCKET_PREFIX: RUN });
  await store.ensureBuckets(BUCKETS);
});

after(async () => {
  if (SKIP || !store) return;
  for (const b of BUCKETS) {
    const name = store.physicalBucket(b);
    const keys: string[] = [];
    for await (const item of store.client.listObjectsV2(name, '', true)) if (item.name) keys.push(item.name);
    if (keys.length) await store.client.removeObjects(name, keys);
    await store.client.removeBucket(name);
  }
});

test('ensureBuckets is idempotent and creates prefixed buckets', { skip: SKIP }, async () => {
  await store.ensureBuckets(BUCKETS); // second call: buckets exist already
  await store.ensureBuckets(BUCKETS);
  for (const b of BUCKETS) assert.equal(await store.client.bucketExists(store.physicalBucket(b)), true);
});

test('put/get round trip of binary data; ObjectRef carries sha256, size and content type', { skip: SKIP }, async () => {
  const data = new Uint8Array(randomBytes(256 * 1024 + 7)); // every byte value, odd length
  const sha = sha256Hex(data);
  const key = ObjectKey.original('tenant-a', sha);
  const ref = await store.put(Bucket.originals, key, data, 'image/jpeg');
  assert.equal(ref.bucket, Bucket.originals, 'ObjectRef keeps the logical bucket name');
  assert.equal(ref.key, key);
  assert.equal(ref.sha256, sha);
  assert.equal(ref.sizeBytes, BigInt(data.byteLength));
  assert.equal(ref.contentType, 'image/jpeg');

  const back = await store.get(Bucket.originals, key);
  assert.equal(back.byteLength, data.byteLength);
  assert.equal(sha256Hex(back), sha);
  assert.ok(back.equals(Buffer.from(data)));

  const stat = await store.client.statObject(store.physicalBucket(Bucket.originals), key);
  assert.equal(stat.metaData['content-type'], 'image/jpeg');
  assert.equal(stat.size, data.byteLength);

  // a subarray view (non-zero byteOffset) is stored as exactly its own bytes
  const view = data.subarray(100, 1100);
  const ref2 = await store.put(Bucket.artifacts, 'tenant-a/an1/mask.png', view, 'image/png');
  assert.equal(ref2.sha256, sha256Hex(view));
  assert.equal(sha256Hex(await store.get(Bucket.artifacts, 'tenant-a/an1/mask.png')), sha256Hex(view));

  // writing the same key twice is harmless (deterministic keys)
  await store.put(Bucket.originals, key, data, 'image/jpeg');
  assert.equal(sha256Hex(await store.get(Bucket.originals, key)), sha);
});

test('an empty object round-trips', { skip: SKIP }, async () => {
  const ref = await store.put(Bucket.artifacts, 'tenant-a/empty/mask.png', new Uint8Array(0), 'image/png');
  assert.equal(ref.sizeBytes, 0n);
  assert.equal((await store.get(Bucket.artifacts, 'tenant-a/empty/mask.png')).byteLength, 0);
});

test('exists is true for a stored object and false otherwise', { skip: SKIP }, async () => {
  await store.put(Bucket.originals, 'tenant-b/x/original', new Uint8Array([1, 2, 3]), 'application/octet-stream');
  assert.equal(await store.exists(Bucket.originals, 'tenant-b/x/original'), true);
  assert.equal(await store.exists(Bucket.originals, 'tenant-b/missing/original'), false);
  assert.equal(await store.exists('no-such-bucket', 'tenant-b/x/original'), false);
});

test('a missing key is ObjectNotFoundError', { skip: SKIP }, async () => {
  await assert.rejects(store.get(Bucket.originals, 'tenant-a/missing/original'), ObjectNotFoundError);
  await assert.rejects(store.get('no-such-bucket', 'tenant-a/missing/original'), ObjectNotFoundError);
});

test('unsafe keys are refused before any request', { skip: SKIP }, async () => {
  await assert.rejects(store.put(Bucket.originals, '../escape', new Uint8Array(1), 'a/b'), /invalid object key/);
  await assert.rejects(store.get(Bucket.originals, 'a//b'), /invalid object key/);
  await assert.rejects(store.presignedGetUrl(Bucket.originals, 'a/../b', 60), /invalid object key/);
});

test('a presigned URL serves the bytes to plain fetch; a tampered signature is refused', { skip: SKIP }, async () => {
  const data = new Uint8Array(randomBytes(4096));
  await store.put(Bucket.artifacts, 'tenant-a/an2/overlay.png', data, 'image/png');
  const url = await store.presignedGetUrl(Bucket.artifacts, 'tenant-a/an2/overlay.png', 120);
  assert.match(url, /X-Amz-Signature=[0-9a-f]{64}/);

  const ok = await fetch(url);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('content-type'), 'image/png');
  assert.equal(sha256Hex(new Uint8Array(await ok.arrayBuffer())), sha256Hex(data));

  const u = new URL(url);
  const sig = u.searchParams.get('X-Amz-Signature')!;
  u.searchParams.set('X-Amz-Signature', (sig[0] === '0' ? '1' : '0') + sig.slice(1));
  const tampered = await fetch(u);
  assert.equal(tampered.status, 403);
  await tampered.arrayBuffer();

  // the signature covers the key: the same query on another object is refused too
  const other = new URL(url);
  other.pathname = other.pathname.replace('overlay.png', 'heatmap.png');
  const moved = await fetch(other);
  assert.equal(moved.status, 403);
  await moved.arrayBuffer();

  await assert.rejects(store.presignedGetUrl(Bucket.artifacts, 'tenant-a/an2/overlay.png', 0), RangeError);
});

test('a wrong secret key is refused by the server', { skip: SKIP }, async () => {
  const bad = new S3ObjectStore({ ...store.options, secretKey: `${store.options.secretKey}-wrong` });
  await assert.rejects(bad.get(Bucket.originals, 'tenant-b/x/original'), (err: Error & { code?: unknown }) => {
    assert.ok(!(err instanceof ObjectNotFoundError), 'an auth failure must not read as "not found"');
    assert.match(String(err.code), /SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId/);
    assert.equal(classify(err).errorClass, 'internal');
    return true;
  });
  await assert.rejects(bad.put(Bucket.originals, 'tenant-b/y/original', new Uint8Array([9]), 'a/b'), /Forbidden|SignatureDoesNotMatch|AccessDenied/);
  await assert.rejects(bad.exists(Bucket.originals, 'tenant-b/x/original'), /credentials|AccessDenied|Forbidden/);
  assert.equal(await store.exists(Bucket.originals, 'tenant-b/y/original'), false, 'the refused put stored nothing');
});

test('an endpoint on a closed port fails fast with a retriable error', { skip: SKIP }, async () => {
  const down = new S3ObjectStore({ ...store.options, endpoint: 'http://127.0.0.1:1' });
  const checks: Array<[string, () => Promise<unknown>]> = [
    ['get', () => down.get(Bucket.originals, 'tenant-a/x/original')],
    ['put', () => down.put(Bucket.originals, 'tenant-a/x/original', new Uint8Array([1]), 'a/b')],
    ['exists', () => down.exists(Bucket.originals, 'tenant-a/x/original')],
    ['ensureBuckets', () => down.ensureBuckets(BUCKETS)],
  ];
  for (const [op, call] of checks) {
    const t0 = performance.now();
    await assert.rejects(call(), (err: unknown) => {
      const c = classify(err);
      assert.equal(c.errorClass, 'retriable', `${op}: ${String(err)}`);
      assert.match(c.message, /ECONNREFUSED/, op);
      return true;
    });
    assert.ok(performance.now() - t0 < 5000, `${op} failed fast`);
  }
});
