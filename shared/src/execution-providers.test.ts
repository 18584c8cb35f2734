// The CUDA-to-CPU fallback on this CPU-only machine, with the real onnxruntime-node and the bundled
// localizer: asked for CUDA, the session is made on the CPU, it runs, and an error line says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { createWithCpuFallback } from './execution-providers.ts';
import { loadConfig } from './config.ts';
import { findModel, loadVerifiedModel, readManifest } from './manifest.ts';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, log: pino({ level: 'info' }, stream) };
}

test('a session asked for cuda on a machine without CUDA runs on the CPU and logs the fallback at error level', async () => {
  const cfg = loadConfig({});
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const entry = findModel(manifest, cfg.TAMPERTRACE_LOCALIZER_MODEL);
  const { bytes } = await loadVerifiedModel(manifest.root, entry);
  const { lines, log } = capture();
  const asked: string[][] = [];
  const got = await createWithCpuFallback(entry.name, ['cuda'], (providers) => {
    asked.push(providers);
    return ort.InferenceSession.create(bytes, { executionProviders: providers });
  }, log);
  assert.deepEqual(asked, [['cuda'], ['cpu']]);
  assert.deepEqual(got.providers, ['cpu']);
  assert.equal(got.fellBack, true);
  const size = entry.inputSize;
  const out = await got.session.run({ [entry.input ?? 'face']: new ort.Tensor('float32', new Float32Array(3 * size * size).fill(0.5), [1, 3, size, size]) });
  assert.ok(out[entry.output ?? 'forgery_prob'], 'the CPU session runs the model');
  const errors = lines.filter((l) => l.level === 50);
  assert.equal(errors.length, 1);
  assert.match(String(errors[0].msg), /FALLING BACK TO CPU/);
  assert.equal(errors[0].model, entry.name);
  assert.deepEqual(errors[0].requested, ['cuda']);
  await got.session.release();
});

test('cpu as asked: no retry and no log line', async () => {
  const { lines, log } = capture();
  const got = await createWithCpuFallback('m', ['cpu'], async (p) => p.join(','), log);
  assert.deepEqual(got, { session: 'cpu', providers: ['cpu'], fellBack: false });
  assert.equal(lines.length, 0);
});

test('a failure with only the CPU asked for is not hidden', async () => {
  const { log } = capture();
  await assert.rejects(createWithCpuFallback('m', ['cpu'], async () => { throw new Error('bad model'); }, log), /bad model/);
});
