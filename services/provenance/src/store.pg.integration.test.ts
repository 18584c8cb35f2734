// The hash store on the real PostgreSQL (the distributed mode's database): the same links and
// tenant isolation as on PGlite (the plan at scale, through the four chunk indexes, is in
// bench/provenance.ts's output). Skipped without TAMPERTRACE_DATABASE_URL; runs in its own
// schema, dropped at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { openPostgres } from '@tampertrace/shared/pg';
import type { SqlClient } from '@tampertrace/shared';
import { AnalysisStatus, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { PHOTOS_DIR, harness, type Harness } from './provenance.testing.ts';

const URL_ = process.env.TAMPERTRACE_DATABASE_URL;
const SKIP = URL_ ? false : 'TAMPERTRACE_DATABASE_URL is not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"` first';
const schema = `it_prov_${Date.now()}_${process.pid}`;
let admin: SqlClient;
let h: Harness;

before(async () => {
  if (SKIP) return;
  admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`CREATE SCHEMA ${schema}`);
  h = await harness(await openPostgres(URL_!, { max: 4, pool: { options: `-c search_path=${schema}` } }));
});

after(async () => {
  if (SKIP) return;
  await h?.close();
  await admin.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.close();
});

test('PostgreSQL: a re-encoded, mirrored re-post links with its verdict; another tenant sees nothing', { skip: SKIP }, async () => {
  const bytes = await readFile(path.join(PHOTOS_DIR, 'picosdeeuropa.jpg'));
  const first = await h.check('pg-a', bytes, 'picos.jpg');
  await h.hashes.recordFinal('pg-a', first.analysisId, AnalysisStatus.COMPLETED, Verdict.UNCERTAIN, 0.5);
  const repost = await sharp(bytes).flop().resize(300).webp({ quality: 60 }).toBuffer();
  const again = await h.check('pg-a', repost);
  assert.deepEqual(
    again.provenance.related.map((r) => [r.analysisId, r.mirrored, r.verdict, r.sourceName]),
    [[first.analysisId, true, Verdict.UNCERTAIN, 'picos.jpg']],
  );
  assert.deepEqual((await h.check('pg-b', repost)).provenance.related, []);
});
