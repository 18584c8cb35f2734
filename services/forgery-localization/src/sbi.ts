// Self-blended forgeries (after Shiohara & Yamasaki's SBI): a transformed copy of a real face
// blended back into the same photo through a soft mask over chosen facial regions. The result
// has a known ground-truth mask, so the localizer and the explainer can be measured honestly.
import sharp from 'sharp';
import { rng, type RgbImage } from '@tampertrace/shared';
import type { Box, Point } from './geometry.ts';
import { buildRegionMasks } from './regions.ts';

export type SbiTransform = 'colour' | 'blur' | 'sharpen' | 'colour+blur';
export const SBI_TRANSFORMS: readonly SbiTransform[] = ['colour', 'blur', 'sharpen', 'colour+blur'];

export interface SbiOptions {
  /** Region names from REGION_NAMES to blend over (their union). */
  regions: string[];
  transform: SbiTransform;
  seed: number;
}

export interface SbiSample {
  rgb: RgbImage;
  /** 1 where the blend weight is at least 0.5, else 0 (width*height). */
  gt: Uint8Array;
  /** The soft blend weight in [0,1] (width*height). */
  weight: Float32Array;
  options: SbiOptions;
}

export { rng };

async function transformed(src: RgbImage, t: SbiTransform, rand: () => number): Promise<Buffer> {
  let p = sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } });
  if (t === 'colour' || t === 'colour+blur') {
    p = p.modulate({ brightness: 0.88 + rand() * 0.24, saturation: 0.7 + rand() * 0.6, hue: Math.round((rand() - 0.5) * 40) });
    p = p.linear([0.9 + rand() * 0.2, 0.9 + rand() * 0.2, 0.9 + rand() * 0.2], [0, 0, 0]);
  }
  if (t === 'blur' || t === 'colour+blur') p = p.blur(1 + rand() * 2);
  if (t === 'sharpen') p = p.sharpen({ sigma: 1 + rand(), m1: 2, m2: 4 });
  return p.raw().toBuffer();
}

export async function makeSelfBlended(src: RgbImage, face: { box: Box; keypoints: Point[] }, o: SbiOptions): Promise<SbiSample> {
  const { width, height } = src;
  const rand = rng(o.seed);
  const regions = buildRegionMasks(face.keypoints, face.box, width, height).filter((r) => o.regions.includes(r.name));
  if (regions.length === 0) throw new Error(`none of ${o.regions.join(', ')} is on the face`);
  const hard = new Uint8Array(width * height);
  for (const r of regions) for (let i = 0; i < hard.length; i++) if (r.mask[i]) hard[i] = 255;
  // A soft edge, as blending tools make: blur the hard mask by a few percent of the face size.
  const sigma = Math.max(1, face.box.width * (0.02 + rand() * 0.03));
  const soft = await sharp(hard, { raw: { width, height, channels: 1 } }).blur(sigma).extractChannel(0).raw().toBuffer();
  const tr = await transformed(src, o.transform, rand);
  const out = new Uint8Array(src.data.length);
  const weight = new Float32Array(width * height);
  const gt = new Uint8Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const w = soft[i] / 255;
    weight[i] = w;
    gt[i] = w >= 0.5 ? 1 : 0;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(src.data[i * 3 + c] * (1 - w) + tr[i * 3 + c] * w);
  }
  return { rgb: { data: out, width, height }, gt, weight, options: o };
}

export async function toPng(img: RgbImage): Promise<Buffer> {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png().toBuffer();
}
