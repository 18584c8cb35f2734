import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatcherFullError, DynamicBatcher } from './batcher.ts';
import { classify } from './errors.ts';

/** A model stand-in that records each run's items and finishes when told to. */
function gatedModel() {
  const runs: number[][] = [];
  const gates: (() => void)[] = [];
  const run = async (items: number[]) => {
    runs.push(items);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (items.includes(-1)) throw new Error(`bad item in [${items.join(',')}]`);
    return items.map((x) => x * 10);
  };
  const release = async () => {
    while (gates.length === 0) await new Promise((r) => setImmediate(r));
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { runs, run, release };
}

test('with no wait, an idle model takes the first item alone and the items that queued meanwhile as one batch', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 8, maxWaitMs: 0, maxQueue: 100 });
  const first = b.submit(1);
  const rest = [2, 3, 4].map((x) => b.submit(x));
  await m.release();
  await m.release();
  assert.deepEqual(await Promise.all([first, ...rest]), [10, 20, 30, 40]);
  assert.deepEqual(m.runs, [[1], [2, 3, 4]]);
  assert.deepEqual(b.stats, { runs: 2, items: 4, largest: 3 });
});

test('a batch never exceeds maxBatchSize; the rest waits for the next run, in order', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 2, maxWaitMs: 0, maxQueue: 100 });
  const all = [1, 2, 3, 4, 5].map((x) => b.submit(x));
  for (let i = 0; i < 3; i++) await m.release();
  assert.deepEqual(await Promise.all(all), [10, 20, 30, 40, 50]);
  assert.deepEqual(m.runs, [[1], [2, 3], [4, 5]]);
});

test('with maxWaitMs, a partial batch waits for company; a full one goes at once', async () => {
  const runs: number[][] = [];
  const b = new DynamicBatcher(async (items: number[]) => (runs.push(items), items), { maxBatchSize: 3, maxWaitMs: 20, maxQueue: 100 });
  const early = b.submit(1);
  await new Promise((r) => setTimeout(r, 1));
  const late = b.submit(2);
  assert.deepEqual(await Promise.all([early, late]), [1, 2]);
  assert.deepEqual(runs, [[1, 2]]);
  const full = b.submitMany([3, 4, 5]);
  assert.deepEqual(await Promise.all(full), [3, 4, 5]);
  assert.deepEqual(runs, [[1, 2], [3, 4, 5]]);
});

test('submitMany keeps the items of one request in one run when they fit', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 4, maxWaitMs: 0, maxQueue: 100 });
  const a = b.submitMany([1, 2, 3]);
  await m.release();
  assert.deepEqual(await Promise.all(a), [10, 20, 30]);
  assert.deepEqual(m.runs, [[1, 2, 3]]);
});

test('one bad item fails only its own request: the failed batch is run again item by item', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 8, maxWaitMs: 0, maxQueue: 100 });
  const first = b.submit(1);
  const batch = Promise.allSettled([2, -1, 3].map((x) => b.submit(x)));
  await m.release(); // [1]
  await m.release(); // [2,-1,3] fails
  for (let i = 0; i < 3; i++) await m.release(); // each alone
  assert.equal(await first, 10);
  const settled = await batch;
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.equal((settled[0] as PromiseFulfilledResult<number>).value, 20);
  assert.match(String((settled[1] as PromiseRejectedResult).reason), /bad item in \[-1\]/);
  assert.deepEqual(m.runs, [[1], [2, -1, 3], [2], [-1], [3]]);
});

test('without retryItemsAlone a failed batch fails every item in it', async () => {
  const b = new DynamicBatcher(
    async (items: number[]) => {
      if (items.includes(-1)) throw new Error('boom');
      return items;
    },
    { maxBatchSize: 8, maxWaitMs: 5, maxQueue: 100, retryItemsAlone: false },
  );
  const settled = await Promise.allSettled(b.submitMany([1, -1]));
  assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected']);
});

test('a run returning the wrong number of outputs is an error, not a silent mismatch', async () => {
  const b = new DynamicBatcher(async (items: number[]) => items.slice(1), { maxBatchSize: 8, maxWaitMs: 0, maxQueue: 100, retryItemsAlone: false });
  await assert.rejects(b.submit(1), /returned 0 outputs for 1 items/);
});

test('the queue is bounded: beyond maxQueue submissions fail with a retriable error and nothing is queued', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 2, maxWaitMs: 0, maxQueue: 3 });
  const running = b.submit(1); // taken by the idle model, so not in the queue
  const queued = b.submitMany([2, 3, 4]);
  assert.equal(b.queued, 3);
  const refused = await Promise.allSettled(b.submitMany([5, 6]));
  for (const r of refused) {
    assert.equal(r.status, 'rejected');
    assert.ok(r.reason instanceof BatcherFullError);
    assert.equal(classify(r.reason).errorClass, 'retriable');
  }
  assert.equal(b.queued, 3);
  for (let i = 0; i < 3; i++) await m.release();
  assert.deepEqual(await Promise.all([running, ...queued]), [10, 20, 30, 40]);
});

test('a request larger than the whole queue is taken when the queue is empty, so it is never refused forever', async () => {
  const b = new DynamicBatcher(async (items: number[]) => items, { maxBatchSize: 2, maxWaitMs: 0, maxQueue: 2 });
  assert.deepEqual(await Promise.all(b.submitMany([1, 2, 3, 4, 5])), [1, 2, 3, 4, 5]);
});

test('close() runs every queued item, then refuses new ones', async () => {
  const runs: number[][] = [];
  const b = new DynamicBatcher(
    async (items: number[]) => {
      runs.push(items);
      await new Promise((r) => setTimeout(r, 2));
      return items;
    },
    { maxBatchSize: 2, maxWaitMs: 1000, maxQueue: 100 },
  );
  const pending = b.submitMany([1, 2, 3]);
  await b.close();
  assert.deepEqual(await Promise.all(pending), [1, 2, 3]);
  assert.deepEqual(runs, [[1, 2], [3]]);
  await assert.rejects(b.submit(4), /after close/);
});

test('maxConcurrentRuns lets several runs overlap', async () => {
  const m = gatedModel();
  const b = new DynamicBatcher(m.run, { maxBatchSize: 1, maxWaitMs: 0, maxQueue: 100, maxConcurrentRuns: 2 });
  const all = [1, 2, 3].map((x) => b.submit(x));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(m.runs, [[1], [2]]);
  for (let i = 0; i < 3; i++) await m.release();
  assert.deepEqual(await Promise.all(all), [10, 20, 30]);
});

test('bad options are refused', () => {
  assert.throws(() => new DynamicBatcher(async (x: number[]) => x, { maxBatchSize: 0, maxWaitMs: 0, maxQueue: 1 }), /bad options/);
  assert.throws(() => new DynamicBatcher(async (x: number[]) => x, { maxBatchSize: 1, maxWaitMs: -1, maxQueue: 1 }), /bad options/);
});
