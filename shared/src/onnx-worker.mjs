// The worker side of OnnxPool (onnx-pool.ts): holds this thread's ONNX sessions and runs them.
// Plain JavaScript, so that worker threads need no TypeScript loader.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { move, transferableSymbol, valueSymbol } from 'piscina';

/** model key -> session (a promise, so that concurrent first calls load once). */
const sessions = new Map();

async function open({ path, sha256, options }) {
  const bytes = await readFile(path);
  // The main thread checked this file at load; the worker reads it again later, so checks again.
  const got = createHash('sha256').update(bytes).digest('hex');
  if (sha256 && got !== sha256) throw new Error(`${path}: sha256 ${got}, expected ${sha256}`);
  return ort.InferenceSession.create(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), options);
}

export default async function run(task) {
  const key = `${task.model.path}@${task.model.sha256}:${JSON.stringify(task.model.options)}`;
  let session = sessions.get(key);
  if (!session) {
    session = open(task.model);
    sessions.set(key, session);
    session.catch(() => sessions.delete(key));
  }
  const s = await session;
  if (!task.feeds) return { inputNames: s.inputNames, outputNames: s.outputNames, inputMetadata: s.inputMetadata };
  const feeds = {};
  for (const [name, f] of Object.entries(task.feeds)) feeds[name] = new ort.Tensor('float32', f.data, f.dims);
  const res = await s.run(feeds);
  const out = {};
  const buffers = [];
  for (const [name, t] of Object.entries(res)) {
    // A copy: the binding's output memory is not ours to transfer.
    const data = new Float32Array(t.data);
    out[name] = { data, dims: [...t.dims] };
    buffers.push(data.buffer);
  }
  return move({ [transferableSymbol]: buffers, [valueSymbol]: out });
}
