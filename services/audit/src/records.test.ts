import { test } from 'node:test';
import assert from 'node:assert/strict';
import { traceIdOf } from './records.ts';

test('traceIdOf takes the trace id from a W3C traceparent and refuses malformed ones', () => {
  const id = '4bf92f3577b34da6a3ce929d0e0e4736';
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-00`), id, 'not sampled is still a trace');
  assert.equal(traceIdOf(`01-${id}-00f067aa0ba902b7-01-future`), id, 'a later version may append fields');
  for (const bad of [
    undefined,
    '',
    `00-${id}-00f067aa0ba902b7-01-extra`, // version 00 has exactly four fields
    `ff-${id}-00f067aa0ba902b7-01`, // version ff is invalid
    `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
    `00-${id}-${'0'.repeat(16)}-01`, // all-zero parent id
    `00-${id.toUpperCase()}-00f067aa0ba902b7-01`, // upper case is not allowed
    `00-${id.slice(1)}-00f067aa0ba902b7-01`,
    'garbage',
  ]) {
    assert.equal(traceIdOf(bad), undefined, String(bad));
  }
});
