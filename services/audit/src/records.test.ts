import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsumerGroup, Header, Topic, deadLetterTopic } from '@tampertrace/shared';
import { UNATTRIBUTED_TENANT, toDeadLetterRecord, traceIdOf } from './records.ts';

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

test('a dead letter is recorded under the tenant it names only when that is a fact: a pipeline topic, or a tenant its consumer authenticated', () => {
  const letter = (group: string, headers: Record<string, string>) =>
    toDeadLetterRecord({ topic: deadLetterTopic(group), key: 'k', value: new Uint8Array([1]), headers: { [Header.dlqStage]: group, [Header.dlqCode]: 'X', ...headers } });
  // From the stages' own topics, tt-tenant was written by the pipeline.
  assert.equal(letter(ConsumerGroup.faceDetection, { [Header.tenant]: 't1', [Header.dlqOriginalTopic]: Topic.imageIngested }).tenantId, 't1');
  // From the submissions topic, tt-tenant is whatever the producer claimed.
  const claimed = letter(ConsumerGroup.ingestSubmissions, { [Header.tenant]: 't1', [Header.dlqOriginalTopic]: Topic.submissions });
  assert.equal(claimed.tenantId, UNATTRIBUTED_TENANT);
  assert.match(claimed.errorMessage!, /claims tenant "t1"/);
  assert.equal(letter(ConsumerGroup.ingestSubmissions, { [Header.tenant]: 't1', [Header.dlqTenant]: 't1', [Header.dlqOriginalTopic]: Topic.submissions }).tenantId, 't1');
  // No origin at all: nobody's.
  assert.equal(letter(ConsumerGroup.ingestSubmissions, { [Header.tenant]: 't1' }).tenantId, UNATTRIBUTED_TENANT);
});
