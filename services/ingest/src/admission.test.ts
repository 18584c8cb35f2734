// Deduplication and the in-flight cap under concurrent submissions on PGlite, embedded mode's
// database: one ingest replica, its gRPC API, real submissions (admission.testing.ts).
import { after, before, test } from 'node:test';
import type { SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { identicalSubmissionsMakeOneAnalysis, inFlightCapHolds, openReplica, type Replica } from './admission.testing.ts';

let sql: SqlClient;
let replica: Replica;

before(async () => {
  sql = await openPglite(undefined);
  replica = await openReplica(sql, 'admission-test-pepper');
});

after(async () => {
  await replica?.close();
  await sql?.close();
});

test('20 concurrent identical new submissions make one analysis (PGlite)', () => identicalSubmissionsMakeOneAnalysis([replica], sql));

test('50 concurrent different submissions with max-in-flight 3: never more than 3 in flight (PGlite)', () => inFlightCapHolds([replica], sql));
