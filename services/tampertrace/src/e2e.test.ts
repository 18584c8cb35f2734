// End to end in embedded mode, through the real `tampertrace` command: real photos, a
// self-blended forgery, a no-face image and every kind of bad input in one run.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { REPO_ROOT, decodeRgb, loadConfig } from '@tampertrace/shared';
import { astronautPng, cameraPng, pngDeclaring, truncatedJpeg } from '@tampertrace/shared/testing';
import { makeSelfBlended, toPng } from '@tampertrace/forgery-localization/sbi';
import { loadModels } from './embedded.ts';

const run = promisify(execFile);
const BIN = path.join(REPO_ROOT, 'services', 'tampertrace', 'bin', 'tampertrace.mjs');
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };

// Where BlazeFace puts the astronaut's face (LICENSE.md of testdata/faces and the detector's tests).
const ASTRONAUT_FACE = { x: 178, y: 81, width: 94, height: 94 };
let home: string;
let inDir: string;
let outDir: string;
let exitCode: number;
let stdout: string;
let gtMask: Uint8Array;
let forgedRegions: Set<string>;

/** Embedded mode even when `make test` has put the local servers' addresses in the environment (the audit CLI would read PostgreSQL then). */
const EMBEDDED_ONLY = { TAMPERTRACE_DATABASE_URL: '', TAMPERTRACE_KAFKA_BROKERS: '', TAMPERTRACE_S3_ENDPOINT: '' };

async function tampertrace(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, ...EMBEDDED_ONLY, TAMPERTRACE_HOME: home, TAMPERTRACE_LOG_LEVEL: 'warn', TAMPERTRACE_MAX_INPUT_BYTES: '2000000' }, maxBuffer: 1 << 24 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const readJson = async (name: string) => JSON.parse(await readFile(path.join(outDir, `${name}.json`), 'utf8'));

before(async () => {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'tt-e2e-'));
  home = path.join(tmp, 'home');
  inDir = path.join(tmp, 'in');
  outDir = path.join(tmp, 'out');
  await mkdir(path.join(inDir, 'more'), { recursive: true });
  await writeFile(path.join(inDir, 'astronaut.png'), astronautPng());
  await writeFile(path.join(inDir, 'camera.png'), cameraPng());
  const src = await decodeRgb(astronautPng(), limits);
  // The ground truth is placed with the detector's own keypoints on the real photo.
  const models = await loadModels(loadConfig());
  const [face] = await models.detector.detect(src);
  await Promise.all([models.detector.close(), models.model.close()]);
  const sample = await makeSelfBlended(src, face, { regions: ['nose', 'mouth', 'lip'], transform: 'colour+blur', seed: 11 });
  gtMask = sample.gt;
  forgedRegions = new Set(['nose', 'mouth', 'lip']);
  await writeFile(path.join(inDir, 'forged.png'), await toPng(sample.rgb));
  // No face: a smooth gradient with some texture.
  const noise = Buffer.alloc(640 * 480 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7) % 251;
  await writeFile(path.join(inDir, 'more', 'noface.jpg'), await sharp(noise, { raw: { width: 640, height: 480, channels: 3 } }).blur(3).jpeg().toBuffer());
  await writeFile(path.join(inDir, 'more', 'truncated.jpg'), await truncatedJpeg());
  await writeFile(path.join(inDir, 'more', 'text.jpg'), 'just some text that pretends to be a JPEG\n');
  await writeFile(path.join(inDir, 'more', 'empty.jpg'), Buffer.alloc(0));
  await writeFile(path.join(inDir, 'more', 'bomb.png'), pngDeclaring(60000, 60000));
  // Bigger than the byte limit set below: refused from its size, never read whole.
  await writeFile(path.join(inDir, 'more', 'huge.jpg'), Buffer.concat([await sharp(astronautPng()).jpeg().toBuffer(), Buffer.alloc(3_000_000)]));
  const r = await tampertrace(['analyze', '--out', outDir, inDir]);
  exitCode = r.code;
  stdout = r.stdout;
  if (r.code !== 2) console.error(r.stdout, r.stderr);
});

test('a run with some rejected inputs exits 2 and still analyses every other input', async () => {
  assert.equal(exitCode, 2);
  for (const name of ['astronaut', 'camera', 'forged', 'noface', 'truncated', 'text', 'empty', 'bomb', 'huge']) assert.match(stdout, new RegExp(`^${name}\\.`, 'm'));
});

test('bad inputs are REJECTED with precise codes', async () => {
  const expected: Record<string, string> = {
    truncated: 'ERROR_CODE_TRUNCATED_IMAGE',
    text: 'ERROR_CODE_UNSUPPORTED_FORMAT',
    empty: 'ERROR_CODE_EMPTY_INPUT',
    bomb: 'ERROR_CODE_TOO_MANY_PIXELS',
    huge: 'ERROR_CODE_TOO_LARGE',
  };
  for (const [name, code] of Object.entries(expected)) {
    const a = await readJson(name);
    assert.equal(a.status, 'ANALYSIS_STATUS_REJECTED', name);
    assert.equal(a.error.code, code, name);
    assert.ok(a.error.message.length > 0);
    assert.match(a.contentSha256, /^[0-9a-f]{64}$/);
  }
  const huge = await readFile(path.join(inDir, 'more', 'huge.jpg'));
  assert.equal((await readJson('huge')).contentSha256, createHash('sha256').update(huge).digest('hex'), 'the hash is of the whole file');
});

test('the real photos: one face each, at the known place, with a mask the size of the image', async () => {
  for (const [name, box] of [
    ['astronaut', ASTRONAUT_FACE],
    ['camera', { x: 171, y: 116, width: 90, height: 90 }],
  ] as const) {
    const a = await readJson(name);
    assert.equal(a.status, 'ANALYSIS_STATUS_COMPLETED', name);
    assert.equal(a.faces.length, 1, name);
    const f = a.faces[0];
    assert.ok(Math.abs(f.box.x - box.x) < 15 && Math.abs(f.box.y - box.y) < 15, `${name} box ${JSON.stringify(f.box)}`);
    assert.ok(f.detectionScore > 0.6);
    assert.ok(f.regions.length >= 8, 'regions are scored');
    assert.ok(a.explanation.text.length > 0);
    const mask = await sharp(path.join(outDir, `${name}.mask.png`)).metadata();
    assert.deepEqual([mask.width, mask.height], [512, 512]);
    const overlay = await sharp(path.join(outDir, `${name}.overlay.png`)).metadata();
    assert.deepEqual([overlay.width, overlay.height], [512, 512]);
  }
});

test('no face: NO_FACE, no verdict, an empty mask of the input size', async () => {
  const a = await readJson('noface');
  assert.equal(a.status, 'ANALYSIS_STATUS_NO_FACE');
  assert.equal(a.verdict, 'VERDICT_UNSPECIFIED');
  assert.equal(a.faces.length, 0);
  const { data, info } = await sharp(path.join(outDir, 'noface.mask.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [640, 480]);
  assert.equal(data.reduce((s, v) => s + v, 0), 0);
});

test('the self-blended forgery scores above the real photo, and its mask and explanation point at the blended regions', async () => {
  const forged = await readJson('forged');
  const real = await readJson('astronaut');
  assert.ok(forged.faces[0].forgeryScore > real.faces[0].forgeryScore, `forged ${forged.faces[0].forgeryScore} vs real ${real.faces[0].forgeryScore}`);
  assert.notEqual(forged.verdict, 'VERDICT_LIKELY_AUTHENTIC');
  const { data } = await sharp(path.join(outDir, 'forged.mask.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  let inter = 0;
  let pred = 0;
  for (let i = 0; i < gtMask.length; i++) {
    if (data[i]) pred++;
    if (data[i] && gtMask[i]) inter++;
  }
  assert.ok(pred > 0, 'something is masked');
  assert.ok(inter / pred > 0.3, `mask precision against the blended area: ${(inter / pred).toFixed(2)}`);
  // A region is named only with a cue past the level real faces reach (per-region levels, measured
  // on other photos); when one is, at least one named region is a blended one and the text says
  // it. When none is, the text says that no region passed, and names none.
  const named = new Set<string>(forged.explanation.facts.filter((f: { cue: string }) => f.cue !== 'CUE_COVERAGE').map((f: { region: string }) => f.region));
  if (named.size === 0) assert.match(forged.explanation.text, /no single facial region shows a cue past its natural level/i);
  else assert.ok([...named].some((r) => forgedRegions.has(r)), `named ${[...named].join(', ')}`);
  for (const r of named) assert.ok(forged.explanation.text.toLowerCase().includes(r.replace(/^(left|right) /, '')), `text mentions ${r}`);
});

test('every analysis left an audit trail that verifies', async () => {
  const a = await readJson('forged');
  const trail = await tampertrace(['audit', 'trail', a.analysisId]);
  assert.equal(trail.code, 0, trail.stderr);
  const records = trail.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => r.stage), ['INGEST', 'PROVENANCE', 'FACE_DETECTION', 'FORGERY_LOCALIZATION', 'EXPLANATION']);
  const last = records.at(-1);
  assert.equal(last.status, 'COMPLETED');
  assert.equal(last.contentSha256, a.contentSha256);
  assert.equal(last.explanationText, a.explanation.text);
  const rejected = await readJson('truncated');
  const rt = await tampertrace(['audit', 'trail', rejected.analysisId]);
  const rr = rt.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(rr.at(-1).status, 'REJECTED');
  assert.equal(rr.at(-1).errorCode, 'TRUNCATED_IMAGE');
  const v = await tampertrace(['audit', 'verify']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^OK: \d+ records verify/);
});
