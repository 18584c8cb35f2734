// Forgery localization for one image: crop each face with its surroundings, run the model,
// score the facial regions, paste masks back into the full image and decide a verdict.
import { cutFaceCrop, type FaceCropSpec, type RgbImage } from '@tampertrace/shared';
import { faceQuality, type FaceQualityName } from '@tampertrace/shared/face-landmarks';
import { faceRegions, mapRegions } from '@tampertrace/shared/face-regions';
import { cropRectFor, faceScore, pasteMask, thresholdMask, toCrop, type Box, type CropRect, type Point } from './geometry.ts';
import type { ForgeryModel } from './model.ts';
import { buildRegionLabels, regionLabelsFromPolygons, scoreRegions, type RegionScore } from './regions.ts';

export interface FaceInput {
  box: Box;
  score: number;
  keypoints: Point[];
  /** Face-mesh landmarks in image pixels (shared/src/face-landmarks.ts), when the detection stage ran the landmark model. */
  landmarks?: Point[];
  /** The landmark model's face-presence score, with landmarks. */
  landmarkPresence?: number;
  /** Head pose from the landmarks (degrees), with landmarks. */
  headPose?: { yawDeg: number; pitchDeg: number; rollDeg: number };
}

export interface LocalizedFace extends FaceInput {
  /** Whether the face can be judged (faceQuality): scored either way, read by the explanation. */
  quality: FaceQualityName;
  forgeryScore: number;
  regions: RegionScore[];
  /** Share of the face box's pixels inside the full-image mask. */
  maskedFraction: number;
  crop: CropRect;
  /**
   * The model's probability for each kind of edit (contract v2), highest first; empty when the
   * model has no type output. Kinds are ManipulationType names ("INPAINT").
   */
  manipulations: ManipulationScore[];
}

export interface ManipulationScore {
  type: string;
  probability: number;
}

export type Verdict = 'LIKELY_FORGED' | 'LIKELY_AUTHENTIC' | 'UNCERTAIN';

export interface Thresholds {
  /** Pixel probability at or above which a pixel is in the mask. */
  pixel: number;
  /** Face scores in [lo, hi) are UNCERTAIN; >= hi forged; < lo authentic. */
  band: [number, number];
  /** Share of the highest face pixels averaged into the face score. */
  faceTopFraction?: number;
  /** A kind of edit is found at or above this probability (contract v2; absent without a type output). */
  type?: number;
}

export interface LocalizationResult {
  faces: LocalizedFace[];
  /** width*height, 255 = forged pixel. */
  mask: Uint8Array;
  /** width*height, 255 x forgery probability. */
  heat: Uint8Array;
  verdict: Verdict | undefined;
  /** Thresholds.type, when the model has a type output. */
  typeThreshold?: number;
}

/** A face's type probabilities (in the manifest's `kinds` order) as scores, highest first; ties keep that order. */
export function rankManipulations(kinds: readonly string[], probs: Float32Array | undefined): ManipulationScore[] {
  if (!probs) return [];
  return kinds.map((type, i) => ({ type, probability: probs[i] })).sort((a, b) => b.probability - a.probability);
}

export function verdictFor(scores: number[], t: Thresholds): Verdict | undefined {
  if (scores.length === 0) return undefined;
  const max = Math.max(...scores);
  if (max >= t.band[1]) return 'LIKELY_FORGED';
  if (max < t.band[0]) return 'LIKELY_AUTHENTIC';
  return 'UNCERTAIN';
}

/** The square crop around a face, padded by repeating the border where it leaves the image, as CHW floats in [0,1]. */
export async function cropFace(img: RgbImage, rect: CropRect, size: number): Promise<Float32Array> {
  return rgbToChw(await cutFaceCrop(img, rect, size), size);
}

/** A packed RGB crop (cutFaceCrop's, or one the detection stage stored) as the model's CHW floats in [0,1]. */
export function rgbToChw(rgb: Uint8Array, size: number): Float32Array {
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = rgb[i * 3] / 255;
    out[plane + i] = rgb[i * 3 + 1] / 255;
    out[2 * plane + i] = rgb[i * 3 + 2] / 255;
  }
  return out;
}

export class Localizer {
  constructor(
    private readonly model: ForgeryModel,
    private readonly thresholds: Thresholds,
    private readonly cropScale = 1.5,
  ) {}

  /** What the detection stage must cut so that localizeCrops() can stand in for localize(). */
  get cropSpec(): FaceCropSpec {
    return { scale: this.cropScale, size: this.model.size };
  }

  /** The crop rectangles localize() cuts for these faces. */
  cropRects(faces: FaceInput[]): CropRect[] {
    return faces.map((f) => cropRectFor(f.box, this.cropScale));
  }

  async localize(img: RgbImage, faces: FaceInput[]): Promise<LocalizationResult> {
    const crops = await Promise.all(this.cropRects(faces).map((r) => cropFace(img, r, this.model.size)));
    return this.localizeCrops(img, faces, crops);
  }

  /**
   * localize() from crops already cut (CHW floats, one per face, at cropRects() and the model's
   * size): only the image's dimensions are needed, so the image need not be decoded here.
   */
  async localizeCrops(dims: { width: number; height: number }, faces: FaceInput[], crops: Float32Array[]): Promise<LocalizationResult> {
    const { width, height } = dims;
    const size = this.model.size;
    if (crops.length !== faces.length) throw new Error(`localizeCrops: ${crops.length} crops for ${faces.length} faces`);
    const mask = new Uint8Array(width * height);
    const heat = new Uint8Array(width * height);
    const rects = this.cropRects(faces);
    const outputs = await this.model.run(crops);
    const localized = faces.map((f, i): LocalizedFace => {
      const rect = rects[i];
      const out = outputs[i];
      const boxInCrop = (() => {
        const a = toCrop({ x: f.box.x, y: f.box.y }, rect, size);
        const b = toCrop({ x: f.box.x + f.box.width, y: f.box.y + f.box.height }, rect, size);
        return { x: a.x, y: a.y, width: b.x - a.x, height: b.y - a.y };
      })();
      // Regions from the landmarks when the landmark model placed the face, else the keypoint ones.
      const quality = faceQuality(f.box, f.landmarks && f.landmarks.length > 0 ? f.landmarkPresence : undefined);
      const fromMesh = quality !== 'TOO_DEGRADED' && f.landmarks ? faceRegions(f.landmarks, f.headPose?.yawDeg) : undefined;
      const regions = fromMesh
        ? regionLabelsFromPolygons(mapRegions(fromMesh, (p) => toCrop(p, rect, size)), size, size)
        : buildRegionLabels(
            f.keypoints.map((k) => toCrop(k, rect, size)),
            boxInCrop,
            size,
            size,
          );
      const polygons = new Map(fromMesh?.map((r) => [r.name as string, r.polygons]));
      const binary = thresholdMask(out.prob, this.thresholds.pixel);
      pasteMask(out.prob, size, rect, this.thresholds.pixel, width, height, mask, heat);
      return {
        ...f,
        crop: rect,
        // The whole crop, as the model's thresholds were calibrated (see its model card).
        forgeryScore: faceScore(out.prob, undefined, this.thresholds.faceTopFraction),
        quality,
        regions: scoreRegions(out.prob, binary, regions, { noise: out.noise, colour: out.colour, boundary: out.boundary }, size).map((r) =>
          polygons.has(r.name) ? { ...r, polygons: polygons.get(r.name) } : r,
        ),
        maskedFraction: 0,
        manipulations: rankManipulations(this.model.entry.manipulationTypes ?? [], out.types),
      };
    });
    for (const f of localized) f.maskedFraction = fractionInBox(mask, width, height, f.box);
    const typeThreshold = this.model.entry.typesOutput ? this.thresholds.type : undefined;
    return { faces: localized, mask, heat, verdict: verdictFor(localized.map((f) => f.forgeryScore), this.thresholds), typeThreshold };
  }
}

function fractionInBox(mask: Uint8Array, width: number, height: number, b: Box): number {
  const x0 = Math.max(0, Math.floor(b.x));
  const y0 = Math.max(0, Math.floor(b.y));
  const x1 = Math.min(width, Math.ceil(b.x + b.width));
  const y1 = Math.min(height, Math.ceil(b.y + b.height));
  let on = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (mask[y * width + x]) on++;
  const area = (x1 - x0) * (y1 - y0);
  return area > 0 ? on / area : 0;
}
