// The provenance stage, measured:
// - links: how far (Hamming bits) each of 15 re-encodings of every photo in testdata/photos moves
//   from the photo's stored hashes, and how many link at MAX_DISTANCE; the closest pair of two
//   different photos (the margin the threshold keeps);
// - cost per image: what the stage adds to an analysis (hashing, header facts, lookup and insert,
//   on PGlite and on the local PostgreSQL), and the decode it shares with face detection in
//   embedded mode (paid again in distributed mode);
// - lookup at scale: N analyses (2 N stored hashes) of one tenant in the local PostgreSQL, p50/p99
//   of HashStore.nearest for re-posts of stored pictures and for new ones. The hashes are of real
//   image content, not uniform random bits: crops of random position, size (8-60% of the side)
//   and aspect of the 16 photos, some mirrored, hashed exactly as the stage hashes (whole and
//   centre) from box-averaged thumbnails.
// Everything lives in this run's own schema, dropped at the end.
//
// Usage: set -a; eval "$(deploy/local/infra.sh env)"; set +a; node --import tsx bench/provenance.ts [N]
// (default N = 500 000 analyses = 1 000 000 stored hashes). BENCH_OUT_PROVENANCE: where the JSON
// goes; without it, bench/results/provenance.json for N >= 500 000 only.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, decodeRgb, uuidv7, type SqlClient } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { openPglite } from '@tampertrace/shared/pglite';
import { hamming, hashCoefficients, lowFrequencies, perceptualHash } from '../services/provenance/src/phash.ts';
import { headerFacts } from '../services/provenance/src/header.ts';
import { CENTRE_INSET } from '../services/provenance/src/stage.ts';
import { HashKind, HashStore, MAX_DISTANCE, chunksOf } from '../services/provenance/src/store.ts';
import { LIMITS, PHOTOS_DIR, harness } from '../services/provenance/src/provenance.testing.ts';
import { reencodings } from '../services/provenance/src/variants.testing.ts';
import { mean, pcts } from './stats.ts';

const N = Number(process.argv[2] ?? 500_000);
const LOOKUPS = 1000;
const DB_URL = process.env.TAMPERTRACE_DATABASE_URL;
if (!DB_URL) throw new Error('TAMPERTRACE_DATABASE_URL is not set: eval "$(deploy/local/infra.sh env)"');
const OUT = process.env.BENCH_OUT_PROVENANCE ? path.resolve(process.env.BENCH_OUT_PROVENANCE) : N >= 500_000 ? path.join(REPO_ROOT, 'bench', 'results', 'provenance.json') : undefined;
const note = (s: string) => console.log(`[provenance] ${s}`);
const ms = (t0: number) => performance.now() - t0;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

const names = (await readdir(PHOTOS_DIR)).filter((n) => n.endsWith('.jpg')).sort();
const photos = await Promise.all(names.map((n) => readFile(path.join(PHOTOS_DIR, n))));

// --- links -------------------------------------------------------------------------------
note(`links: 15 re-encodings of each of ${names.length} photos`);
const hashesOf = async (bytes: Uint8Array) => {
  const img = await decodeRgb(bytes, LIMITS);
  const [w, c] = await Promise.all([perceptualHash(img), perceptualHash(img, CENTRE_INSET)]);
  return { stored: [w.hash, c.hash], query: [w.hash, c.hash, w.mirrored, c.mirrored] };
};
const distance = (q: bigint[], s: bigint[]) => Math.min(...q.flatMap((a) => s.map((b) => hamming(a, b))));
const byVariant = new Map<string, number[]>();
const photoHashes = [];
for (const bytes of photos) {
  const h = await hashesOf(bytes);
  photoHashes.push(h);
  for (const v of await reencodings(bytes)) {
    const d = distance((await hashesOf(v.bytes)).query, h.stored);
    byVariant.set(v.name, [...(byVariant.get(v.name) ?? []), d]);
  }
}
const links = [...byVariant].map(([variant, ds]) => ({ variant, maxBits: Math.max(...ds), linked: ds.filter((d) => d <= MAX_DISTANCE).length, of: ds.length }));
const distinct: number[] = [];
for (let i = 0; i < photoHashes.length; i++) for (let j = 0; j < photoHashes.length; j++) if (i !== j) distinct.push(distance(photoHashes[i].query, photoHashes[j].stored));
const closestDistinct = Math.min(...distinct);

// --- cost per image ----------------------------------------------------------------------
note('cost per image: decode, hashing, header facts, and the whole stage on PGlite and PostgreSQL');
const decodeMs: number[] = [];
const hashMs: number[] = [];
const headerMs: number[] = [];
for (let rep = 0; rep < 3; rep++) {
  for (const bytes of photos) {
    let t = performance.now();
    const img = await decodeRgb(bytes, LIMITS);
    decodeMs.push(ms(t));
    t = performance.now();
    await Promise.all([perceptualHash(img), perceptualHash(img, CENTRE_INSET)]);
    hashMs.push(ms(t));
    t = performance.now();
    headerFacts(bytes);
    headerMs.push(ms(t));
  }
}
const run = `bench_prov_${Date.now()}`;
const admin = await openPostgres(DB_URL);
await admin.exec(`CREATE SCHEMA ${run}`);
const stageMs = async (sql: SqlClient) => {
  const h = await harness(sql);
  const out: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    for (const bytes of photos) {
      const t = performance.now();
      await h.check(`t-${rep}`, bytes);
      out.push(ms(t));
    }
  }
  return out;
};
const pglite = await openPglite(undefined);
const stagePglite = await stageMs(pglite);
await pglite.close();
const db = await openPostgres(DB_URL, { max: 4, pool: { options: `-c search_path=${run}` } });
const stagePg = await stageMs(db);
await db.exec('DROP TABLE image_hashes, hashed_analyses');

// --- lookup at scale ---------------------------------------------------------------------
/** A grey float copy of each photo and its integral image, for box-averaged thumbnails of any crop. */
const greys = await Promise.all(
  photos.map(async (b) => {
    const { data, info } = await sharp(b).greyscale().raw().toBuffer({ resolveWithObject: true });
    const w = info.width;
    const h = info.height;
    const sat = new Float64Array((w + 1) * (h + 1));
    for (let y = 0; y < h; y++) {
      let row = 0;
      for (let x = 0; x < w; x++) {
        row += data[y * w + x];
        sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
      }
    }
    return { w, h, sat };
  }),
);
let seed = 0x2545f491;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
interface Crop {
  photo: number;
  x: number;
  y: number;
  w: number;
  h: number;
  mirrored: boolean;
}
function thumb(c: Crop): Float64Array {
  const g = greys[c.photo];
  const out = new Float64Array(32 * 32);
  const W = g.w + 1;
  for (let j = 0; j < 32; j++) {
    const y0 = Math.round(c.y + (c.h * j) / 32);
    const y1 = Math.max(y0 + 1, Math.round(c.y + (c.h * (j + 1)) / 32));
    for (let i = 0; i < 32; i++) {
      const x0 = Math.round(c.x + (c.w * i) / 32);
      const x1 = Math.max(x0 + 1, Math.round(c.x + (c.w * (i + 1)) / 32));
      const s = g.sat[y1 * W + x1] - g.sat[y0 * W + x1] - g.sat[y1 * W + x0] + g.sat[y0 * W + x0];
      out[j * 32 + (c.mirrored ? 31 - i : i)] = s / ((x1 - x0) * (y1 - y0));
    }
  }
  return out;
}
const inset = (c: Crop): Crop => ({ ...c, x: c.x + Math.floor(c.w * CENTRE_INSET), y: c.y + Math.floor(c.h * CENTRE_INSET), w: c.w - 2 * Math.floor(c.w * CENTRE_INSET), h: c.h - 2 * Math.floor(c.h * CENTRE_INSET) });
const cropHashes = (c: Crop) => {
  const whole = hashCoefficients(lowFrequencies(thumb(c)));
  const centre = hashCoefficients(lowFrequencies(thumb(inset(c))));
  return { whole, centre };
};
function randomCrop(): Crop {
  const photo = Math.floor(rnd() * greys.length);
  const g = greys[photo];
  const side = Math.min(g.w, g.h) * (0.08 + 0.52 * rnd());
  const aspect = 0.6 + rnd();
  const w = Math.max(32, Math.min(g.w, Math.round(side * Math.sqrt(aspect))));
  const h = Math.max(32, Math.min(g.h, Math.round(side / Math.sqrt(aspect))));
  return { photo, x: Math.floor(rnd() * (g.w - w + 1)), y: Math.floor(rnd() * (g.h - h + 1)), w, h, mirrored: rnd() < 0.2 };
}

note(`loading ${N} analyses (${2 * N} hashes) of one tenant into schema ${run}`);
const tenant = 'bench-tenant';
const t0 = performance.now();
// Indexes are built after the load, as a bulk import would; the lookups use them as the stage does.
await db.exec(`CREATE TABLE image_hashes (tenant_id text NOT NULL, analysis_id text NOT NULL, kind smallint NOT NULL, hash bigint NOT NULL, c0 integer NOT NULL, c1 integer NOT NULL, c2 integer NOT NULL, c3 integer NOT NULL, PRIMARY KEY (tenant_id, analysis_id, kind))`);
const stored: Crop[] = [];
const base = Date.now() - N;
let hashSecs = 0;
for (let start = 0; start < N; start += 10_000) {
  const ids: string[] = [];
  const kinds: number[] = [];
  const hs: string[] = [];
  const cs: number[][] = [[], [], [], []];
  const th = performance.now();
  for (let i = start; i < Math.min(N, start + 10_000); i++) {
    const c = randomCrop();
    if (stored.length < 5000) stored.push(c);
    const { whole, centre } = cropHashes(c);
    const id = uuidv7(base + i);
    for (const [kind, h] of [
      [HashKind.WHOLE, whole.hash],
      [HashKind.CENTRE, centre.hash],
    ] as const) {
      ids.push(id);
      kinds.push(kind);
      hs.push(BigInt.asIntN(64, h).toString());
      chunksOf(h).forEach((v, k) => cs[k].push(v));
    }
  }
  hashSecs += ms(th) / 1000;
  await db.query(
    `INSERT INTO image_hashes SELECT $1, * FROM unnest($2::text[], $3::smallint[], $4::bigint[], $5::int[], $6::int[], $7::int[], $8::int[])`,
    [tenant, ids, kinds, hs, ...cs],
  );
  if (start % 100_000 === 0) note(`  ${start + ids.length / 2} loaded (${round(ms(t0) / 1000, 1)} s)`);
}
await new HashStore(db).migrate(); // the indexes and hashed_analyses, exactly as the service makes them
await db.exec(`INSERT INTO hashed_analyses (tenant_id, analysis_id, status, verdict) SELECT DISTINCT tenant_id, analysis_id, 2, 3 FROM image_hashes`);
await db.exec('VACUUM ANALYZE image_hashes');
const loadS = ms(t0) / 1000;
note(`loaded and indexed in ${round(loadS, 1)} s (hashing ${round(hashSecs, 1)} s of it)`);

const store = new HashStore(db);
/** A re-post of a stored picture: the same crop shifted by 1% of its width, mirrored in 3 of 10. */
const jitter = (c: Crop): Crop => {
  const g = greys[c.photo];
  const x = Math.min(g.w - c.w, Math.max(0, c.x + Math.round(c.w * 0.01) * (rnd() < 0.5 ? -1 : 1)));
  return { ...c, x, mirrored: rnd() < 0.3 ? !c.mirrored : c.mirrored };
};
const lookupMs = { repost: [] as number[], fresh: [] as number[] };
const candidates = { repost: [] as number[], fresh: [] as number[] };
let repostsLinked = 0;
for (let i = 0; i < LOOKUPS; i++) {
  const kind = i % 2 === 0 ? 'repost' : 'fresh';
  const c = kind === 'repost' ? jitter(stored[Math.floor(rnd() * stored.length)]) : randomCrop();
  const { whole, centre } = cropHashes(c);
  const t = performance.now();
  const found = await store.nearest(tenant, uuidv7(), [whole.hash, centre.hash], [whole.mirrored, centre.mirrored]);
  lookupMs[kind].push(ms(t));
  candidates[kind].push(found.length);
  if (kind === 'repost' && found.length > 0) repostsLinked++;
}
const all = [...lookupMs.repost, ...lookupMs.fresh];
// The plan of one branch of the lookup (each chunk's branch has the same shape).
const plan = await db.query<{ 'QUERY PLAN': string }>(`EXPLAIN SELECT analysis_id, hash FROM image_hashes WHERE tenant_id = $1 AND c0 = ANY($2::int[]) AND analysis_id < $3`, [
  tenant,
  [1, 2],
  uuidv7(),
]);
await db.close();
await admin.exec(`DROP SCHEMA IF EXISTS ${run} CASCADE`);
await admin.close();

const result = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
  maxDistanceBits: MAX_DISTANCE,
  links,
  closestDistinctPhotosBits: closestDistinct,
  costPerImageMs: {
    photos: `${names.length} photos of testdata/photos (640 px), 3 rounds`,
    decode: { mean: round(mean(decodeMs)), ...pcts(decodeMs) },
    twoHashes: { mean: round(mean(hashMs)), ...pcts(hashMs) },
    headerFacts: { mean: round(mean(headerMs), 3) },
    stagePglite: { mean: round(mean(stagePglite)), ...pcts(stagePglite) },
    stagePostgres: { mean: round(mean(stagePg)), ...pcts(stagePg) },
  },
  scale: {
    analyses: N,
    storedHashes: 2 * N,
    loadAndIndexS: round(loadS, 1),
    lookups: LOOKUPS,
    lookupMs: { all: pcts(all), repost: pcts(lookupMs.repost), fresh: pcts(lookupMs.fresh) },
    repostsLinked: `${repostsLinked} of ${lookupMs.repost.length}`,
    freshWithALink: candidates.fresh.filter((n) => n > 0).length,
    plan: plan.rows.map((r) => r['QUERY PLAN']),
  },
};
console.log(JSON.stringify(result, null, 2));
if (OUT) {
  await mkdir(path.dirname(OUT), { recursive: true });
  await writeFile(OUT, JSON.stringify(result, null, 2) + '\n');
}
console.log(OUT ? `written to ${path.relative(process.cwd(), OUT) || OUT}` : 'no JSON written (N < 500 000 and BENCH_OUT_PROVENANCE unset)');
