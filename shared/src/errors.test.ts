import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { classify, InvalidInputError } from './errors.ts';
import { openPglite } from './pglite.ts';

test('classify: connection failures are retriable, values the database refuses are invalid input, the rest internal', async () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  assert.equal(classify(refused).errorClass, 'retriable');
  // A real data exception from the database the tests run on (SQLSTATE 22008, datetime field overflow).
  const db = await openPglite(undefined);
  const err = await db.query("SELECT '+275760-09-13T00:00:00Z'::timestamptz").then(
    () => assert.fail('the database took the date'),
    (e: unknown) => e,
  );
  await db.close();
  const c = classify(err);
  assert.ok(c instanceof InvalidInputError, String(err));
  assert.equal(c.code, ErrorCode.INVALID_MESSAGE);
  assert.match(c.message, /^the database refused a value: /);
  // Other SQLSTATE classes (a unique violation, say) are not the data's fault alone.
  assert.equal(classify(Object.assign(new Error('duplicate key'), { code: '23505' })).errorClass, 'internal');
  assert.equal(classify(new Error('boom')).errorClass, 'internal');
});
