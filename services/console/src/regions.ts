// Where a named facial region lies in the image, for highlighting it on hover.
//  - Analyses with landmark regions store each region's polygons exactly as they were scored
//    (RegionScore.polygons, image pixels): those are drawn as they are.
//  - Analyses stored before that have no per-region geometry; their regions were a pure function
//    of the face's six keypoints and box, so the same buildRegionMasks the localizer scored them
//    with runs here on a small grid over the face (up to pixel rounding, the same shapes).
import { buildRegionMasks } from '@tampertrace/forgery-localization/regions';
import type { Face } from './api.ts';

type Window = { x: number; y: number; width: number; height: number };

/** A region's stored polygons (image pixels) and the window (image pixels) they lie in. */
export interface PolygonShape {
  kind: 'polygons';
  window: Window;
  polygons: { points: { x: number; y: number }[]; hole: boolean }[];
}

/** A region's pixels on a grid covering `window` (image pixels): cell (i, j) is grid[j * gw + i]. */
export interface GridShape {
  kind: 'grid';
  window: Window;
  gw: number;
  gh: number;
  grid: Uint8Array;
}

export type RegionShape = PolygonShape | GridShape;

/** Longest side of the grid: enough for a hover highlight, cheap on any image size. */
const GRID = 160;

export function regionShape(face: Face, name: string, imageWidth: number, imageHeight: number): RegionShape | undefined {
  const stored = face.regions.find((r) => r.name === name)?.polygons;
  if (stored && stored.length > 0) {
    const polygons = stored.map((p) => ({ points: p.points.map((q) => ({ x: q.x ?? 0, y: q.y ?? 0 })), hole: p.hole ?? false }));
    const solid = polygons.filter((p) => !p.hole).flatMap((p) => p.points);
    if (solid.length === 0) return undefined;
    const x0 = Math.max(0, Math.floor(Math.min(...solid.map((p) => p.x))));
    const y0 = Math.max(0, Math.floor(Math.min(...solid.map((p) => p.y))));
    const x1 = Math.min(imageWidth, Math.ceil(Math.max(...solid.map((p) => p.x))));
    const y1 = Math.min(imageHeight, Math.ceil(Math.max(...solid.map((p) => p.y))));
    if (x1 <= x0 || y1 <= y0) return undefined;
    return { kind: 'polygons', window: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, polygons };
  }
  return keypointShape(face, name, imageWidth, imageHeight);
}

function keypointShape(face: Face, name: string, imageWidth: number, imageHeight: number): GridShape | undefined {
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
  return { kind: 'grid', window: { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, gw, gh, grid: m.mask };
}
