// Quality of the bundled localizer and explainer on self-blended forgeries of the two licensed
// photos (testdata/faces). Every forgery goes through the real detector and localizer.
// Writes bench/results/quality.json and prints a table. Usage: `make bench` or
// `node --import tsx bench/quality.ts`.
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, createLogger, decodeRgb, loadConfig, type RgbImage } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { SBI_TRANSFORMS, makeSelfBlended, type SbiTransform } from '@tampertrace/forgery-localization/sbi';
import { buildRegionMasks } from '@tampertrace/forgery-localization/regions';
import { maskScores, pixelAuc } from '@tampertrace/forgery-localization/metrics';
import { cropRectFor } from '@tampertrace/forgery-localization/geometry';
import { loadModels } from '../services/tampertrace/src/embedded.ts';

const REGION_SETS = [['nose'], ['mouth', 'lip'], ['right eye', 'left eye'], ['right cheek', 'left cheek'], ['forehead'], ['nose', 'mouth', 'lip']];
const SEEDS = [101, 202];
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };

const cfg = loadConfig();
const log = createLogger('bench-quality', 'warn');
const m = await loadModels(cfg);

/** Pixels inside any face's localizer crop: where the model looks, so where it is judged. */
function cropArea(width: number, height: number, boxes: { x: number; y: number; width: number; height: number }[]): Uint8Array {
  const area = new Uint8Array(width * height);
  for (const b of boxes) {
    const r = cropRectFor(b, m.locEntry.cropScale ?? 1.5);
    for (let y = Math.max(0, Math.floor(r.y)); y < Math.min(height, Math.ceil(r.y + r.size)); y++)
      for (let x = Math.max(0, Math.floor(r.x)); x < Math.min(width, Math.ceil(r.x + r.size)); x++) area[y * width + x] = 1;
  }
  return area;
}

async function analyse(img: RgbImage) {
  const faces = await m.detector.detect(img);
  const loc = await m.localizer.localize(img, faces);
  const explanation = loc.faces.length
    ? await m.explainer.explain({
        verdict: loc.verdict!,
        faces: loc.faces.map((f, i) => ({ faceIndex: i, forgeryScore: f.forgeryScore, regions: f.regions })),
      })
    : undefined;
  return { faces, loc, explanation };
}

interface Row {
  photo: string;
  transform: SbiTransform | 'none' | 'jpeg75' | 'resize0.75' | 'flip';
  regions: string[];
  seed: number;
  detected: boolean;
  faceScore: number;
  verdict: string;
  auc?: number;
  iou?: number;
  f1?: number;
  named: string[];
  namedCorrect: number;
}

const rows: Row[] = [];
const photos: Array<[string, Buffer]> = [
  ['astronaut', astronautPng()],
  ['camera', cameraPng()],
];
for (const [photo, png] of photos) {
  const src = await decodeRgb(png, limits);
  const [face] = await m.detector.detect(src);
  if (!face) throw new Error(`no face found in ${photo}`);
  // Negatives: the photo itself and harmless global edits, which must not be called forged.
  const negatives: Array<[Row['transform'], Buffer]> = [
    ['none', png],
    ['jpeg75', await sharp(png).jpeg({ quality: 75 }).toBuffer()],
    ['resize0.75', await sharp(png).resize(384).png().toBuffer()],
    ['flip', await sharp(png).flop().png().toBuffer()],
  ];
  for (const [transform, bytes] of negatives) {
    const img = await decodeRgb(bytes, limits);
    const r = await analyse(img);
    rows.push({ photo, transform, regions: [], seed: 0, detected: r.faces.length > 0, faceScore: r.loc.faces[0]?.forgeryScore ?? NaN, verdict: r.loc.verdict ?? 'NO_FACE', named: r.explanation?.facts.filter((f) => f.cue === 'coverage').map((f) => f.region) ?? [], namedCorrect: 0 });
  }
  for (const transform of SBI_TRANSFORMS) {
    for (const regions of REGION_SETS) {
      for (const seed of SEEDS) {
        const sample = await makeSelfBlended(src, face, { regions, transform, seed: seed + photo.length });
        const r = await analyse(sample.rgb);
        const { width, height } = sample.rgb;
        const row: Row = { photo, transform, regions, seed, detected: r.faces.length > 0, faceScore: r.loc.faces[0]?.forgeryScore ?? NaN, verdict: r.loc.verdict ?? 'NO_FACE', named: [], namedCorrect: 0 };
        if (r.faces.length) {
          const area = cropArea(width, height, r.faces.map((f) => f.box));
          row.auc = pixelAuc(r.loc.heat, sample.gt, area);
          const s = maskScores(r.loc.mask, sample.gt, area);
          row.iou = s.iou;
          row.f1 = s.f1;
          // Explainer precision: a named region is right when the ground truth covers >= 15% of it.
          const truth = buildRegionMasks(face.keypoints, face.box, width, height);
          row.named = [...new Set(r.explanation?.facts.filter((f) => f.cue === 'coverage').map((f) => f.region) ?? [])];
          for (const name of row.named) {
            const rm = truth.find((t) => t.name === name);
            if (!rm) continue;
            let on = 0;
            for (let i = 0; i < rm.mask.length; i++) if (rm.mask[i] && sample.gt[i]) on++;
            if (on / rm.area >= 0.15) row.namedCorrect++;
          }
        }
        rows.push(row);
      }
    }
  }
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const forged = rows.filter((r) => !['none', 'jpeg75', 'resize0.75', 'flip'].includes(r.transform));
const real = rows.filter((r) => !forged.includes(r));
const summarise = (rs: Row[]) => {
  const named = rs.reduce((a, r) => a + r.named.length, 0);
  return {
    samples: rs.length,
    detectionRate: mean(rs.map((r) => (r.detected ? 1 : 0))),
    pixelAuc: mean(rs.filter((r) => r.auc !== undefined && !Number.isNaN(r.auc)).map((r) => r.auc!)),
    iou: mean(rs.filter((r) => r.iou !== undefined).map((r) => r.iou!)),
    f1: mean(rs.filter((r) => r.f1 !== undefined).map((r) => r.f1!)),
    meanFaceScore: mean(rs.filter((r) => r.detected).map((r) => r.faceScore)),
    calledForged: mean(rs.map((r) => (r.verdict === 'LIKELY_FORGED' ? 1 : 0))),
    calledUncertain: mean(rs.map((r) => (r.verdict === 'UNCERTAIN' ? 1 : 0))),
    namedRegions: named,
    namedRegionPrecision: named ? rs.reduce((a, r) => a + r.namedCorrect, 0) / named : NaN,
  };
};
const byTransform = Object.fromEntries(SBI_TRANSFORMS.map((t) => [t, summarise(forged.filter((r) => r.transform === t))]));
const byPhoto = Object.fromEntries(photos.map(([p]) => [p, summarise(forged.filter((r) => r.photo === p))]));
// Image-level AUC: does a forged face score above a real one?
const imageAuc = (() => {
  let u = 0;
  const f = forged.filter((r) => r.detected);
  const n = real.filter((r) => r.detected);
  for (const a of f) for (const b of n) u += a.faceScore > b.faceScore ? 1 : a.faceScore === b.faceScore ? 0.5 : 0;
  return u / (f.length * n.length);
})();

const result = {
  date: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform}/${process.arch}, node ${process.version}`,
  model: { name: m.locEntry.name, version: m.locEntry.version, sha256: m.locEntry.sha256, pixelThreshold: m.locEntry.pixelThreshold, uncertainBand: m.locEntry.uncertainBand },
  method: 'self-blended forgeries (4 transforms x 6 region sets x 2 seeds x 2 photos) through the real detector and localizer; pixel metrics inside the localizer crops; thresholds from the manifest, not tuned here',
  forged: summarise(forged),
  real: { ...summarise(real), verdicts: real.map((r) => `${r.photo}/${r.transform}: ${r.verdict} (${r.faceScore.toFixed(3)})`) },
  imageLevelAuc: imageAuc,
  byTransform,
  byPhoto,
  rows,
};
await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
await writeFile(path.join(REPO_ROOT, 'bench', 'results', 'quality.json'), JSON.stringify(result, null, 2) + '\n');

const f3 = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(3));
console.log(`Localizer ${m.locEntry.name} ${m.locEntry.version} on ${result.machine}`);
console.log('set            n   det   pixAUC  IoU    F1     score  forged  uncert  named-precision');
for (const [name, s] of [['all forged', result.forged], ...Object.entries(byTransform), ...Object.entries(byPhoto), ['real (neg.)', result.real]] as const) {
  console.log(
    `${String(name).padEnd(13)} ${String(s.samples).padStart(3)}  ${f3(s.detectionRate)} ${f3(s.pixelAuc)}  ${f3(s.iou)}  ${f3(s.f1)}  ${f3(s.meanFaceScore)}  ${f3(s.calledForged)}   ${f3(s.calledUncertain)}   ${f3(s.namedRegionPrecision)} (${s.namedRegions})`,
  );
}
console.log(`image-level AUC (forged vs real face score): ${f3(imageAuc)}`);
console.log(`written to bench/results/quality.json`);
await Promise.all([m.detector.close(), m.model.close()]);
void log;
