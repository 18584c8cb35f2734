// Where a named facial region lies in the image, for highlighting it on hover. The analysis has
// no per-region geometry, but the regions are a pure function of the face's six keypoints and
// box: the same buildRegionMasks the localizer scored them with, run here on a small grid over
// the face instead of the 256x256 crop (the shapes are defined relative to the eye distance, so
// they come out the same up to pixel rounding).
import { buildRegionMasks } from '@tampertrace/forgery-localization/regions';
import type { Face } from './api.ts';

/** A region's pixels on a grid covering `window` (image pixels): cell (i, j) is grid[j * gw + i]. */
export interface RegionShape {
  window: { x: number; y: number; width: number; height: number };
  gw: number;
  gh: number;
  grid: Uint8Array;
}

/** Longest side of the grid: enough for a hover highlight, cheap on any image size. */
const GRID = 160;

export function regionShape(face: Face, name: string, imageWidth: number, imageHeight: number): RegionShape | undefined {
  const box = face.box;
  if (!box || box.width <= 0 || box.height <= 0) return undefined;
  // Twice the face box around its centre holds every region (ears and hair reach past the box).
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  const half = Math.max(box.width, box.height);
  const x0 = Math.max(0, Math.floor(cx - half));
  const y0 = Math.max(0, Math.floor(cy - half));
  const x1 = Math.min(imageWidth, Math.ceil(cx + half));
  const y1 = Math.min(imageHeight, Math.ceil(cy + half));
  if (x1 <= x0 || y1 <= y0) return undefined;
  const s = Math.min(1, GRID / Math.max(x1 - x0, y1 - y0));
  const gw = Math.max(1, Math.round((x1 - x0) * s));
  const gh = Math.max(1, Math.round((y1 - y0) * s));
  const toGrid = (p: { x: number; y: number }) => ({ x: (p.x - x0) * s, y: (p.y - y0) * s });
  const kp = face.keypoints.map(toGrid);
  const b = { ...toGrid(box), width: box.width * s, height: box.height * s };
  const m = buildRegionMasks(kp, b, gw, gh).find((r) => r.name === name);
  if (!m) return undefined;
  return { window: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, gw, gh, grid: m.mask };
}
