#!/usr/bin/env node
// Loads forensic-inconsistency-v1.onnx in onnxruntime-node (the project's runtime),
// runs it on a real 256x256 face crop (astronaut.png, face box expanded 1.5x, sharp
// lanczos3 resize) and reports outputs and per-call latency for N=1 and N=4.
//   node models/forensic-inconsistency/node_check.cjs [--dump /path/prefix]
// --dump writes the input crop and forgery_prob as raw float32 files (for parity checks).
'use strict';
const path = require('path');
const fs = require('fs');
const os = require('os');
const ort = require('onnxruntime-node');
const sharp = require('sharp');

const ROOT = path.resolve(__dirname, '..', '..');
const MODEL = path.join(__dirname, 'forensic-inconsistency-v1.onnx');
const SIZE = 256;

async function crop(file, box) {
  const [x, y, w, h] = box;
  const s = Math.max(w, h) * 1.5;
  const left = Math.round(x + w / 2 - s / 2);
  const top = Math.round(y + h / 2 - s / 2);
  const side = Math.round(s);
  const { data } = await sharp(file).removeAlpha().toColourspace('srgb')
    .extract({ left, top, width: side, height: side })
    .resize(SIZE, SIZE, { kernel: 'lanczos3' }).raw().toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * SIZE * SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    for (let c = 0; c < 3; c++) out[c * SIZE * SIZE + i] = data[i * 3 + c] / 255;
  }
  return out;
}

function faceScore(prob, frac = 0.05) {
  const a = Float32Array.from(prob).sort();
  const k = Math.max(1, Math.round(frac * a.length));
  let s = 0;
  for (let i = a.length - k; i < a.length; i++) s += a[i];
  return s / k;
}

function stats(a) {
  let mn = Infinity, mx = -Infinity;
  for (const v of a) { if (v < mn) mn = v; if (v > mx) mx = v; }
  return [mn.toFixed(4), mx.toFixed(4)];
}

async function main() {
  const dumpAt = process.argv.indexOf('--dump');
  const opts = { executionProviders: ['cpu'], intraOpNumThreads: os.cpus().length };
  const sess = await ort.InferenceSession.create(MODEL, opts);
  console.log('onnxruntime-node', require('onnxruntime-node/package.json').version,
    '| inputs', sess.inputNames, '| outputs', sess.outputNames);
  const one = await crop(path.join(ROOT, 'testdata/faces/astronaut.png'), [178, 81, 94, 94]);

  for (const n of [1, 4]) {
    const buf = new Float32Array(n * one.length);
    for (let i = 0; i < n; i++) buf.set(one, i * one.length);
    const feeds = { face: new ort.Tensor('float32', buf, [n, 3, SIZE, SIZE]) };
    let out;
    for (let i = 0; i < 3; i++) out = await sess.run(feeds); // warm-up
    const times = [];
    for (let i = 0; i < 20; i++) {
      const t0 = process.hrtime.bigint();
      out = await sess.run(feeds);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    times.sort((a, b) => a - b);
    const p = out.forgery_prob;
    const first = p.data.subarray(0, SIZE * SIZE);
    console.log(`N=${n}: median ${times[10].toFixed(1)} ms/call, min ${times[0].toFixed(1)}, max ${times[19].toFixed(1)}` +
      ` (${(times[10] / n).toFixed(1)} ms/face); forgery_prob dims [${p.dims}] range ${stats(first)}` +
      ` face score (top 5% mean) ${faceScore(first).toFixed(4)}`);
    if (n === 1) {
      for (const k of ['cue_noise', 'cue_colour', 'cue_boundary']) {
        console.log(`  ${k} dims [${out[k].dims}] range ${stats(out[k].data)}`);
      }
      if (dumpAt > 0) {
        const pre = process.argv[dumpAt + 1];
        fs.writeFileSync(pre + '_input.f32', Buffer.from(one.buffer));
        fs.writeFileSync(pre + '_prob.f32', Buffer.from(first.buffer.slice(first.byteOffset, first.byteOffset + first.byteLength)));
      }
    }
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
