import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, Stage } from './gen/tampertrace/v1/common_pb.ts';
import { classify, InvalidInputError, RetriableError, safeMessage, toErrorInfo } from './errors.ts';
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
  // The database's words (which may quote the value) stay in the cause, for the logs.
  assert.equal(c.message, 'a value in the request is out of the range that can be stored');
  assert.equal(c.cause, err);
  // Other SQLSTATE classes (a unique violation, say) are not the data's fault alone.
  assert.equal(classify(Object.assign(new Error('duplicate key'), { code: '23505' })).errorClass, 'internal');
  assert.equal(classify(new Error('boom')).errorClass, 'internal');
});

test('callers get safe messages: never the words of a dependency or a bug (addresses, URLs), messages written for them as they are', () => {
  const refused = classify(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
  const s3 = new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, 'S3 get originals/x at http://10.0.0.7:9000: socket hang up');
  const pgGone = classify(new Error('Connection terminated unexpectedly'));
  const bug = classify(new TypeError("Cannot read properties of undefined (reading 'x') at /srv/app.ts:12"));
  assert.equal(pgGone.errorClass, 'retriable');
  assert.equal(classify(Object.assign(new Error('the database system is shutting down'), { code: '57P03' })).errorClass, 'retriable');
  for (const e of [refused, s3, pgGone, bug]) {
    const shown = [safeMessage(e), toErrorInfo(e, Stage.INGEST).message];
    for (const m of shown) assert.doesNotMatch(m, /\d+\.\d+\.\d+\.\d+|https?:|:\d{2,5}\b|\/srv|terminated/, m);
  }
  assert.equal(safeMessage(bug), 'internal error');
  assert.match(safeMessage(refused), /unavailable; try again later/);
  // Written for the caller: shown as it is, whatever its class.
  assert.equal(safeMessage(new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, 'the PNG ends early')), 'the PNG ends early');
  assert.equal(safeMessage(new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, 'the server answered HTTP 503', { forCaller: true })), 'the server answered HTTP 503');
});
