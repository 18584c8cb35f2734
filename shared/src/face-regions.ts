// Facial regions as polygons drawn from the 468-point face mesh (and the iris points), in the
// landmarks' own pixel frame. The localization stage rasterises and scores them and stores them
// with the analysis (RegionScore.polygons); the console draws what was stored; the explanation
// names them. One list of names for all of them: REGION_NAMES.
//
// Names follow ForgeryTalker's region words, singular ("lip", "tooth", "eye"), with "right" and
// "left" from the subject's point of view (the subject's right eye is on the image left of a
// frontal face). Plurals and synonyms in text ("lips", "teeth") are for readers to map.
//
// Two layers, each a partition (a pixel is in at most one region of a layer):
//  - "face": eyes, eyebrows, mouth (the inner mouth), lip, nose, chin, cheeks, jaw, forehead,
//    ears, skin (the rest of the face), hair (a band above the forehead);
//  - "zone": pupils (inside the eyes), tooth (the opening of an open mouth), mustache, beard;
//    they overlap regions of the face layer.
// Within a layer, a region earlier in REGION_PRIORITY wins: each region's stored polygons hold,
// as holes, every earlier region of its layer that could overlap it, so each region's polygons
// alone say exactly which pixels it has (union of its polygons minus union of its holes).
//
// ZONE_NAMES (tooth, mustache, beard, hair) are scored like the others but are zones: whether one
// is named to a reader is for its own evidence to decide (the explanation's job), never by default.
import type { Point } from './image.ts';
import { LEFT_IRIS, MESH, MESH_POINTS, RIGHT_IRIS, IRIS_POINTS, hasMesh } from './face-landmarks.ts';

/** Every region name, in label order (a label map stores the index into this list). */
export const REGION_NAMES = [
  'right eye',
  'left eye',
  'right eyebrow',
  'left eyebrow',
  'nose',
  'mouth',
  'lip',
  'right cheek',
  'left cheek',
  'forehead',
  'chin',
  'jaw',
  'right ear',
  'left ear',
  'skin',
  'hair',
  'right pupil',
  'left pupil',
  'tooth',
  'mustache',
  'beard',
] as const;
export type RegionName = (typeof REGION_NAMES)[number];

/** Regions scored but not named by default: only their own evidence may name them. */
export const ZONE_NAMES: readonly RegionName[] = ['tooth', 'mustache', 'beard', 'hair'];

/** Region words without side (ForgeryTalker's vocabulary as far as geometry supports it). */
export const REGION_FAMILIES = ['eye', 'pupil', 'eyebrow', 'nose', 'mouth', 'lip', 'tooth', 'cheek', 'forehead', 'chin', 'jaw', 'ear', 'skin', 'hair', 'mustache', 'beard'] as const;
export type RegionFamily = (typeof REGION_FAMILIES)[number];

/** "left eye" -> "eye", "nose" -> "nose"; undefined for names outside the vocabulary. */
export function regionFamily(name: string): RegionFamily | undefined {
  const base = name.trim().toLowerCase().replace(/^(right|left)\s+/, '');
  return (REGION_FAMILIES as readonly string[]).includes(base) ? (base as RegionFamily) : undefined;
}

export type RegionLayer = 'face' | 'zone';

/** Layer of each region. */
export function regionLayer(name: RegionName): RegionLayer {
  return name === 'right pupil' || name === 'left pupil' || name === 'tooth' || name === 'mustache' || name === 'beard' ? 'zone' : 'face';
}

/** Which region wins where two of a layer overlap: earlier first. */
export const REGION_PRIORITY: readonly RegionName[] = [
  'right eye',
  'left eye',
  'right eyebrow',
  'left eyebrow',
  'mouth',
  'lip',
  'nose',
  'chin',
  'right cheek',
  'left cheek',
  'jaw',
  'forehead',
  'right ear',
  'left ear',
  'skin',
  'hair',
  'right pupil',
  'left pupil',
  'tooth',
  'mustache',
  'beard',
];

export interface RegionPolygon {
  points: Point[];
  /** Cut out of the region rather than added to it. */
  hole: boolean;
}

export interface FaceRegion {
  name: RegionName;
  polygons: RegionPolygon[];
}

/**
 * Layout constants, in units of the face height H (mesh forehead top 10 to chin 152) unless
 * said otherwise. Design choices, not fitted to any face.
 */
export const REGION_GEOMETRY = Object.freeze({
  /** The mesh's top stops mid-forehead: the forehead is extended up by this much at its top. */
  foreheadExtension: 0.18,
  /** Hair band above the (extended) forehead line, at its top. */
  hairBand: 0.22,
  /** Ears: centre out from the oval point level with the eyes, and semi-axes across / along. */
  earOut: 0.07,
  earRx: 0.07,
  earRy: 0.14,
  /** Yaw (degrees) beyond which the ear on the far side is hidden and not drawn. */
  earHiddenYaw: 35,
  /** The mouth counts as open (tooth zone drawn) when its opening is this share of its width. */
  openMouth: 0.08,
  /** Half-width of the nose bridge's top, as a share of the inner-eye-corner distance. */
  noseBridge: 0.2,
  /** Vertices of an ellipse or circle. */
  ellipseVertices: 24,
});

/**
 * The regions of one face from its landmarks (Face.landmarks: 468 mesh points, then the iris
 * points when present), in the landmarks' frame. `yawDeg` (HeadPose.yaw_deg) hides the far ear.
 * Undefined without a full mesh. Regions left empty (a closed mouth has no tooth zone) are
 * omitted; the rest keep REGION_NAMES order.
 */
export function faceRegions(landmarks: readonly Point[], yawDeg = 0): FaceRegion[] | undefined {
  if (!hasMesh(landmarks) || !landmarks.slice(0, MESH_POINTS).every((p) => Number.isFinite(p.x) && Number.isFinite(p.y))) return undefined;
  const G = REGION_GEOMETRY;
  const at = (i: number) => landmarks[i];
  const loop = (idx: readonly number[]) => idx.map(at);
  const top = at(MESH.foreheadTop);
  const chin = at(MESH.chin);
  const H = Math.hypot(top.x - chin.x, top.y - chin.y);
  if (!(H > 1)) return undefined;
  const up = { x: (top.x - chin.x) / H, y: (top.y - chin.y) / H };
  const eyeMid = mid(at(MESH.rightEyeOuter), at(MESH.leftEyeOuter));
  const topHeight = dot(sub(top, eyeMid), up);

  // The face outline with its top arc (above the eyes) raised: points above the eye line move up
  // in proportion to their height above it, so the temples stay and the forehead grows.
  const raise = (p: Point, by: number): Point => {
    const t = Math.max(0, dot(sub(p, eyeMid), up)) / topHeight;
    return { x: p.x + up.x * by * H * t, y: p.y + up.y * by * H * t };
  };
  const ovalIdx = MESH.faceOval;
  const outline = ovalIdx.map((i) => raise(at(i), G.foreheadExtension));
  // The upper arc of the oval: from the subject's left oval point level with the eyes, over the top, to the right one.
  const upperArc = (pts: Point[]) => {
    const li = ovalIdx.indexOf(MESH.leftCheekSide);
    const ri = ovalIdx.indexOf(MESH.rightCheekSide);
    const out: Point[] = [];
    for (let k = ri; k !== li + 1; k = (k + 1) % pts.length) out.push(pts[k]);
    return out; // right side, over the top, to the left side
  };

  const raw = new Map<RegionName, RegionPolygon[]>();
  const add = (name: RegionName, points: Point[], hole = false) => {
    if (points.length < 3) return;
    const list = raw.get(name) ?? [];
    list.push({ points, hole });
    raw.set(name, list);
  };

  const rightEye = loop(MESH.rightEye);
  const leftEye = loop(MESH.leftEye);
  add('right eye', rightEye);
  add('left eye', leftEye);
  add('right eyebrow', loop(MESH.rightEyebrow));
  add('left eyebrow', loop(MESH.leftEyebrow));
  const lipsOuter = loop(MESH.lipsOuter);
  const lipsInner = loop(MESH.lipsInner);
  add('mouth', lipsInner);
  add('lip', lipsOuter);
  add('lip', lipsInner, true);
  // Nose: the mesh's nostril outline (FACEMESH_NOSE) closed over the bridge, whose top (168,
  // between the eyes) is widened to a fifth of the inner-eye-corner distance each side.
  const bridge = at(168);
  const across = sub(at(MESH.leftEyeInner), at(MESH.rightEyeInner));
  const bridgeSide = (sign: number): Point => ({ x: bridge.x + sign * REGION_GEOMETRY.noseBridge * across.x, y: bridge.y + sign * REGION_GEOMETRY.noseBridge * across.y });
  add('nose', [bridgeSide(1), ...loop([275, 440, 344, 278, 294, 327, 326, 2, 97, 98, 64, 48, 115, 220, 45]), bridgeSide(-1)]);
  add('chin', loop([375, 321, 405, 314, 17, 84, 181, 91, 146, 176, 148, 152, 377, 400]));
  add('right cheek', loop([33, 7, 163, 144, 145, 153, 154, 155, 133, 45, 220, 115, 48, 64, 98, 61, 58, 132, 93, 234, 127]));
  add('left cheek', loop([263, 249, 390, 373, 374, 380, 381, 382, 362, 275, 440, 344, 278, 294, 327, 291, 288, 361, 323, 454, 356]));
  add('jaw', loop([61, 146, 176, 149, 150, 136, 172, 58]));
  add('jaw', loop([291, 288, 397, 365, 379, 378, 400, 375]));
  // Forehead: the raised upper arc, down to the eyebrows' upper edges.
  const arc = upperArc(outline);
  const browTop = [...MESH.leftEyebrow.slice(0, 5).map(at)].concat(MESH.rightEyebrow.slice(0, 5).reverse().map(at));
  // arc runs right -> left; close it through the left brow (outer -> inner) and the right brow (inner -> outer)
  add('forehead', [...arc.slice(Math.floor(arc.length * 0.15), Math.ceil(arc.length * 0.85)), ...browTop]);

  // Ears: ellipses outside the oval point level with the eyes, along the face's axes.
  const side = { x: up.y * -1, y: up.x }; // perpendicular to up: towards the subject's left on an upright face (image right)
  const ear = (p: Point, sign: number) =>
    ellipse(
      { x: p.x + side.x * sign * G.earOut * H, y: p.y + side.y * sign * G.earOut * H },
      G.earRx * H,
      G.earRy * H,
      side,
      G.ellipseVertices,
    );
  if (yawDeg > -G.earHiddenYaw) add('right ear', ear(at(MESH.rightCheekSide), -1));
  if (yawDeg < G.earHiddenYaw) add('left ear', ear(at(MESH.leftCheekSide), 1));
  add('skin', outline);
  // Hair: a band above the raised forehead line, thickest at the top.
  const hairArc = upperArc(ovalIdx.map((i) => raise(at(i), G.foreheadExtension + G.hairBand)));
  add('hair', [...hairArc, ...arc.slice().reverse()]);

  // Zones.
  if (landmarks.length >= RIGHT_IRIS + 2 * IRIS_POINTS) {
    for (const [name, first, eye] of [['right pupil', RIGHT_IRIS, rightEye], ['left pupil', LEFT_IRIS, leftEye]] as const) {
      const c = at(first);
      const edge = landmarks.slice(first + 1, first + IRIS_POINTS);
      const r = edge.reduce((s, p) => s + Math.hypot(p.x - c.x, p.y - c.y), 0) / edge.length;
      if (!(r > 0) || !Number.isFinite(r)) continue;
      // The visible iris: its disc clipped by the eye opening.
      const clipped = clipPolygon(ellipse(c, r, r, { x: 1, y: 0 }, G.ellipseVertices), eye);
      if (polygonArea(clipped) > 0) add(name, clipped);
    }
  }
  const mouthWidth = dist(at(61), at(291));
  const opening = dist(at(13), at(14));
  if (mouthWidth > 0 && opening / mouthWidth >= G.openMouth) add('tooth', lipsInner);
  // Mustache: from under the nose to the upper lip's outer edge, corner to corner.
  add('mustache', loop([98, 61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, ...MESH.noseBase.slice().reverse().slice(0, -1)]));
  // Beard: the lower face from nose-wing level down the oval, the lips cut out.
  add('beard', loop([93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 327, 98]));
  add('beard', lipsOuter, true);

  return withPriorityHoles(raw);
}

/** Each region's polygons plus, as holes, the earlier regions of its layer whose bounds meet it. */
function withPriorityHoles(raw: Map<RegionName, RegionPolygon[]>): FaceRegion[] {
  const bounds = new Map<RegionName, Bounds>();
  for (const [name, polys] of raw) bounds.set(name, boundsOf(polys.filter((p) => !p.hole).flatMap((p) => p.points)));
  const out: FaceRegion[] = [];
  for (const name of REGION_NAMES) {
    const own = raw.get(name);
    if (!own) continue;
    const b = bounds.get(name)!;
    const polygons = own.map((p) => ({ points: p.points.map((q) => ({ x: q.x, y: q.y })), hole: p.hole }));
    for (const other of REGION_PRIORITY) {
      if (other === name) break;
      if (regionLayer(other) !== regionLayer(name)) continue;
      const ob = bounds.get(other);
      if (!ob || !overlaps(b, ob)) continue;
      for (const p of raw.get(other)!) if (!p.hole) polygons.push({ points: p.points.map((q) => ({ x: q.x, y: q.y })), hole: true });
    }
    out.push({ name, polygons });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Rasterisation: the one rule by which a pixel is in a region (its centre, even-odd per polygon).

/** Label of a pixel outside every region. */
export const NO_REGION = 255;

/** A region as pixels: two label maps (one per layer) of REGION_NAMES indices, or NO_REGION. */
export interface RegionLabelMaps {
  width: number;
  height: number;
  /** The face layer. */
  labels: Uint8Array;
  /** The zone layer. */
  zones: Uint8Array;
  /** Pixels per REGION_NAMES index. */
  areas: number[];
}

/**
 * Rasterises regions (already in the map's pixel frame) into label maps: pixel (x, y) is in a
 * region when its centre (x + 0.5, y + 0.5) is inside an odd number of crossings of one of its
 * non-hole polygons and of none of its holes (insidePolygon). Scanline fill over each region's
 * bounding rows only, so a crop costs about its regions' area.
 */
export function rasteriseRegions(regions: readonly FaceRegion[], width: number, height: number): RegionLabelMaps {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw new RangeError(`invalid map size ${width}x${height}`);
  const labels = new Uint8Array(width * height).fill(NO_REGION);
  const zones = new Uint8Array(width * height).fill(NO_REGION);
  const areas = new Array<number>(REGION_NAMES.length).fill(0);
  const cover = new Uint8Array(width);
  const xs: number[] = [];
  for (const r of regions) {
    const k = REGION_NAMES.indexOf(r.name);
    const map = regionLayer(r.name) === 'zone' ? zones : labels;
    const solid = r.polygons.filter((p) => !p.hole);
    if (solid.length === 0) continue;
    const b = boundsOf(solid.flatMap((p) => p.points));
    const y0 = Math.max(0, Math.floor(b.y0 - 0.5));
    const y1 = Math.min(height - 1, Math.ceil(b.y1));
    // each polygon's rows, so a row skips the holes that do not reach it
    const polys = r.polygons.map((p) => ({ ...p, b: boundsOf(p.points) }));
    for (let y = y0; y <= y1; y++) {
      const yc = y + 0.5;
      let lo = width;
      let hi = -1;
      for (const p of polys) {
        if (yc < p.b.y0 || yc > p.b.y1) continue;
        crossings(p.points, yc, xs);
        for (let i = 0; i + 1 < xs.length; i += 2) {
          // centres xc with xs[i] <= xc < xs[i+1]
          const a = Math.max(0, Math.ceil(xs[i] - 0.5));
          const e = Math.min(width - 1, Math.ceil(xs[i + 1] - 0.5) - 1);
          const bit = p.hole ? 2 : 1;
          for (let x = a; x <= e; x++) cover[x] |= bit;
          if (a < lo) lo = a;
          if (e > hi) hi = e;
        }
      }
      for (let x = lo; x <= hi; x++) {
        if (cover[x] === 1) {
          map[y * width + x] = k;
          areas[k]++;
        }
        cover[x] = 0;
      }
    }
  }
  return { width, height, labels, zones, areas };
}

/** The sorted x of the polygon's edges crossing the line y = yc (half-open in y, as insidePolygon). */
function crossings(pts: readonly Point[], yc: number, out: number[]): void {
  out.length = 0;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const a = pts[i];
    const b = pts[j];
    if (a.y > yc !== b.y > yc) out.push(a.x + ((yc - a.y) * (b.x - a.x)) / (b.y - a.y));
  }
  out.sort((p, q) => p - q);
}

/** Even-odd point-in-polygon test, the rule rasteriseRegions fills by. */
export function insidePolygon(pts: readonly Point[], x: number, y: number): boolean {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const a = pts[i];
    const b = pts[j];
    if (a.y > y !== b.y > y && x < a.x + ((y - a.y) * (b.x - a.x)) / (b.y - a.y)) inside = !inside;
  }
  return inside;
}

/** Whether a point is in a region: inside one of its polygons and in none of its holes. */
export function insideRegion(polygons: readonly RegionPolygon[], x: number, y: number): boolean {
  let inSolid = false;
  for (const p of polygons) {
    if (!insidePolygon(p.points, x, y)) continue;
    if (p.hole) return false;
    inSolid = true;
  }
  return inSolid;
}

/** Signed area (shoelace), positive for clockwise in a y-down frame. */
export function polygonArea(pts: readonly Point[]): number {
  let s = 0;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) s += (pts[j].x * pts[i].y - pts[i].x * pts[j].y) / 2;
  return s;
}

/** Maps every polygon point (e.g. image pixels to a crop's). */
export function mapRegions(regions: readonly FaceRegion[], f: (p: Point) => Point): FaceRegion[] {
  return regions.map((r) => ({ name: r.name, polygons: r.polygons.map((p) => ({ points: p.points.map(f), hole: p.hole })) }));
}

// ---------------------------------------------------------------------------
// Small geometry

interface Bounds {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

function boundsOf(pts: readonly Point[]): Bounds {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const p of pts) {
    if (p.x < x0) x0 = p.x;
    if (p.y < y0) y0 = p.y;
    if (p.x > x1) x1 = p.x;
    if (p.y > y1) y1 = p.y;
  }
  return { x0, y0, x1, y1 };
}

function overlaps(a: Bounds, b: Bounds): boolean {
  return a.x0 <= b.x1 && b.x0 <= a.x1 && a.y0 <= b.y1 && b.y0 <= a.y1;
}

const sub = (a: Point, b: Point): Point => ({ x: a.x - b.x, y: a.y - b.y });
const dot = (a: Point, b: Point) => a.x * b.x + a.y * b.y;
const mid = (a: Point, b: Point): Point => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 });
const dist = (a: Point, b: Point) => Math.hypot(a.x - b.x, a.y - b.y);

/** Ellipse with semi-axis rx along `axis` (unit vector) and ry across it. */
function ellipse(c: Point, rx: number, ry: number, axis: Point, n: number): Point[] {
  const out: Point[] = [];
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    const u = rx * Math.cos(t);
    const v = ry * Math.sin(t);
    out.push({ x: c.x + u * axis.x - v * axis.y, y: c.y + u * axis.y + v * axis.x });
  }
  return out;
}

/**
 * Sutherland-Hodgman: `subject` clipped by `clip` (treated as convex; the eye opening nearly
 * is). The result is what is stored and scored, so a slightly concave clip edge only trims a
 * little more or less, never makes the stored shape disagree with the scored one.
 */
function clipPolygon(subject: Point[], clip: Point[]): Point[] {
  const c = polygonArea(clip) >= 0 ? clip : clip.slice().reverse();
  let out = subject;
  for (let i = 0; i < c.length && out.length > 0; i++) {
    const a = c[i];
    const b = c[(i + 1) % c.length];
    // clockwise in y-down (positive area): inside is to the right of a->b, i.e. cross >= 0
    const side = (p: Point) => (b.x - a.x) * (p.y - a.y) - (b.y - a.y) * (p.x - a.x);
    const input = out;
    out = [];
    for (let j = 0; j < input.length; j++) {
      const p = input[j];
      const q = input[(j + 1) % input.length];
      const sp = side(p);
      const sq = side(q);
      if (sp >= 0) out.push(p);
      if (sp >= 0 !== sq >= 0) {
        const t = sp / (sp - sq);
        out.push({ x: p.x + (q.x - p.x) * t, y: p.y + (q.y - p.y) * t });
      }
    }
  }
  return out;
}
