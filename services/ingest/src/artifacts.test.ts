// Artifacts on PGlite and a local store: each kind of artefact of a tenant's analysis with its
// bytes, the overlay rendered on first request and stored, nothing for another tenant, and fresh
// presigned URLs where the store makes them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { clone, create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import sharp from 'sharp';
import { Bucket, FsObjectStore, ObjectKey, loadConfig, sha256Hex, uuidv7, type Config, type ObjectStore, type SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { ArtifactKind } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { AnalysesStore } from './analyses.ts';
import { Artifacts } from './artifacts.ts';

let home: string;
let cfg: Config;
let sql: SqlClient;
let store: FsObjectStore;
let analyses: AnalysesStore;
let artifacts: Artifacts;
let a: Analysis;
const TENANT = 'artefacts-test';

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'tt-artefacts-'));
  cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home });
  sql = await openPglite(undefined);
  store = new FsObjectStore(path.join(home, 'objects'));
  await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
  analyses = new AnalysesStore(sql);
  await analyses.migrate();
  artifacts = new Artifacts({ cfg, store }, analyses);
  // A finished analysis of a 48x32 image, with a mask over its left half and a heatmap.
  const image = await sharp({ create: { width: 48, height: 32, channels: 3, background: { r: 200, g: 180, b: 160 } } }).png().toBuffer();
  const maskPixels = Buffer.alloc(48 * 32);
  for (let y = 0; y < 32; y++) maskPixels.fill(255, y * 48, y * 48 + 24);
  const mask = await sharp(maskPixels, { raw: { width: 48, height: 32, channels: 1 } }).png().toBuffer();
  const analysisId = uuidv7();
  const sha = sha256Hex(image);
  a = create(AnalysisSchema, {
    analysisId,
    tenantId: TENANT,
    contentSha256: sha,
    status: AnalysisStatus.COMPLETED,
    submittedAt: timestampNow(),
    artifacts: {
      original: await store.put(Bucket.originals, ObjectKey.original(TENANT, sha), image, 'image/png'),
      mask: await store.put(Bucket.artifacts, ObjectKey.artifact(TENANT, analysisId, 'mask.png'), mask, 'image/png'),
      heatmap: await store.put(Bucket.artifacts, ObjectKey.artifact(TENANT, analysisId, 'heatmap.png'), mask, 'image/png'),
    },
  });
  await analyses.pending(create(AnalysisSchema, { ...a, status: AnalysisStatus.PENDING }));
  await analyses.final(a);
});

after(async () => {
  await sql?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

test('each stored artefact of the tenant\'s analysis comes with its ref and bytes; another tenant gets none', async () => {
  for (const [kind, ref] of [[ArtifactKind.ORIGINAL, a.artifacts!.original!], [ArtifactKind.MASK, a.artifacts!.mask!], [ArtifactKind.HEATMAP, a.artifacts!.heatmap!]] as const) {
    const got = (await artifacts.artifact(TENANT, a.analysisId, kind))!;
    assert.equal(got.ref.key, ref.key, ArtifactKind[kind]);
    assert.equal(sha256Hex(got.content), ref.sha256, ArtifactKind[kind]);
    assert.equal(await artifacts.artifact('someone-else', a.analysisId, kind), undefined);
  }
  assert.equal(await artifacts.artifact(TENANT, uuidv7(), ArtifactKind.ORIGINAL), undefined);
});

test('the overlay is rendered on first request, stored, and the same bytes are served after', async () => {
  const first = (await artifacts.artifact(TENANT, a.analysisId, ArtifactKind.OVERLAY))!;
  assert.equal(first.ref.bucket, Bucket.artifacts);
  const meta = await sharp(first.content).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 48, 32]);
  assert.equal(await store.exists(Bucket.artifacts, first.ref.key), true);
  const again = (await artifacts.artifact(TENANT, a.analysisId, ArtifactKind.OVERLAY))!;
  assert.equal(sha256Hex(again.content), sha256Hex(first.content));
});

test('withUrls presigns every artefact where the store can, and leaves analyses alone where it cannot', async () => {
  const plain = await artifacts.withUrls(clone(AnalysisSchema, a));
  assert.equal(plain.artifacts?.original?.url, '');
  const presigning: ObjectStore = Object.assign(Object.create(store) as FsObjectStore, { presignedGetUrl: async (bucket: string, key: string, ttl: number) => `https://objects.test/${bucket}/${key}?ttl=${ttl}` });
  const signed = await new Artifacts({ cfg, store: presigning }, analyses).withUrls(clone(AnalysisSchema, a));
  assert.equal(signed.artifacts?.mask?.url, `https://objects.test/${Bucket.artifacts}/${a.artifacts!.mask!.key}?ttl=${cfg.TAMPERTRACE_PRESIGN_TTL_S}`);
  assert.ok(signed.artifacts?.original?.url.startsWith('https://objects.test/'));
  assert.ok(signed.artifacts?.heatmap?.urlExpiresAt);
});
