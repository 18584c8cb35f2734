// A loose quality floor for every forgery-localization model in the manifest, on the evaluation
// photos through the real detector and localizer: self-blended edits of both photos against the
// photos themselves and harmless re-saves. It catches a model that is broken (inverted, constant,
// fed the wrong crop or channel order: a constant model scores 0.5, an inverted one below), not
// one that is merely weaker (measured here: forensic-inconsistency 0.74 pixel AUC, 0.67 image
// AUC; learned-localizer run A 0.88, 0.69); the figures that compare models are make
// eval-localizer's. Nothing is fitted on it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decodeRgb, loadConfig, readManifest, type RgbImage } from '@tampertrace/shared';
import { astronautPng, cameraPng } from '@tampertrace/shared/testing';
import { loadDetector } from '@tampertrace/face-detection/load';
import { loadLocalizer } from '@tampertrace/forgery-localization/load';
import { cropRectFor } from '@tampertrace/forgery-localization/geometry';
import { pixelAuc } from '@tampertrace/forgery-localization/metrics';
import { makeSelfBlended } from '@tampertrace/forgery-localization/sbi';

const cfg = loadConfig({ ...process.env, TAMPERTRACE_ORT_WORKERS: '0' });
const limits = { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 };
let detector: Awaited<ReturnType<typeof loadDetector>>;
const forged: Array<{ img: RgbImage; gt: Uint8Array }> = [];
const real: RgbImage[] = [];

before(async () => {
  detector = await loadDetector(cfg);
  for (const png of [astronautPng(), cameraPng()]) {
    const src = await decodeRgb(png, limits);
    const [face] = await detector.detect(src);
    const sets = [['nose'], ['mouth', 'lip'], ['right eye', 'left eye'], ['right cheek', 'left cheek']];
    for (const [i, transform] of (['blur', 'colour', 'colour+blur', 'sharpen'] as const).entries()) {
      const s = await makeSelfBlended(src, face, { regions: sets[i], transform, seed: 500 + i });
      forged.push({ img: s.rgb, gt: s.gt });
    }
    real.push(src, await decodeRgb(await sharp(png).jpeg({ quality: 85 }).toBuffer(), limits), await decodeRgb(await sharp(png).flop().png().toBuffer(), limits));
  }
});

after(async () => {
  await detector?.close();
});

// The default localizer (what a user gets) must call none of the real photos forged; for the
// others that is a calibration figure, reported here and judged by make eval-localizer's
// default-model rule, so that a selectable model with a false alarm does not fail the suite.
const DEFAULT_LOCALIZER = loadConfig({}).TAMPERTRACE_LOCALIZER_MODEL;

test('every localizer in the manifest ranks self-blended edits above real photos and finds their pixels; the default calls no real photo forged', async (t) => {
  const names = (await readManifest(cfg.TAMPERTRACE_MODELS_MANIFEST)).models.filter((e) => e.task === 'forgery-localization').map((e) => e.name);
  for (const name of names) {
    const { localizer, model, entry } = await loadLocalizer({ ...cfg, TAMPERTRACE_LOCALIZER_MODEL: name });
    try {
      const score = async (img: RgbImage) => {
        const faces = await detector.detect(img);
        assert.equal(faces.length, 1, `${name}: one face`);
        return { faces, res: await localizer.localize(img, faces) };
      };
      const aucs: number[] = [];
      const forgedScores: number[] = [];
      for (const f of forged) {
        const { faces, res } = await score(f.img);
        forgedScores.push(res.faces[0].forgeryScore);
        const r = cropRectFor(faces[0].box, entry.cropScale ?? 1.5);
        const area = new Uint8Array(f.img.width * f.img.height);
        for (let y = Math.max(0, Math.floor(r.y)); y < Math.min(f.img.height, r.y + r.size); y++) for (let x = Math.max(0, Math.floor(r.x)); x < Math.min(f.img.width, r.x + r.size); x++) area[y * f.img.width + x] = 1;
        aucs.push(pixelAuc(res.heat, f.gt, area));
      }
      const realScores: number[] = [];
      for (const img of real) {
        const { res } = await score(img);
        realScores.push(res.faces[0].forgeryScore);
        if (res.verdict !== 'LIKELY_FORGED') continue;
        assert.notEqual(name, DEFAULT_LOCALIZER, `${name}, the default localizer: a real photo called forged (score ${res.faces[0].forgeryScore})`);
        t.diagnostic(`${name}: a real photo called LIKELY_FORGED (score ${res.faces[0].forgeryScore.toFixed(3)}, band ${entry.uncertainBand})`);
      }
      let u = 0;
      for (const a of forgedScores) for (const b of realScores) u += a > b ? 1 : a === b ? 0.5 : 0;
      const imageAuc = u / (forgedScores.length * realScores.length);
      const meanPixelAuc = aucs.reduce((a, b) => a + b, 0) / aucs.length;
      assert.ok(meanPixelAuc >= 0.6, `${name}: mean pixel AUC ${meanPixelAuc.toFixed(3)} in the face crops`);
      assert.ok(imageAuc >= 0.55, `${name}: image-level AUC ${imageAuc.toFixed(3)}`);
    } finally {
      await model.close();
    }
  }
});
