// Measures the explanation's per-region cue levels on REAL faces that are not the evaluation
// faces: runs the real detector and localizer on registry packages' sample photos and laundered
// variants of them (JPEG, downscale, upscale, mirror), and sets each region family's level past
// what those real faces produce, so a natural catch-light, lip colour or skin texture does not
// read as an edit. Writes models/<model>/region-cue-thresholds.json and, with --write-manifest,
// the manifest entry's cueThresholds.regions. Also estimates false region claims per real photo
// with leave-one-photo-out levels.
//
// Usage: node --import tsx scripts/measure-cue-thresholds.ts [--write-manifest] [image files...]
// Without image files it takes the photos of the packages in SOURCES (npm pack, cached under
// .cache/npm-pack/). Never pass testdata/faces/* or scikit-image's astronaut/camera: those are
// the evaluation faces.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { REPO_ROOT, createLogger, decodeRgb, loadConfig, sha256Hex } from '@tampertrace/shared';
import { parseRegion } from '@tampertrace/shared/region-words';
import { FACES_DIR } from '@tampertrace/shared/testing';
import { explainerOptions, TemplateExplainer, type FaceQualityLabel, type RegionEvidence } from '../services/explanation-generation/src/explainer.ts';
import { makeSelfBlended, SBI_TRANSFORMS } from '../services/forgery-localization/src/sbi.ts';
import { REGION_NAMES } from '../services/forgery-localization/src/regions.ts';
import { loadModels } from '../services/tampertrace/src/embedded.ts';

/** Real face photos from registry packages (licences as the packages declare them). Used to measure levels only; never shipped. */
const SOURCES: { spec: string; registry: 'npm' | 'pypi'; licence: string; files: string[] }[] = [
  { spec: '@vladmandic/face-api@1.7.15', registry: 'npm', licence: 'MIT', files: ['package/demo/sample1.jpg', 'package/demo/sample2.jpg', 'package/demo/sample3.jpg', 'package/demo/sample4.jpg', 'package/demo/sample5.jpg', 'package/demo/sample6.jpg'] },
  { spec: '@vladmandic/human@3.3.6', registry: 'npm', licence: 'MIT', files: ['package/assets/samples.jpg'] },
  { spec: 'tracking@1.1.3', registry: 'npm', licence: 'BSD', files: ['package/examples/assets/faces.jpg'] },
  { spec: 'face_recognition==1.3.0', registry: 'pypi', licence: 'MIT', files: ['biden.jpg', 'obama.jpg', 'obama2.jpg', 'obama3.jpg', 'obama_partial_face.jpg', 'obama_partial_face2.jpg'].map((f) => `face_recognition-1.3.0/tests/test_images/${f}`) },
];
/**
 * The level is the highest real value (the lowest for blur) plus a margin times that value's
 * distance from the family's median, never laxer than the global level; the margin is chosen
 * among these, held out by photo (quantiles below the maximum left about one false claim per
 * real face image: 0.99 gave 0.99 per face, held out).
 */
const MARGINS = [0, 0.25, 0.5, 1, 2];
/** The target: at most one false region claim per 20 real photos. */
const TARGET_FALSE_CLAIMS = 0.05;
/** Region sets the forgeries edit, in the localizer's region names. */
const FORGED_SETS = [['nose'], ['mouth', 'lip', 'lips'], ['right cheek', 'left cheek'], ['right eye', 'left eye'], ['forehead'], ['chin', 'jaw']];
const limits = { maxInputBytes: 100e6, maxPixels: 100e6, minSide: 32 };

const args = process.argv.slice(2);
const writeManifest = args.includes('--write-manifest');
const files = args.filter((a) => !a.startsWith('--'));

/** A member of a package's archive: `npm pack` (npm) or `pip download --no-binary` (PyPI sdist), cached under .cache/. */
function packed(spec: string, registry: 'npm' | 'pypi', member: string): string {
  const dir = path.join(REPO_ROOT, '.cache', registry === 'npm' ? 'npm-pack' : 'pypi-sdist', spec.replace(/[^A-Za-z0-9._@=-]/g, '_'));
  const out = path.join(dir, 'x', member);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const archive = () => readdirSync(dir).find((f) => f.endsWith('.tgz') || f.endsWith('.tar.gz'));
  let tgz = archive();
  if (!tgz) {
    if (registry === 'npm') execFileSync('npm', ['pack', spec, '--pack-destination', dir, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
    else execFileSync('pip', ['download', '--no-deps', '--no-binary', ':all:', '-d', dir, spec], { stdio: ['ignore', 'ignore', 'inherit'] });
    tgz = archive()!;
  }
  mkdirSync(path.join(dir, 'x'), { recursive: true });
  execFileSync('tar', ['xzf', path.join(dir, tgz), '-C', path.join(dir, 'x'), member]);
  return out;
}

const photos: { name: string; file: string; licence: string }[] = files.length
  ? files.map((f) => ({ name: path.basename(f), file: f, licence: 'given' }))
  : SOURCES.flatMap((s) => s.files.map((m) => ({ name: `${s.spec}/${m}`, file: packed(s.spec, s.registry, m), licence: s.licence })));

// The evaluation faces must not be among them (byte-identical or the same pixels at any size).
const evalFaces = await Promise.all(readdirSync(FACES_DIR).filter((f) => f.endsWith('.png')).map(async (f) => sharp(readFileSync(path.join(FACES_DIR, f))).resize(16, 16, { fit: 'fill' }).greyscale().raw().toBuffer()));
for (const p of photos) {
  const small = await sharp(readFileSync(p.file)).resize(16, 16, { fit: 'fill' }).greyscale().raw().toBuffer();
  for (const e of evalFaces) {
    const d = small.reduce((a, v, i) => a + Math.abs(v - e[i]), 0) / small.length;
    if (d < 6) throw new Error(`${p.name} looks like an evaluation face (mean difference ${d.toFixed(1)} grey levels): refusing to measure on it`);
  }
}

/** Laundered variants: what real photos go through on their way to a moderator. */
const VARIANTS: [string, (s: Sharp, w: number) => Sharp][] = [
  ['original', (s) => s.png()],
  ['jpeg-q80-half', (s, w) => s.resize(Math.round(w / 2)).jpeg({ quality: 80 })],
  ['jpeg-q60', (s) => s.jpeg({ quality: 60 })],
  ['upscale-1.5-jpeg-q90', (s, w) => s.resize(Math.round(w * 1.5)).jpeg({ quality: 90 })],
  ['mirror', (s) => s.flop().png()],
];

const cfg = loadConfig();
createLogger('measure-cue-thresholds', 'warn');
const m = await loadModels(cfg);
const global = new TemplateExplainer(explainerOptions({ cueThresholds: { ...m.locEntry.cueThresholds, regions: undefined }, typeThreshold: m.locEntry.typeThreshold }));

interface Forgery {
  photo: string;
  quality?: FaceQualityLabel;
  transform: string;
  edited: string[];
  regions: RegionEvidence[];
}
interface Sample {
  photo: string;
  quality?: FaceQualityLabel;
  variant: string;
  face: number;
  verdict: string;
  regions: RegionEvidence[];
}
// The localizer's outputs are cached per model, so the levels can be recomputed without it.
const cache = path.join(REPO_ROOT, '.cache', `cue-threshold-samples-${m.locEntry.name}-${m.locEntry.sha256.slice(0, 12)}.json`);
const fromCache = args.includes('--from-cache') && existsSync(cache);
const { samples, forgeries }: { samples: Sample[]; forgeries: Forgery[] } = fromCache ? JSON.parse(readFileSync(cache, 'utf8')) : { samples: [], forgeries: [] };
for (const [k, p] of (fromCache ? [] : photos).entries()) {
  const bytes = readFileSync(p.file);
  const width = (await sharp(bytes).metadata()).width!;
  for (const [variant, f] of VARIANTS) {
    const img = await decodeRgb(await f(sharp(bytes).rotate(), width).toBuffer(), limits);
    // As the stages pass them on: the landmark geometry goes with each face, so regions are the
    // landmark polygons where the mesh could place the face.
    const faces = (await m.detector.detect(img)).map((f) => ({ ...f, landmarks: f.geometry?.landmarks, landmarkPresence: f.geometry?.presence, headPose: f.geometry?.headPose }));
    const loc = await m.localizer.localize(img, faces);
    loc.faces.forEach((face, i) => samples.push({ photo: p.name, variant, face: i, verdict: loc.verdict ?? 'LIKELY_FORGED', quality: face.quality, regions: face.regions }));
    console.error(`[measure] ${p.name} ${variant}: ${loc.faces.length} faces`);
    // Self-blended forgeries of the same real photos (never the evaluation faces), to see what
    // each margin costs in region claims that are right: the photo's most confident face, four
    // edits (one per transform) of rotating region sets.
    if (variant !== 'original' || faces.length === 0) continue;
    for (const [t, transform] of SBI_TRANSFORMS.entries()) {
      // Region names as the localizer's region builder has them (they change with its geometry).
      const set = FORGED_SETS[(k + t) % FORGED_SETS.length].filter((r) => (REGION_NAMES as readonly string[]).includes(r));
      if (set.length === 0) continue;
      const forged = await makeSelfBlended(img, faces[0], { regions: set, transform, seed: 1000 + 10 * k + t });
      const out = await m.localizer.localize(forged.rgb, [faces[0]]);
      forgeries.push({ photo: p.name, transform, edited: set, quality: out.faces[0].quality, regions: out.faces[0].regions });
    }
  }
}
if (!fromCache) writeFileSync(cache, JSON.stringify({ samples, forgeries }));

type Levels = { blurBelow: number; sharpenAbove: number; colourAbove: number; boundaryAbove: number };
/** Past the extreme of `xs` (the top one, or the bottom one with `low`) by `margin` of its distance from the median. */
const beyond = (xs: number[], margin: number, low = false) => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const median = s[Math.floor(s.length / 2)];
  const extreme = low ? s[0] : s[s.length - 1];
  return extreme + margin * (extreme - median);
};
const round = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;
function levelsFrom(ss: Sample[], margin: number): Record<string, Levels & { samples: number }> {
  const byFamily = new Map<string, RegionEvidence[]>();
  for (const s of ss) for (const r of s.regions) {
    const fam = parseRegion(r.name)?.family;
    if (fam) byFamily.set(fam, [...(byFamily.get(fam) ?? []), r]);
  }
  const g = global.options;
  const out: Record<string, Levels & { samples: number }> = {};
  for (const [fam, rs] of [...byFamily].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const vals = (k: keyof RegionEvidence['cues']) => rs.map((r) => r.cues[k]).filter((v): v is number => Number.isFinite(v));
    const lo = beyond(vals('noiseLogRatio'), margin, true);
    const hi = beyond(vals('noiseLogRatio'), margin);
    const col = beyond(vals('colourDelta'), margin);
    const bnd = beyond(vals('boundaryStrength'), margin);
    out[fam] = {
      blurBelow: round(Math.min(g.blurBelow, lo ?? g.blurBelow)),
      sharpenAbove: round(Math.max(g.sharpenAbove, hi ?? g.sharpenAbove)),
      colourAbove: round(Math.max(g.colourAbove, col ?? g.colourAbove), 1),
      boundaryAbove: round(Math.max(g.boundaryAbove, bnd ?? g.boundaryAbove)),
      samples: rs.length,
    };
  }
  return out;
}
const strip = (l: Record<string, Levels & { samples: number }>) => Object.fromEntries(Object.entries(l).map(([k, { samples: _n, ...v }]) => [k, v]));

/** The template's region claims on one face's evidence with these levels (as if the face had been called forged). */
function claimsWith(regions: Record<string, Partial<Levels>> | undefined) {
  const ex = new TemplateExplainer({ ...explainerOptions({ cueThresholds: { ...m.locEntry.cueThresholds, regions }, typeThreshold: m.locEntry.typeThreshold }), maxRegionsPerFace: 100 });
  // Faces too small or too degraded to judge get no claims, as served.
  return (rs: RegionEvidence[], quality?: FaceQualityLabel) => ex.claims({ faceIndex: 0, forgeryScore: 1, regions: rs, quality }, 'LIKELY_FORGED').map((c) => c.region.name);
}

/**
 * One margin, held out by photo: the levels come from the other photos' real faces; false claims
 * are counted on this photo's real faces, right and wrong claims on its forgeries.
 */
function heldOut(margin: number) {
  let falseClaims = 0;
  let claimed = 0;
  let right = 0;
  let edited = 0;
  for (const p of photos) {
    const claims = claimsWith(strip(levelsFrom(samples.filter((s) => s.photo !== p.name), margin)));
    for (const s of samples.filter((x) => x.photo === p.name)) falseClaims += claims(s.regions, s.quality).length;
    for (const f of forgeries.filter((x) => x.photo === p.name)) {
      const c = claims(f.regions, f.quality);
      claimed += c.length;
      right += c.filter((r) => f.edited.includes(r)).length;
      edited += f.edited.length;
    }
  }
  return {
    margin,
    falseClaimsPerRealFaceImage: round(falseClaims / samples.length, 3),
    forgeryRegionPrecision: claimed ? round(right / claimed, 3) : null,
    forgeryRegionRecall: edited ? round(right / edited, 3) : null,
  };
}

const sweep = MARGINS.map(heldOut);
// The smallest margin whose held-out false claims meet the target; without one, the margin with
// the fewest (ties: the smaller margin, which keeps more right claims).
const meeting = sweep.find((x) => x.falseClaimsPerRealFaceImage <= TARGET_FALSE_CLAIMS);
const chosen = meeting ?? [...sweep].sort((a, b) => a.falseClaimsPerRealFaceImage - b.falseClaimsPerRealFaceImage || a.margin - b.margin)[0];
const levels = levelsFrom(samples, chosen.margin);
const faceImages = samples.length;
const report = {
  model: m.locEntry.name,
  method: `Real faces from registry packages (never the evaluation faces), each photo also ${VARIANTS.slice(1).map(([v]) => v).join(', ')}; per region family, the level is the most extreme real regional cue value (highest; lowest for blur) plus a margin times its distance from the family's median, never laxer than the model's global level. The margin is chosen by holding out one photo at a time: the smallest margin of ${MARGINS.join(', ')} whose held-out false region claims per real face image are at most ${TARGET_FALSE_CLAIMS}, else the one with the fewest. A false claim is a region of a real face the template would name (coverage >= minCoverage and a cue past its level), counted as if every face had been called forged. Forgeries: self-blended edits (sbi.ts) of the same photos' most confident face, one per transform, scored with held-out levels too.`,
  sources: photos.map((p) => ({ name: p.name, licence: p.licence, sha256: sha256Hex(readFileSync(p.file)) })),
  faceImages,
  photoVariants: new Set(samples.map((s) => `${s.photo}|${s.variant}`)).size,
  forgeries: forgeries.length,
  verdictsOfRealFaces: Object.fromEntries([...new Set(samples.map((s) => s.verdict))].map((v) => [v, samples.filter((s) => s.verdict === v).length])),
  qualityOfRealFaces: Object.fromEntries([...new Set(samples.map((s) => s.quality ?? 'UNSPECIFIED'))].map((q) => [q, samples.filter((s) => (s.quality ?? 'UNSPECIFIED') === q).length])),
  falseClaimsWithGlobalLevels: { total: samples.reduce((n, s) => n + claimsWith(undefined)(s.regions, s.quality).length, 0), perRealFaceImage: round(samples.reduce((n, s) => n + claimsWith(undefined)(s.regions, s.quality).length, 0) / faceImages, 3) },
  heldOutByMargin: sweep,
  chosenMargin: chosen.margin,
  targetMet: meeting !== undefined,
  inSampleFalseClaimsWithChosenLevels: samples.reduce((n, s) => n + claimsWith(strip(levels))(s.regions, s.quality).length, 0),
  regions: levels,
};
const out = path.join(REPO_ROOT, path.dirname(m.locEntry.path), 'region-cue-thresholds.json');
writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
console.log(JSON.stringify({ ...report, method: undefined, regions: undefined, sources: report.sources.length }, null, 2));
console.log(`wrote ${path.relative(REPO_ROOT, out)}`);
if (writeManifest) {
  const manifestPath = cfg.TAMPERTRACE_MODELS_MANIFEST;
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { models: { name: string; cueThresholds?: Record<string, unknown> }[] };
  const entry = manifest.models.find((e) => e.name === m.locEntry.name)!;
  entry.cueThresholds = { ...entry.cueThresholds, regions: strip(levels) };
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote cueThresholds.regions of ${entry.name} into ${path.relative(REPO_ROOT, manifestPath)}`);
}
await m.model.close?.();
await m.detector.close?.();
process.exit(0);
