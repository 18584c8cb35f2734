// What the provenance stage promises, measured on real photos (testdata/photos, none of them the
// evaluation faces): re-encodings of a photo link to its earlier analysis, different photos never
// link, tenants never see each other's pictures, and a forgotten analysis links nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { PHOTOS_DIR, harness, type Harness } from './provenance.testing.ts';
import { MAX_DISTANCE, chunksOf } from './store.ts';
import { reencodings } from './variants.testing.ts';

let h: Harness;
before(async () => (h = await harness()));
after(() => h.close());

const photo = (name: string) => readFile(path.join(PHOTOS_DIR, name));

test('every re-encoding of a photo (resized 0.3-1.5x, JPEG q40-95, WebP, PNG, cropped 10%, framed, letterboxed, mirrored, grey) links to its first analysis', async () => {
  const original = await photo('bridge.jpg');
  const first = await h.check('t-reencode', original, 'bridge.jpg');
  assert.deepEqual(first.provenance.related, [], 'nothing before the first');
  await h.hashes.recordFinal('t-reencode', first.analysisId, AnalysisStatus.COMPLETED, Verdict.LIKELY_FORGED, 0.91);
  // An off-centre crop is left out: one cutting 6% off two sides moved up to 16 bits on these
  // photos and linked for 3 of the 16 (README, "Provenance").
  const variants = (await reencodings(original)).filter((v) => !v.name.startsWith('cropped 6% from the left'));
  assert.ok(variants.length >= 10);
  for (const v of variants) {
    const { provenance } = await h.check('t-reencode', v.bytes, v.name);
    const link = provenance.related.find((r) => r.analysisId === first.analysisId);
    assert.ok(link, `${v.name}: links to the original (hash ${provenance.perceptualHash})`);
    assert.ok(link.hammingDistance <= MAX_DISTANCE);
    assert.equal(link.mirrored, v.mirrored, `${v.name}: mirrored is said when it is`);
    assert.equal(link.verdict, Verdict.LIKELY_FORGED, 'with the verdict the earlier analysis got');
    assert.equal(link.status, AnalysisStatus.COMPLETED);
    assert.equal(link.sourceName, 'bridge.jpg');
  }
});

test('no two of the sixteen different photos link, mirrored or not', async () => {
  const names = (await readdir(PHOTOS_DIR)).filter((n) => n.endsWith('.jpg')).sort();
  assert.equal(names.length, 16);
  for (const n of names) {
    const { provenance } = await h.check('t-distinct', await photo(n), n);
    assert.deepEqual(
      provenance.related.map((r) => `${r.sourceName} at ${r.hammingDistance} bits`),
      [],
      `${n} links to nothing`,
    );
  }
});

test("a tenant never sees another tenant's analyses of the same bytes", async () => {
  const bytes = await photo('seeding.jpg');
  const a = await h.check('t-alpha', bytes);
  const b = await h.check('t-beta', bytes);
  assert.deepEqual(b.provenance.related, [], 't-beta: no link to t-alpha');
  const a2 = await h.check('t-alpha', bytes);
  assert.deepEqual(
    a2.provenance.related.map((r) => r.analysisId),
    [a.analysisId],
  );
});

test('a forgotten (pruned) analysis links nothing any more', async () => {
  const bytes = await photo('wine.jpg');
  const first = await h.check('t-prune', bytes);
  assert.equal(await h.hashes.forget('t-prune', [first.analysisId]), 1);
  assert.deepEqual((await h.check('t-prune', bytes)).provenance.related, []);
  const rows = await h.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM image_hashes WHERE tenant_id = 't-prune' AND analysis_id = $1", [first.analysisId]);
  assert.equal(rows.rows[0].n, 0);
});

test('the same analysis checked again (a redelivery) stores nothing twice and finds the same links', async () => {
  const bytes = await photo('umang.jpg');
  const first = await h.check('t-replay', bytes);
  const second = await h.check('t-replay', bytes);
  const replay = await h.check('t-replay', bytes, '', second.analysisId);
  assert.deepEqual(replay.provenance, second.provenance);
  assert.deepEqual(
    second.provenance.related.map((r) => r.analysisId),
    [first.analysisId],
  );
  const rows = await h.sql.query<{ n: number }>("SELECT count(*)::int AS n FROM image_hashes WHERE tenant_id = 't-replay'");
  assert.equal(rows.rows[0].n, 4, 'two hashes (whole, centre) per analysis');
});

test('any two hashes within 3 bits share one of the four chunks exactly (what makes the index find them)', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let n = 0; n < 2000; n++) {
    const h = BigInt.asUintN(64, BigInt(Math.floor(rnd() * 2 ** 32)) * 2n ** 32n + BigInt(Math.floor(rnd() * 2 ** 32)));
    let other = h;
    for (let k = 0; k < 3; k++) other ^= 1n << BigInt(Math.floor(rnd() * 64));
    const [a, b] = [chunksOf(h), chunksOf(other)];
    assert.ok(a.some((c, i) => c === b[i]), `${h.toString(16)} / ${other.toString(16)}`);
  }
  // Interleaved: bit 63 (the first) goes to chunk 0, bit 62 to chunk 1.
  assert.deepEqual(chunksOf(1n << 63n), [0x8000, 0, 0, 0]);
  assert.deepEqual(chunksOf(1n << 62n), [0, 0x8000, 0, 0]);
});
