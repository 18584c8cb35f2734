// `tampertrace topics create` on the real local Kafka: every topic and dead-letter topic, with the
// configured partitions, under a prefix of its own; a second run leaves them as they are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { allTopics, loadConfig, withPrefix } from '@tampertrace/shared';
import { BIN, SKIP_REASON, serversReady } from './cluster.testing.ts';

const run = promisify(execFile);

test('topics create makes every topic and dead-letter topic with the configured partitions, and is idempotent', { skip: serversReady ? false : SKIP_REASON }, async () => {
  const prefix = `topics-cli-${process.pid}-${Date.now()}`;
  const env = { ...process.env, TAMPERTRACE_TOPIC_PREFIX: prefix, TAMPERTRACE_TOPIC_PARTITIONS: '3', TAMPERTRACE_TOPIC_REPLICATION: '1' };
  const expected = allTopics().map((t) => withPrefix(prefix, t));
  for (let i = 0; i < 2; i++) {
    const { stdout } = await run(process.execPath, [BIN, 'topics', 'create'], { env, timeout: 120_000 });
    assert.deepEqual(stdout.trim().split('\n'), expected);
  }
  const admin = new Kafka({ clientId: 'topics-cli-test', brokers: loadConfig().TAMPERTRACE_KAFKA_BROKERS, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: expected });
    for (const t of meta.topics) {
      assert.equal(t.partitions.length, 3, `${t.name}: partitions`);
      for (const p of t.partitions) assert.equal(p.replicas.length, 1, `${t.name}: replication`);
    }
    assert.equal(meta.topics.length, expected.length);
  } finally {
    await admin.deleteTopics({ topics: expected }).catch(() => {});
    await admin.disconnect();
  }
});
