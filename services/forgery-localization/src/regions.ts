/**
 * Region prompter: scores facial regions on a crop's forgery map and cue maps.
 *
 * Regions come from the face mesh when the face has one (shared/src/face-regions.ts: polygons,
 * rasterised here by `regionLabelsFromPolygons`); faces without landmarks (analyses of older
 * detection stages, faces the landmark model could not place) fall back to the coarse regions
 * below, built from the 6 BlazeFace keypoints (`buildRegionLabels`), which have no polygons.
 *
 * Everything here works in CROP coordinates (the 256x256 model input, see geometry.ts):
 * keypoints, face box and polygons must already be mapped with `toCrop`. Pure, no I/O.
 *
 * Keypoint fallback. Keypoints, MediaPipe order: 0 right eye, 1 left eye, 2 nose tip, 3 mouth
 * centre, 4 right ear tragion, 5 left ear tragion. "Right"/"left" are from the subject's point
 * of view; region names follow the keypoint identity, so they stay correct for rolled faces.
 * Face-aligned frame: origin at the midpoint of the eyes, unit length d = inter-ocular
 * distance, u axis along the eye line from the right eye to the left eye, v axis
 * perpendicular to it pointing towards the mouth. Every region is an ellipse / polygon in
 * (u, v). Layout constants are in `REGION_LAYOUT` (all in units of d). The regions form a
 * partition of the face layer with one exception kept from before landmarks: "lip" is the core
 * of the "mouth" ellipse and is written to the zone layer, so its pixels count for both (with
 * landmarks "mouth" is the inner mouth only and "lip" lies around it). Priority where shapes
 * overlap: eyes > eyebrows > mouth > nose > ears > chin > cheeks > jaw > forehead > skin > hair.
 */

import type { Box, Point } from './geometry.ts';

import { NO_REGION, REGION_NAMES, rasteriseRegions, type FaceRegion, type RegionLabelMaps, type RegionPolygon } from '@tampertrace/shared/face-regions';

// The vocabulary lives in shared/src/face-regions.ts (the console and explanation read it too).
export { NO_REGION, REGION_FAMILIES, REGION_NAMES, ZONE_NAMES, regionFamily, type RegionFamily, type RegionName } from '@tampertrace/shared/face-regions';

/** Layout of the regions in the face-aligned frame, in units of the inter-ocular distance d. */
export const REGION_LAYOUT = Object.freeze({
  /** Eye ellipse semi-axes (0.45d x 0.25d overall). */
  eyeRx: 0.225,
  eyeRy: 0.125,
  /** Eyebrow ellipse: centred this far above each eye, semi-axes. */
  browDv: -0.33,
  browRx: 0.3,
  browRy: 0.1,
  /** Nose trapezoid: top edge on the bridge between the eyes, bottom edge below the tip. */
  noseTopV: -0.05,
  noseTopHalfWidth: 0.1,
  noseBelowTip: 0.12,
  noseBottomHalfWidth: 0.225,
  /** Mouth ellipse (0.9d x 0.4d overall) and its lip core (subset of mouth). */
  mouthRx: 0.45,
  mouthRy: 0.2,
  lipRx: 0.36,
  lipRy: 0.14,
  /** Cheeks: from below the eyes down to just below the mouth corners, out to the face edge. */
  cheekTopV: 0.15,
  cheekBelowMouth: 0.05,
  /** Chin: below the mouth, half-width around the mouth's u. */
  chinBelowMouth: 0.22,
  chinHalfWidth: 0.42,
  /** Jaw: band of this thickness inside the lower face outline (below the nose tip). */
  jawBand: 0.28,
  /** Forehead: face outline above this v (the eyebrows take priority). */
  foreheadBottomV: -0.2,
  /** Face outline: top v, widest-line v, chin bottom below the mouth, width factor from the ear tragions. */
  faceTopV: -1.0,
  faceWidestV: 0.3,
  chinBottomBelowMouth: 0.65,
  faceWidthFromEar: 0.92,
  faceHalfWidthMin: 0.6,
  faceHalfWidthMax: 1.6,
  /** Ear ellipse: centre shifted outwards / upwards from the tragion, semi-axes. */
  earOut: 0.1,
  earDv: -0.05,
  earRx: 0.16,
  earRy: 0.3,
  /** Hair: band of this thickness above the face outline, only above this v. */
  hairBand: 0.25,
  hairBelowV: -0.35,
});

export interface RegionMask {
  name: string;
  /** width*height, 0/1. */
  mask: Uint8Array;
  /** Number of pixels set. */
  area: number;
}

export interface BuildRegionOptions {
  /** Emit the optional "hair" band (default true). */
  includeHair?: boolean;
  /**
   * Classify every pixel instead of only those inside the shapes' bounding box. Same result,
   * slower: for checking the bound.
   */
  scanAll?: boolean;
}

/** REGION_NAMES index of "lip" and of "mouth", the one region it lies inside (keypoint fallback). */
const LIP = REGION_NAMES.indexOf('lip');
const MOUTH = REGION_NAMES.indexOf('mouth');

/**
 * The regions of one face as label maps (shared/src/face-regions.ts): one byte per pixel and
 * layer instead of a mask per region, so they are built and scored in one pass.
 */
export type RegionLabels = RegionLabelMaps;

/** The label maps of regions drawn from the landmarks, polygons already in crop pixels. */
export function regionLabelsFromPolygons(regions: readonly FaceRegion[], width: number, height: number): RegionLabels {
  return rasteriseRegions(regions, width, height);
}

interface Local {
  u: number;
  v: number;
}

/**
 * Labels each pixel (its centre tested) with its facial region, from keypoints and face box, both
 * in crop coordinates.
 *
 * Robustness: at least the two eyes are needed for the frame; if they coincide (or are not
 * finite) the keypoints are replaced by a canonical layout derived from the face box. Missing
 * nose / mouth keypoints fall back to canonical positions; nose and mouth are clamped to a
 * plausible vertical order. Ears are drawn only when their keypoints are present; the face
 * outline's half-width on each side comes from the ear tragion (x0.92) or, without a usable
 * ear, from the face box width.
 */
export function buildRegionLabels(
  keypoints: Point[],
  faceBox: Box,
  width: number,
  height: number,
  options: BuildRegionOptions = {},
): RegionLabels {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`invalid mask size ${width}x${height}`);
  }
  const L = REGION_LAYOUT;
  const includeHair = options.includeHair ?? true;
  const finite = (p: Point | undefined): p is Point => !!p && Number.isFinite(p.x) && Number.isFinite(p.y);

  let kp: (Point | undefined)[] = keypoints.slice(0, 6);
  const eyesOk =
    finite(kp[0]) && finite(kp[1]) && Math.hypot(kp[1]!.x - kp[0]!.x, kp[1]!.y - kp[0]!.y) >= 1;
  if (!eyesOk) kp = canonicalKeypoints(faceBox);
  const re = kp[0]!;
  const le = kp[1]!;

  // Face-aligned frame.
  const ox = (re.x + le.x) / 2;
  const oy = (re.y + le.y) / 2;
  const d = Math.hypot(le.x - re.x, le.y - re.y);
  const exx = (le.x - re.x) / d;
  const exy = (le.y - re.y) / d;
  const eyx = -exy; // ey = ex rotated by +90 degrees (y down): upright face -> (0, 1)
  const eyy = exx;
  const toLocal = (p: Point): Local => {
    const dx = p.x - ox;
    const dy = p.y - oy;
    return { u: (dx * exx + dy * exy) / d, v: (dx * eyx + dy * eyy) / d };
  };

  const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);
  const nose = finite(kp[2]) ? toLocal(kp[2]) : { u: 0, v: 0.6 };
  nose.u = clamp(nose.u, -0.5, 0.5);
  nose.v = clamp(nose.v, 0.3, 1.2);
  const mouth = finite(kp[3]) ? toLocal(kp[3]) : { u: nose.u, v: nose.v + 0.55 };
  mouth.u = clamp(mouth.u, -0.5, 0.5);
  mouth.v = clamp(mouth.v, nose.v + 0.25, nose.v + 1.2);
  const rEar = finite(kp[4]) ? toLocal(kp[4]) : undefined;
  const lEar = finite(kp[5]) ? toLocal(kp[5]) : undefined;

  // Face outline: egg shape in (u, v), widest at faceWidestV; superellipse (p=3) above that
  // line (broad forehead), ellipse (p=2) below (tapering jaw); separate half-widths per side.
  const boxHalf = clamp((faceBox.width / (2 * d)) * 0.95, L.faceHalfWidthMin, L.faceHalfWidthMax);
  const sideHalf = (ear: Local | undefined, sign: number): number => {
    if (!ear || ear.u * sign <= 0) return boxHalf;
    return clamp(Math.abs(ear.u) * L.faceWidthFromEar, L.faceHalfWidthMin, L.faceHalfWidthMax);
  };
  const wRight = sideHalf(rEar, -1);
  const wLeft = sideHalf(lEar, 1);
  const vTop = L.faceTopV;
  const vWide = L.faceWidestV;
  const vBottom = mouth.v + L.chinBottomBelowMouth;
  /** <= 1 inside the outline grown by `grow` (negative shrinks). */
  const outline = (u: number, v: number, grow: number): number => {
    const a = (u < 0 ? wRight : wLeft) + grow;
    if (a <= 0) return Infinity;
    if (v < vWide) {
      const b = vWide - vTop + grow;
      const p = Math.abs(u / a);
      const q = Math.abs((v - vWide) / b);
      return p * p * p + q * q * q;
    }
    const b = vBottom - vWide + grow;
    if (b <= 0) return Infinity;
    const p = u / a;
    const q = (v - vWide) / b;
    return p * p + q * q;
  };

  const inEllipse = (u: number, v: number, cu: number, cv: number, rx: number, ry: number) => {
    const a = (u - cu) / rx;
    const b = (v - cv) / ry;
    return a * a + b * b <= 1;
  };
  const lerp = (a: number, b: number, t: number) => a + (b - a) * clamp(t, 0, 1);
  // Facial midline (eye midpoint -> nose tip -> mouth) and the half-width kept free for the
  // nose / mouth when carving the cheeks.
  const midline = (v: number) =>
    v <= nose.v ? lerp(0, nose.u, v / nose.v) : lerp(nose.u, mouth.u, (v - nose.v) / (mouth.v - nose.v));
  const innerHalf = (v: number) =>
    v <= nose.v
      ? lerp(0.25, 0.3, (v - L.cheekTopV) / (nose.v - L.cheekTopV))
      : lerp(0.3, L.mouthRx + 0.05, (v - nose.v) / (mouth.v - nose.v));
  const noseBottomV = nose.v + L.noseBelowTip;
  const inNose = (u: number, v: number): boolean => {
    if (v < L.noseTopV || v > noseBottomV) return false;
    const t = (v - L.noseTopV) / (noseBottomV - L.noseTopV);
    const c = lerp(0, nose.u, t);
    const hw = lerp(L.noseTopHalfWidth, L.noseBottomHalfWidth, t);
    return Math.abs(u - c) <= hw;
  };

  // Labels: index into REGION_NAMES; classify() never returns LIP: lip is the mouth's core.
  const R_EYE = 0, L_EYE = 1, R_BROW = 2, L_BROW = 3, NOSE = 4;
  const R_CHEEK = 7, L_CHEEK = 8, FOREHEAD = 9, CHIN = 10, JAW = 11, R_EAR = 12, L_EAR = 13;
  const SKIN = 14, HAIR = 15, NONE = -1;
  const rEyeC = toLocal(re);
  const lEyeC = toLocal(le);
  const classify = (u: number, v: number): number => {
    if (inEllipse(u, v, rEyeC.u, rEyeC.v, L.eyeRx, L.eyeRy)) return R_EYE;
    if (inEllipse(u, v, lEyeC.u, lEyeC.v, L.eyeRx, L.eyeRy)) return L_EYE;
    if (inEllipse(u, v, rEyeC.u, rEyeC.v + L.browDv, L.browRx, L.browRy)) return R_BROW;
    if (inEllipse(u, v, lEyeC.u, lEyeC.v + L.browDv, L.browRx, L.browRy)) return L_BROW;
    if (inEllipse(u, v, mouth.u, mouth.v, L.mouthRx, L.mouthRy)) return MOUTH;
    if (inNose(u, v)) return NOSE;
    if (rEar && inEllipse(u, v, rEar.u - L.earOut, rEar.v + L.earDv, L.earRx, L.earRy)) return R_EAR;
    if (lEar && inEllipse(u, v, lEar.u + L.earOut, lEar.v + L.earDv, L.earRx, L.earRy)) return L_EAR;
    const inside = outline(u, v, 0) <= 1;
    if (inside) {
      if (v >= mouth.v + L.chinBelowMouth && Math.abs(u - mouth.u) <= L.chinHalfWidth) return CHIN;
      if (v >= L.cheekTopV && v <= mouth.v + L.cheekBelowMouth) {
        const m = midline(v);
        const hw = innerHalf(v);
        if (u <= m - hw) return R_CHEEK;
        if (u >= m + hw) return L_CHEEK;
      }
      if (v >= nose.v && outline(u, v, -L.jawBand) > 1) return JAW;
      if (v <= L.foreheadBottomV) return FOREHEAD;
      return SKIN;
    }
    if (includeHair && v <= L.hairBelowV && outline(u, v, L.hairBand) <= 1) return HAIR;
    return NONE;
  };

  const labels = new Uint8Array(width * height).fill(NO_REGION);
  const zones = new Uint8Array(width * height).fill(NO_REGION);
  const areas = new Array<number>(REGION_NAMES.length).fill(0);
  // Only pixels inside the bounding box of every shape can get a label: a crop is mostly
  // background, and a full-size image (the self-blended forgeries) far more so.
  const { x0, y0, x1, y1 } = options.scanAll
    ? { x0: 0, y0: 0, x1: width, y1: height }
    : (() => {
        const hairGrow = includeHair ? L.hairBand : 0;
        const ears = [rEar && { u: rEar.u - L.earOut, v: rEar.v + L.earDv }, lEar && { u: lEar.u + L.earOut, v: lEar.v + L.earDv }].filter((e): e is Local => !!e);
        const uMin = Math.min(-wRight - hairGrow, rEyeC.u - L.browRx, lEyeC.u - L.browRx, mouth.u - L.mouthRx, Math.min(0, nose.u) - L.noseBottomHalfWidth, ...ears.map((e) => e.u - L.earRx));
        const uMax = Math.max(wLeft + hairGrow, rEyeC.u + L.browRx, lEyeC.u + L.browRx, mouth.u + L.mouthRx, Math.max(0, nose.u) + L.noseBottomHalfWidth, ...ears.map((e) => e.u + L.earRx));
        const vMin = Math.min(vTop - hairGrow, rEyeC.v + L.browDv - L.browRy, lEyeC.v + L.browDv - L.browRy, rEyeC.v - L.eyeRy, lEyeC.v - L.eyeRy, L.noseTopV, ...ears.map((e) => e.v - L.earRy));
        const vMax = Math.max(vBottom, mouth.v + L.mouthRy, noseBottomV, rEyeC.v + L.eyeRy, lEyeC.v + L.eyeRy, ...ears.map((e) => e.v + L.earRy));
        // The (u, v) rectangle's corners in pixels; one pixel of margin against rounding.
        const xs: number[] = [];
        const ys: number[] = [];
        for (const u of [uMin, uMax]) {
          for (const v of [vMin, vMax]) {
            xs.push(ox + d * (u * exx + v * eyx));
            ys.push(oy + d * (u * exy + v * eyy));
          }
        }
        return {
          x0: Math.max(0, Math.floor(Math.min(...xs)) - 1),
          y0: Math.max(0, Math.floor(Math.min(...ys)) - 1),
          x1: Math.min(width, Math.ceil(Math.max(...xs)) + 1),
          y1: Math.min(height, Math.ceil(Math.max(...ys)) + 1),
        };
      })();
  for (let y = y0; y < y1; y++) {
    const dy = y + 0.5 - oy;
    for (let x = x0; x < x1; x++) {
      const dx = x + 0.5 - ox;
      const u = (dx * exx + dy * exy) / d;
      const v = (dx * eyx + dy * eyy) / d;
      const label = classify(u, v);
      if (label === NONE) continue;
      if (label === MOUTH && inEllipse(u, v, mouth.u, mouth.v, L.lipRx, L.lipRy)) {
        zones[y * width + x] = LIP;
        areas[LIP]++;
      }
      labels[y * width + x] = label;
      areas[label]++;
    }
  }
  return { width, height, labels, zones, areas };
}

/**
 * The same regions as one 0/1 mask each (width*height), in REGION_NAMES order, empty ones
 * omitted; "lip" is a subset of "mouth". For callers that want one region's pixels.
 */
export function buildRegionMasks(
  keypoints: Point[],
  faceBox: Box,
  width: number,
  height: number,
  options: BuildRegionOptions = {},
): RegionMask[] {
  const { labels, zones, areas } = buildRegionLabels(keypoints, faceBox, width, height, options);
  const out: RegionMask[] = [];
  REGION_NAMES.forEach((name, k) => {
    if (areas[k] === 0) return;
    const mask = new Uint8Array(labels.length);
    for (let i = 0; i < labels.length; i++) if (labels[i] === k || zones[i] === k) mask[i] = 1;
    out.push({ name, mask, area: areas[k] });
  });
  return out;
}

/** Canonical BlazeFace-like keypoints inside a face box (used when the eyes are unusable). */
function canonicalKeypoints(b: Box): Point[] {
  const at = (fx: number, fy: number): Point => ({ x: b.x + fx * b.width, y: b.y + fy * b.height });
  return [at(0.3, 0.38), at(0.7, 0.38), at(0.5, 0.6), at(0.5, 0.78), at(0.02, 0.45), at(0.98, 0.45)];
}

export interface RegionCues {
  noiseLogRatio?: number;
  colourDelta?: number;
  boundaryStrength?: number;
}

export interface RegionScore {
  name: string;
  /** The region's shape in image pixels, exactly as scored; absent for keypoint regions. */
  polygons?: RegionPolygon[];
  /** Mean forgery prob over the region. */
  score: number;
  /** Fraction of the region's pixels inside the binary forgery mask. */
  coverage: number;
  cues: RegionCues;
}

export interface CueMaps {
  noise?: Float32Array;
  colour?: Float32Array;
  boundary?: Float32Array;
}

/**
 * Scores each region on the crop's forgery map.
 *
 *  - score: mean prob over the region's pixels (NaN values skipped; 0 if none is usable).
 *  - coverage: fraction of the region's pixels set in `binaryMask` (any non-zero value).
 *  - cues.noiseLogRatio / cues.colourDelta: mean cue over the masked part of the region, or
 *    over the whole region when no pixel of it is masked (NaN cue values are skipped; the
 *    cue is omitted when no value is usable).
 *  - cues.boundaryStrength: mean cue_boundary over the mask's edge pixels inside the region
 *    (masked pixels with at least one unmasked 4-neighbour; the crop border does not count as
 *    an edge). Omitted when the region holds no edge pixel.
 *
 * `regions` is a label map (buildRegionLabels: one pass over the pixels) or any list of masks,
 * overlapping or not (one pass per mask); both give the same figures for the same regions.
 * All maps share the crop's layout; `width` defaults to sqrt(length) (square crops).
 * Result is sorted by score, descending (ties keep REGION_NAMES or the list's order); regions
 * without pixels are left out.
 */
export function scoreRegions(
  prob: Float32Array,
  binaryMask: Uint8Array,
  regions: RegionLabels | RegionMask[],
  cues?: CueMaps,
  width?: number,
): RegionScore[] {
  const n = prob.length;
  const w = width ?? Math.round(Math.sqrt(n));
  if (!Number.isInteger(w) || w <= 0 || n % w !== 0) throw new RangeError(`cannot infer a ${w}-wide layout for ${n} values`);
  const h = n / w;
  const check = (a: ArrayLike<number> | undefined, what: string) => {
    if (a && a.length !== n) throw new RangeError(`${what} has ${a.length} values, expected ${n}`);
  };
  check(binaryMask, 'binaryMask');
  check(cues?.noise, 'cue_noise');
  check(cues?.colour, 'cue_colour');
  check(cues?.boundary, 'cue_boundary');
  if (Array.isArray(regions)) for (const r of regions) check(r.mask, `region ${r.name}`);
  else {
    check(regions.labels, 'region labels');
    check(regions.zones, 'region zones');
  }

  let edge: Uint8Array | undefined;
  if (cues?.boundary) {
    edge = new Uint8Array(n);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!binaryMask[i]) continue;
        if (
          (x > 0 && !binaryMask[i - 1]) ||
          (x < w - 1 && !binaryMask[i + 1]) ||
          (y > 0 && !binaryMask[i - w]) ||
          (y < h - 1 && !binaryMask[i + w])
        ) {
          edge[i] = 1;
        }
      }
    }
  }

  const names = Array.isArray(regions) ? regions.map((r) => r.name) : REGION_NAMES;
  const accs = names.map(() => new RegionAcc());
  const visit = (a: RegionAcc, i: number) => {
    a.count++;
    a.prob.add(prob[i]);
    const m = binaryMask[i] !== 0;
    if (m) a.masked++;
    if (cues?.noise) (m ? a.noiseMasked : a.noiseAll).add(cues.noise[i]);
    if (cues?.colour) (m ? a.colourMasked : a.colourAll).add(cues.colour[i]);
    if (edge && edge[i]) a.boundary.add(cues!.boundary![i]);
  };
  if (Array.isArray(regions)) {
    regions.forEach((r, k) => {
      for (let i = 0; i < n; i++) if (r.mask[i]) visit(accs[k], i);
    });
  } else {
    const { labels, zones } = regions;
    for (let i = 0; i < n; i++) {
      if (labels[i] !== NO_REGION) visit(accs[labels[i]], i);
      if (zones[i] !== NO_REGION) visit(accs[zones[i]], i);
    }
  }

  const out: RegionScore[] = [];
  accs.forEach((a, k) => {
    if (a.count === 0) return;
    const rc: RegionCues = {};
    if (cues?.noise) {
      const v = a.masked > 0 ? a.noiseMasked.mean() : a.noiseAll.mean();
      if (v !== undefined) rc.noiseLogRatio = v;
    }
    if (cues?.colour) {
      const v = a.masked > 0 ? a.colourMasked.mean() : a.colourAll.mean();
      if (v !== undefined) rc.colourDelta = v;
    }
    const b = a.boundary.mean();
    if (b !== undefined) rc.boundaryStrength = b;
    out.push({ name: names[k], score: a.prob.mean() ?? 0, coverage: a.masked / a.count, cues: rc });
  });
  return out.sort((a, b) => b.score - a.score);
}

/** One region's running sums while scoring. */
class RegionAcc {
  count = 0;
  masked = 0;
  readonly prob = new Acc();
  readonly noiseAll = new Acc();
  readonly noiseMasked = new Acc();
  readonly colourAll = new Acc();
  readonly colourMasked = new Acc();
  readonly boundary = new Acc();
}

class Acc {
  private sum = 0;
  private n = 0;
  add(v: number): void {
    if (Number.isNaN(v)) return;
    this.sum += v;
    this.n++;
  }
  mean(): number | undefined {
    return this.n > 0 ? this.sum / this.n : undefined;
  }
}
