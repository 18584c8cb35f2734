// Deduplication and the in-flight cap under concurrent submissions on a REAL PostgreSQL, with two
// ingest replicas (each its own connection pool and gRPC server) sharing the database, as in
// the distributed mode (admission.testing.ts). Skipped without TAMPERTRACE_DATABASE_URL; its own
// schema, dropped at the end.
//   eval "$(deploy/local/infra.sh env)"; node --import tsx --test services/ingest/src/admission.pg.integration.test.ts
import { after, before, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import type { SqlClient } from '@tampertrace/shared';
import { openPostgres } from '@tampertrace/shared/pg';
import { identicalSubmissionsMakeOneAnalysis, inFlightCapHolds, openReplica, type Replica } from './admission.testing.ts';

const URL_ = process.env.TAMPERTRACE_DATABASE_URL;
const SKIP = URL_ ? false : 'TAMPERTRACE_DATABASE_URL is not set: run `make infra-up` and `eval "$(deploy/local/infra.sh env)"` first';
const SCHEMA = `it_admission_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

const pools: SqlClient[] = [];
const replicas: Replica[] = [];

before(async () => {
  if (SKIP) return;
  const admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`CREATE SCHEMA ${SCHEMA}`);
  await admin.close();
  for (let i = 0; i < 2; i++) {
    const pool = await openPostgres(URL_!, { max: 5, pool: { options: `-c search_path=${SCHEMA}` } });
    pools.push(pool);
    replicas.push(await openReplica(pool, 'admission-test-pepper'));
  }
});

after(async () => {
  for (const r of replicas) await r.close();
  for (const p of pools) await p.close();
  if (SKIP) return;
  const admin = await openPostgres(URL_!, { max: 1 });
  await admin.exec(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await admin.close();
});

test('20 concurrent identical new submissions over two ingest replicas make one analysis (PostgreSQL)', { skip: SKIP }, () => identicalSubmissionsMakeOneAnalysis(replicas, pools[0]));

test('50 concurrent different submissions over two ingest replicas with max-in-flight 3: never more than 3 in flight (PostgreSQL)', { skip: SKIP }, () => inFlightCapHolds(replicas, pools[0]));
