// KafkaBus against a real broker. Runs only when TAMPERTRACE_KAFKA_BROKERS is set:
//   make infra-up servers=kafka && eval "$(deploy/local/infra.sh env)"
//   node --import tsx --test shared/src/kafka-bus.integration.test.ts
// Every run uses its own topic/group prefix, so runs never see each other's messages; the
// topics and groups are deleted again at the end.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel } from 'kafkajs';
import type { BusMessage, MessageHandler, Subscription } from './bus.ts';
import { KafkaBus, type KafkaBusOptions } from './kafka-bus.ts';
import { createLogger } from './log.ts';

const brokersEnv = process.env.TAMPERTRACE_KAFKA_BROKERS;

if (!brokersEnv) {
  test('KafkaBus integration tests', { skip: 'TAMPERTRACE_KAFKA_BROKERS is not set: run `make infra-up servers=kafka` and `eval "$(deploy/local/infra.sh env)"`' }, () => {});
} else {
  const brokers = brokersEnv.split(',');
  const prefix = `it-${Date.now()}-${process.pid}`;
  const log = createLogger('kafka-bus-it', process.env.TAMPERTRACE_LOG_LEVEL ?? 'error');
  const buses: KafkaBus[] = [];

  const connect = async (extra: Partial<KafkaBusOptions> = {}): Promise<KafkaBus> => {
    const bus = await KafkaBus.connect({
      brokers,
      clientId: prefix,
      topicPrefix: prefix,
      partitions: 4,
      log,
      // The broker's minimum (group.min.session.timeout.ms); short heartbeats and fetch waits
      // make rebalances and stops take well under a second.
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 300,
      maxWaitTimeInMs: 200,
      retryBackoffMs: 50,
      ...extra,
    });
    buses.push(bus);
    return bus;
  };
  const group = (name: string) => `${prefix}.${name}`;
  const msg = (topic: string, key: string, n: number): BusMessage => ({
    topic,
    key,
    value: new TextEncoder().encode(`v${n}`),
    headers: { n: String(n), 'tt-tenant': 'acme', note: `héllo ${n}` },
  });
  const num = (m: BusMessage) => Number(m.headers.n);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function waitFor(what: string, cond: () => boolean, timeoutMs = 15000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(20);
    }
  }
  const collector = () => {
    const got: BusMessage[] = [];
    const handler: MessageHandler = async (m) => {
      got.push(m);
    };
    return { got, handler };
  };

  after(async () => {
    await Promise.all(buses.map((b) => b.close()));
    // Leave the broker as we found it.
    const admin = new Kafka({ clientId: prefix, brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
      if (topics.length) await admin.deleteTopics({ topics });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${prefix}.`));
      if (groups.length) await admin.deleteGroups(groups);
    } finally {
      await admin.disconnect();
    }
  });

  test('one group gets every message once, in order per key; keys, values, headers and topic names round-trip', async () => {
    const bus = await connect();
    const { got, handler } = collector();
    await bus.subscribe({ group: group('order'), topics: ['orders'], handler, concurrency: 4 });
    // Published concurrently, so the order per key is only the call order.
    await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish(msg('orders', `k${i % 5}`, i))));
    await waitFor('20 messages', () => got.length >= 20);
    await sleep(500); // room for a duplicate to show up
    assert.equal(got.length, 20);
    for (let k = 0; k < 5; k++) {
      assert.deepEqual(
        got.filter((m) => m.key === `k${k}`).map(num),
        [0, 1, 2, 3].map((j) => j * 5 + k),
      );
    }
    const m7 = got.find((m) => num(m) === 7)!;
    assert.deepEqual(m7, { topic: 'orders', key: 'k2', value: new TextEncoder().encode('v7'), headers: { n: '7', 'tt-tenant': 'acme', note: 'héllo 7' } });
  });

  test('every consumer group sees every message', async () => {
    const bus = await connect();
    const a = collector();
    const b = collector();
    await bus.subscribe({ group: group('fan-a'), topics: ['fan'], handler: a.handler });
    await bus.subscribe({ group: group('fan-b'), topics: ['fan'], handler: b.handler });
    for (let i = 0; i < 10; i++) await bus.publish(msg('fan', `k${i % 3}`, i));
    await waitFor('both groups', () => a.got.length >= 10 && b.got.length >= 10);
    await sleep(300);
    const all = Array.from({ length: 10 }, (_, i) => i);
    assert.deepEqual(a.got.map(num).sort((x, y) => x - y), all);
    assert.deepEqual(b.got.map(num).sort((x, y) => x - y), all);
  });

  test('a handler that throws gets the same message again, and later messages still follow it', async () => {
    const bus = await connect();
    const calls: number[] = [];
    await bus.subscribe({
      group: group('retry'),
      topics: ['retry'],
      handler: async (m) => {
        calls.push(num(m));
        if (num(m) === 2 && calls.filter((c) => c === 2).length <= 2) throw new Error('transient');
      },
    });
    // One key: one partition, so the retried message blocks the ones behind it.
    for (let i = 1; i <= 5; i++) await bus.publish(msg('retry', 'a', i));
    await waitFor('all five', () => calls.includes(5));
    await sleep(300);
    assert.deepEqual(calls, [1, 2, 2, 2, 3, 4, 5]);
  });

  test('stop() waits for the in-flight handler; a message whose handler never resolved goes to the next member', async () => {
    const bus = await connect();
    for (let i = 1; i <= 3; i++) await bus.publish(msg('stop-fail', 'a', i));
    const first: number[] = [];
    let fail!: (err: Error) => void;
    let arrived2!: () => void;
    const gate = new Promise<void>((_, reject) => (fail = reject));
    const at2 = new Promise<void>((resolve) => (arrived2 = resolve));
    const sub = await bus.subscribe({
      group: group('stop-fail'),
      topics: ['stop-fail'],
      handler: async (m) => {
        first.push(num(m));
        if (num(m) === 2) {
          arrived2();
          await gate;
        }
      },
    });
    await at2;
    let stopDone = false;
    const stopping = sub.stop().then(() => (stopDone = true));
    await sleep(300);
    assert.equal(stopDone, false, 'stop() must wait for the in-flight handler');
    fail(new Error('shutting down mid-message'));
    await stopping;
    assert.deepEqual(first, [1, 2], 'no retry and no further message once stopping');

    const second = collector();
    await bus.subscribe({ group: group('stop-fail'), topics: ['stop-fail'], handler: second.handler });
    await waitFor('redelivery', () => second.got.length >= 2);
    await sleep(300);
    assert.deepEqual(second.got.map(num), [2, 3], 'message 1 was committed, message 2 was not');
  });

  test('stop() lets an in-flight handler finish and commits it', async () => {
    const bus = await connect();
    for (let i = 1; i <= 3; i++) await bus.publish(msg('stop-ok', 'a', i));
    const first: number[] = [];
    let release!: () => void;
    let arrived2!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const at2 = new Promise<void>((resolve) => (arrived2 = resolve));
    const sub = await bus.subscribe({
      group: group('stop-ok'),
      topics: ['stop-ok'],
      handler: async (m) => {
        first.push(num(m));
        if (num(m) === 2) {
          arrived2();
          await gate;
        }
      },
    });
    await at2;
    const stopping = sub.stop();
    await sleep(200);
    release();
    await stopping;
    assert.deepEqual(first, [1, 2]);

    const second = collector();
    await bus.subscribe({ group: group('stop-ok'), topics: ['stop-ok'], handler: second.handler });
    await waitFor('message 3', () => second.got.length >= 1);
    await sleep(300);
    assert.deepEqual(second.got.map(num), [3]);
  });

  test('stop() cuts a retry backoff short and leaves the failing message uncommitted', async () => {
    const bus = await connect({ retryBackoffMs: 10000 });
    await bus.publish(msg('stop-backoff', 'a', 1));
    let attempts = 0;
    const sub = await bus.subscribe({
      group: group('stop-backoff'),
      topics: ['stop-backoff'],
      handler: async () => {
        attempts++;
        throw new Error('always failing');
      },
    });
    await waitFor('first attempt', () => attempts >= 1);
    await sleep(100); // now inside the 10 s backoff
    const t0 = Date.now();
    await sub.stop();
    assert.ok(Date.now() - t0 < 3000, `stop() took ${Date.now() - t0} ms`);
    assert.equal(attempts, 1);

    const second = collector();
    await bus.subscribe({ group: group('stop-backoff'), topics: ['stop-backoff'], handler: second.handler });
    await waitFor('redelivery', () => second.got.length >= 1);
    assert.deepEqual(second.got.map(num), [1]);
  });

  test('two members of one group share the partitions: each gets some, together everything once', async () => {
    const bus1 = await connect();
    const bus2 = await connect();
    const a = collector();
    const b = collector();
    const subs: Subscription[] = [];
    subs.push(await bus1.subscribe({ group: group('share'), topics: ['share'], handler: a.handler }));
    // Returns once the group has rebalanced with both members in it.
    subs.push(await bus2.subscribe({ group: group('share'), topics: ['share'], handler: b.handler }));
    await Promise.all(Array.from({ length: 40 }, (_, i) => bus1.publish(msg('share', `k${i % 20}`, i))));
    await waitFor('40 messages', () => a.got.length + b.got.length >= 40);
    await sleep(500);
    assert.ok(a.got.length > 0 && b.got.length > 0, `both members get work (${a.got.length} / ${b.got.length})`);
    assert.deepEqual(
      [...a.got, ...b.got].map(num).sort((x, y) => x - y),
      Array.from({ length: 40 }, (_, i) => i),
    );
    // A key lives on one partition, hence on one member.
    const keysA = new Set(a.got.map((m) => m.key));
    assert.ok(b.got.every((m) => !keysA.has(m.key)));
    await Promise.all(subs.map((s) => s.stop()));
  });
}
