// Localizer quality on the two evaluation photos (testdata/faces), through the real detector and
// localizer, in two modes, each writing its own part of bench/results/quality.json and keeping
// the other's:
// - `node --import tsx bench/quality.ts` (part of `make bench`): the configured localizer and the
//   explainer on self-blended forgeries made here (`selfBlended`);
// - `node --import tsx bench/quality.ts --eval <dir> [--models a,b]` (`make eval-localizer`): every
//   forgery-localization model of the manifest (or those named), in one run on the same inputs and
//   the same detections, on the set models/learned-localizer/make_eval.py wrote (`localizerEval`).
// Nothing here is tuned on these figures: thresholds come from the manifest.
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, decodeRgb, loadConfig, readManifest, type RgbImage } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { SBI_TRANSFORMS, makeSelfBlended, type SbiTransform } from '@tampertrace/forgery-localization/sbi';
import { buildRegionMasks } from '@tampertrace/forgery-localization/regions';
import { maskScores, pixelAuc } from '@tampertrace/forgery-localization/metrics';
import { cropRectFor } from '@tampertrace/forgery-localization/geometry';
import { loadModels } from '../services/tampertrace/src/embedded.ts';
import { loadDetector } from '@tampertrace/face-detection/load';
import { loadLocalizer } from '@tampertrace/forgery-localization/load';
import { CAVEAT, BOOTSTRAP_RESAMPLES, compareWithBaseline, readEvalIndex, report, typeCorrect, type Figure, type GroupFigures, type Outcome } from './localizer-eval.ts';

const REGION_SETS = [['nose'], ['mouth', 'lip'], ['right eye', 'left eye'], ['right cheek', 'left cheek'], ['forehead'], ['nose', 'mouth', 'lip']];
const SEEDS = [101, 202];
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };

const cfg = loadConfig();
const RESULTS = path.join(REPO_ROOT, 'bench', 'results', 'quality.json');
const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${process.platform}/${process.arch}, node ${process.version}`;

/** Replaces one mode's part of quality.json, keeping the other's (a file from before the parts is the self-blended one). */
async function writePart(key: 'selfBlended' | 'localizerEval', value: unknown): Promise<void> {
  let old: Record<string, unknown> = {};
  try {
    old = JSON.parse(await readFile(RESULTS, 'utf8'));
  } catch {
    // first run
  }
  const parts = 'selfBlended' in old || 'localizerEval' in old ? old : Object.keys(old).length ? { selfBlended: old } : {};
  await mkdir(path.dirname(RESULTS), { recursive: true });
  await writeFile(RESULTS, JSON.stringify({ ...parts, [key]: value }, null, 2) + '\n');
}

/** The model the others are compared with (issue #17: the new one must beat it to become the default). */
const BASELINE = 'forensic-inconsistency';

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const evalDir = arg('--eval');
if (evalDir) await evaluateSet(path.resolve(evalDir), arg('--models')?.split(','));
else await selfBlended();

// ---------------------------------------------------------------------------------------------
// make eval-localizer: old and new localizers on make_eval.py's set.

/** Pixels inside the localizer crops of these faces: where the model looks, so where its pixel AUC is judged. */
function cropAreaOf(width: number, height: number, boxes: { x: number; y: number; width: number; height: number }[], cropScale: number): Uint8Array {
  const area = new Uint8Array(width * height);
  for (const b of boxes) {
    const r = cropRectFor(b, cropScale);
    for (let y = Math.max(0, Math.floor(r.y)); y < Math.min(height, Math.ceil(r.y + r.size)); y++)
      for (let x = Math.max(0, Math.floor(r.x)); x < Math.min(width, Math.ceil(r.x + r.size)); x++) area[y * width + x] = 1;
  }
  return area;
}

async function evaluateSet(dir: string, only?: string[]): Promise<void> {
  const indexBytes = await readFile(path.join(dir, 'index.jsonl'));
  const items = await readEvalIndex(dir);
  const manifest = await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST);
  const names = only ?? manifest.models.filter((e) => e.task === 'forgery-localization').map((e) => e.name);
  const detector = await loadDetector(cfg);
  const models = [];
  for (const name of names) models.push(await loadLocalizer({ ...cfg, TAMPERTRACE_LOCALIZER_MODEL: name }));
  const outcomes = new Map<string, Outcome[]>(names.map((n) => [n, []]));
  const started = Date.now();
  for (const [n, item] of items.entries()) {
    const img = await decodeRgb(await readFile(path.join(dir, item.file)), limits);
    let gt: Uint8Array | undefined;
    if (item.mask) {
      const { data, info } = await sharp(await readFile(path.join(dir, item.mask))).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      if (info.width !== img.width || info.height !== img.height) throw new Error(`${item.mask}: ${info.width}x${info.height}, its image ${item.file} is ${img.width}x${img.height}`);
      gt = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }
    // One detection for every model: the comparison is of localizers, on the same crops.
    const faces = await detector.detect(img);
    for (const m of models) {
      const res = await m.localizer.localize(img, faces);
      const top = res.faces.reduce<(typeof res.faces)[number] | undefined>((best, f) => (!best || f.forgeryScore > best.forgeryScore ? f : best), undefined);
      const o: Outcome = { item, faces: faces.length, score: top?.forgeryScore ?? 0, verdict: res.verdict ?? 'NO_FACE', typeThreshold: res.typeThreshold };
      if (top?.manipulations.length) {
        o.topType = top.manipulations[0].type;
        o.topProbability = top.manipulations[0].probability;
      }
      if (gt && gt.some((v) => v)) {
        o.iou = maskScores(res.mask, gt).iou;
        if (faces.length) o.pixelAuc = pixelAuc(res.heat, gt, cropAreaOf(img.width, img.height, faces.map((f) => f.box), m.entry.cropScale ?? 1.5));
      }
      outcomes.get(m.entry.name)!.push(o);
    }
    if ((n + 1) % 50 === 0) console.log(`${n + 1}/${items.length} images, ${((Date.now() - started) / 1000).toFixed(0)} s`);
  }
  const result = {
    date: new Date().toISOString(),
    machine,
    caveat: CAVEAT,
    set: { dir: path.relative(REPO_ROOT, dir), images: items.length, forged: items.filter((i) => !i.real).length, real: items.filter((i) => i.real).length, indexSha256: createHash('sha256').update(indexBytes).digest('hex') },
    method: [
      'Each image is decoded as the ingest stage does, faces found once by the real BlazeFace detector, and every model run on the same faces through the real stage code (crop, model, mask paste, verdict), thresholds from the manifest.',
      'meanIou: IoU of the full-image binary mask with the ground truth, forged images only, 0 when no face was found.',
      'pixelAuc: AUC of the heatmap against the ground truth over the pixels inside the face crops, forged images with a face found.',
      'imageAuc: the group\'s forged images against every real image of the set (byIdentity: that identity\'s real images), scored by the highest face score (0 without a face).',
      'realForged / realUncertain: share of the group\'s real images called LIKELY_FORGED / UNCERTAIN. forgedCalledForged: share of forged images called LIKELY_FORGED.',
      'typeAccuracy: forged images with known kinds whose highest-scoring face has as its top kind one of the true kinds, at or above the model\'s typeThreshold (below it the model reads "no edit found"); NaN for a model without a type output.',
      `Intervals: percentile bootstrap, ${BOOTSTRAP_RESAMPLES} resamples of images (forged and real resampled separately for the AUC).`,
    ],
    models: Object.fromEntries(
      models.map((m) => [
        m.entry.name,
        {
          version: m.entry.version,
          sha256: m.entry.sha256,
          pixelThreshold: m.entry.pixelThreshold,
          uncertainBand: m.entry.uncertainBand,
          typeThreshold: m.entry.typeThreshold,
          report: report(outcomes.get(m.entry.name)!),
          images: outcomes.get(m.entry.name)!.map((o) => ({ file: o.item.file, score: round(o.score), verdict: o.verdict, iou: round(o.iou), pixelAuc: round(o.pixelAuc), topType: o.topType, typeCorrect: typeCorrect(o) })),
        },
      ]),
    ),
  };
  const baseline = result.models[BASELINE]?.report;
  const comparison = baseline
    ? Object.fromEntries(Object.entries(result.models).filter(([n]) => n !== BASELINE).map(([n, x]) => [n, compareWithBaseline(baseline, x.report)]))
    : undefined;
  await writePart('localizerEval', { ...result, comparisonWithBaseline: { baseline: BASELINE, rule: 'issue #17: higher mean IoU and image-level AUC in every recipe/laundering cell, no more real photos called LIKELY_FORGED (point estimates; see the intervals)', models: comparison } });
  for (const m of models) printReport(m.entry.name, result.models[m.entry.name].report, outcomes.get(m.entry.name)!);
  for (const [n, c] of Object.entries(comparison ?? {})) {
    console.log(`\n${n} against ${BASELINE}: ${c.beatsOnEveryCell ? 'better' : 'not better'} in every one of ${c.cells} recipe/laundering cells and on real photos (point estimates)`);
    for (const l of c.losses) console.log(`  not better: ${l}`);
  }
  console.log(`\n${CAVEAT}\nwritten to bench/results/quality.json (localizerEval), ${((Date.now() - started) / 1000).toFixed(0)} s`);
  await Promise.all([detector.close(), ...models.map((m) => m.model.close())]);
}

function round(x: number | undefined): number | undefined {
  return x === undefined || Number.isNaN(x) ? undefined : Math.round(x * 1e4) / 1e4;
}

function printReport(name: string, r: ReturnType<typeof report>, outcomes: Outcome[]): void {
  const fig = (f: Figure) => (Number.isNaN(f.value) ? '        -        ' : `${f.value.toFixed(2)} [${Number.isNaN(f.lo) ? '  - ' : f.lo.toFixed(2)},${Number.isNaN(f.hi) ? '  - ' : f.hi.toFixed(2)}]`);
  console.log(`\n${name}: value [bootstrap 95% interval]`);
  console.log(`${'group'.padEnd(36)} forged real  ${['IoU', 'pixel AUC', 'image AUC', 'forged called F', 'real called F', 'real UNCERTAIN', 'type acc.'].map((h) => h.padEnd(17)).join(' ')}`);
  const row = (label: string, g: GroupFigures) =>
    console.log(
      `${label.padEnd(36)} ${String(g.forged).padStart(6)} ${String(g.real).padStart(4)}  ${[g.meanIou, g.pixelAuc, g.imageAuc, g.forgedCalledForged, g.realForged, g.realUncertain, g.typeAccuracy].map(fig).join(' ')}`,
    );
  row('overall', r.overall);
  row('trained recipes (new seeds)', r.trainedRecipes);
  row('held-out recipes', r.heldOutRecipes);
  row('clean', r.clean);
  row('laundered', r.laundered);
  for (const [k, g] of Object.entries(r.byRecipe)) row(`recipe ${k}${g.heldOut ? ' (held out)' : ''}`, g);
  for (const [k, g] of Object.entries(r.byRecipeAndLaundering)) row(`  ${k}`, g);
  // Launderings of forgeries; the real variants each get a word below instead of a row of dashes.
  for (const [k, g] of Object.entries(r.byLaundering)) if (g.forged) row(`laundering ${k}`, g);
  for (const [k, g] of Object.entries(r.byIdentity)) row(`identity ${k}`, g);
  const flagged = outcomes.filter((o) => o.item.real && (o.verdict === 'LIKELY_FORGED' || o.verdict === 'UNCERTAIN'));
  console.log(`real photos called LIKELY_FORGED or UNCERTAIN: ${flagged.length ? flagged.map((o) => `${o.item.file} ${o.verdict} (${o.score.toFixed(3)})`).join(', ') : 'none'}`);
}

// ---------------------------------------------------------------------------------------------
// make bench: the configured localizer and the explainer on self-blended forgeries made here.

async function selfBlended(): Promise<void> {
  const m = await loadModels(cfg);

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
            const area = cropAreaOf(width, height, r.faces.map((f) => f.box), m.locEntry.cropScale ?? 1.5);
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
  await writePart('selfBlended', result);

  const f3 = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(3));
  console.log(`Localizer ${m.locEntry.name} ${m.locEntry.version} on ${result.machine}`);
  console.log('set            n   det   pixAUC  IoU    F1     score  forged  uncert  named-precision');
  for (const [name, s] of [['all forged', result.forged], ...Object.entries(byTransform), ...Object.entries(byPhoto), ['real (neg.)', result.real]] as const) {
    console.log(
      `${String(name).padEnd(13)} ${String(s.samples).padStart(3)}  ${f3(s.detectionRate)} ${f3(s.pixelAuc)}  ${f3(s.iou)}  ${f3(s.f1)}  ${f3(s.meanFaceScore)}  ${f3(s.calledForged)}   ${f3(s.calledUncertain)}   ${f3(s.namedRegionPrecision)} (${s.namedRegions})`,
    );
  }
  console.log(`image-level AUC (forged vs real face score): ${f3(imageAuc)}`);
  console.log(`written to bench/results/quality.json (selfBlended)`);
  await Promise.all([m.detector.close(), m.model.close()]);
}
