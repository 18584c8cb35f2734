import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemoryBus, partitionFor, type BusMessage } from './bus.ts';

const msg = (key: string, n: number, topic = 't'): BusMessage => ({ topic, key, value: new Uint8Array([n]), headers: { n: String(n) } });

test('messages with one key arrive in publish order, across concurrent partitions', async () => {
  const bus = new InMemoryBus({ partitions: 4 });
  const seen = new Map<string, number[]>();
  await bus.subscribe({
    group: 'g',
    topics: ['t'],
    concurrency: 4,
    handler: async (m) => {
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      seen.set(m.key, [...(seen.get(m.key) ?? []), m.value[0]]);
    },
  });
  for (let i = 0; i < 30; i++) await bus.publish(msg(`k${i % 5}`, i));
  await bus.idle();
  for (let k = 0; k < 5; k++) assert.deepEqual(seen.get(`k${k}`), [0, 1, 2, 3, 4, 5].map((j) => j * 5 + k));
  await bus.close();
});

test('a handler that throws gets the same message again (at-least-once), then the next one', async () => {
  const bus = new InMemoryBus({ partitions: 1, retryBackoffMs: 1 });
  const calls: number[] = [];
  await bus.subscribe({
    group: 'g',
    topics: ['t'],
    handler: async (m) => {
      calls.push(m.value[0]);
      if (m.value[0] === 1 && calls.filter((c) => c === 1).length < 3) throw new Error('transient');
    },
  });
  await bus.publish(msg('a', 1));
  await bus.publish(msg('a', 2));
  await bus.idle();
  assert.deepEqual(calls, [1, 1, 1, 2]);
  await bus.close();
});

test('every consumer group sees every message; a late group starts at the oldest retained one', async () => {
  const bus = new InMemoryBus({ partitions: 2 });
  const a: number[] = [];
  const b: number[] = [];
  // Group a holds its messages until b has joined, so they are still retained when b starts
  // (messages every group has consumed are dropped, and a group that joins later never sees them).
  let release!: () => void;
  const bJoined = new Promise<void>((r) => (release = r));
  await bus.subscribe({ group: 'a', topics: ['t'], handler: async (m) => void (await bJoined, a.push(m.value[0])) });
  await bus.publish(msg('x', 1));
  await bus.publish(msg('y', 2));
  await bus.subscribe({ group: 'b', topics: ['t'], handler: async (m) => void b.push(m.value[0]) });
  release();
  await bus.idle();
  assert.deepEqual(a.sort(), [1, 2]);
  assert.deepEqual(b.sort(), [1, 2]);
  assert.equal(bus.lag('t', 'a'), 0);
  await bus.close();
});

test('a published message is a copy: later changes to the producer buffer do not leak', async () => {
  const bus = new InMemoryBus({ partitions: 1 });
  const got: number[] = [];
  await bus.subscribe({ group: 'g', topics: ['t'], handler: async (m) => void got.push(m.value[0]) });
  const value = new Uint8Array([7]);
  await bus.publish({ topic: 't', key: 'k', value, headers: {} });
  value[0] = 9;
  await bus.idle();
  assert.deepEqual(got, [7]);
  await bus.close();
});

test('stop() leaves an unfinished message uncommitted for the next member of the group', async () => {
  const bus = new InMemoryBus({ partitions: 1, retryBackoffMs: 5 });
  const sub = await bus.subscribe({ group: 'g', topics: ['t'], handler: async () => { throw new Error('down'); } });
  await bus.publish(msg('k', 1));
  await new Promise((r) => setTimeout(r, 20));
  await sub.stop();
  assert.equal(bus.lag('t', 'g'), 1);
  const got: number[] = [];
  await bus.subscribe({ group: 'g', topics: ['t'], handler: async (m) => void got.push(m.value[0]) });
  await bus.idle();
  assert.deepEqual(got, [1]);
  await bus.close();
});

test('partitionFor is stable and spreads keys', () => {
  assert.equal(partitionFor('abc', 8), partitionFor('abc', 8));
  const used = new Set(Array.from({ length: 200 }, (_, i) => partitionFor(`key-${i}`, 8)));
  assert.equal(used.size, 8);
});
