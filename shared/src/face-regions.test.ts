// Region polygons from real face meshes (testdata/landmarks/<face>-geometry.json, written by
// models/face-landmark/reference-crops.ts from the detection stage's models on the test photos).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Box, Point } from './image.ts';
import { LEFT_IRIS, MESH, RIGHT_IRIS, faceQuality } from './face-landmarks.ts';
import {
  NO_REGION,
  REGION_FAMILIES,
  REGION_NAMES,
  ZONE_NAMES,
  faceRegions,
  insideRegion,
  mapRegions,
  polygonArea,
  rasteriseRegions,
  regionFamily,
  regionLayer,
  type FaceRegion,
} from './face-regions.ts';

interface Geometry {
  box: Box;
  landmarks: Point[];
  headPose: { yawDeg: number; pitchDeg: number; rollDeg: number };
}
const load = (name: string): Geometry => JSON.parse(readFileSync(fileURLToPath(new URL(`../../testdata/landmarks/${name}-geometry.json`, import.meta.url)), 'utf8'));
const FACES = { astronaut: load('astronaut'), camera: load('camera') };
const byName = (rs: FaceRegion[]) => new Map(rs.map((r) => [r.name as string, r]));

test('vocabulary: every name has a family, zones are names, layers as documented', () => {
  for (const n of REGION_NAMES) assert.ok(regionFamily(n), n);
  assert.deepEqual(new Set(REGION_NAMES.map(regionFamily)), new Set(REGION_FAMILIES));
  for (const z of ZONE_NAMES) assert.ok(REGION_NAMES.includes(z), z);
  assert.deepEqual(REGION_NAMES.filter((n) => regionLayer(n) === 'zone'), ['right pupil', 'left pupil', 'tooth', 'mustache', 'beard']);
  assert.ok(REGION_NAMES.length < NO_REGION);
});

test('polygons are well formed and lie on the face', () => {
  for (const [name, g] of Object.entries(FACES)) {
    const regions = faceRegions(g.landmarks, g.headPose.yawDeg)!;
    assert.ok(regions, name);
    const b = g.box;
    for (const r of regions) {
      for (const p of r.polygons) {
        assert.ok(p.points.length >= 3, `${name} ${r.name}: ${p.points.length} points`);
        assert.ok(p.points.every((q) => Number.isFinite(q.x) && Number.isFinite(q.y)), `${name} ${r.name}: non-finite point`);
        assert.ok(Math.abs(polygonArea(p.points)) > 0, `${name} ${r.name}: empty polygon`);
        if (p.hole) continue;
        // Features inside the face box grown by a quarter; ears, hair and forehead reach out further.
        const grow = ['hair', 'right ear', 'left ear', 'forehead', 'skin'].includes(r.name) ? 0.8 : 0.25;
        for (const q of p.points) {
          assert.ok(q.x > b.x - grow * b.width && q.x < b.x + (1 + grow) * b.width && q.y > b.y - grow * b.height && q.y < b.y + (1 + grow) * b.height, `${name} ${r.name}: ${JSON.stringify(q)} is off the face`);
        }
      }
    }
  }
});

test('landmarks fall in their regions: iris in pupil and eye, nose tip in nose, mouth corners on the lip, chin point by the chin', () => {
  const g = FACES.astronaut; // frontal: every region is drawn
  const r = byName(faceRegions(g.landmarks, g.headPose.yawDeg)!);
  assert.deepEqual([...r.keys()], [...REGION_NAMES], 'a frontal, smiling face has every region, tooth included');
  const L = g.landmarks;
  const inside = (region: string, p: Point) => insideRegion(r.get(region)!.polygons, p.x, p.y);
  assert.ok(inside('right pupil', L[RIGHT_IRIS]) && inside('right eye', L[RIGHT_IRIS]));
  assert.ok(inside('left pupil', L[LEFT_IRIS]) && inside('left eye', L[LEFT_IRIS]));
  assert.ok(!inside('left eye', L[RIGHT_IRIS]));
  assert.ok(inside('nose', L[MESH.noseTip]));
  const lipMid = { x: (L[0].x + L[13].x) / 2, y: (L[0].y + L[13].y) / 2 }; // between the upper lip's outer and inner edges
  assert.ok(inside('lip', lipMid) && !inside('mouth', lipMid));
  const above = (p: Point, by: number) => ({ x: p.x, y: p.y - by });
  assert.ok(inside('chin', above(L[MESH.chin], 3)));
  assert.ok(inside('forehead', above(L[MESH.foreheadTop], 3)));
  assert.ok(inside('hair', above(L[MESH.foreheadTop], 0.3 * (L[MESH.chin].y - L[MESH.foreheadTop].y))));
  // the subject's right cheek is on the image left of the nose
  const rc = r.get('right cheek')!.polygons[0].points;
  assert.ok(rc.reduce((s, p) => s + p.x, 0) / rc.length < L[MESH.noseTip].x);
});

test('the label maps agree with a point-in-polygon scan of the stored polygons, pixel for pixel, and each layer is a partition', () => {
  for (const [name, g] of Object.entries(FACES)) {
    const regions = faceRegions(g.landmarks, g.headPose.yawDeg)!;
    // In a crop frame, as the localizer scores them (a scale and shift of the image frame).
    const b = g.box;
    const side = 1.5 * Math.max(b.width, b.height);
    const x0 = b.x + b.width / 2 - side / 2;
    const y0 = b.y + b.height / 2 - side / 2;
    const S = 160;
    const crop = mapRegions(regions, (p) => ({ x: ((p.x - x0) * S) / side, y: ((p.y - y0) * S) / side }));
    const maps = rasteriseRegions(crop, S, S);
    const areas = new Array<number>(REGION_NAMES.length).fill(0);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const i = y * S + x;
        const hits = crop.filter((r) => insideRegion(r.polygons, x + 0.5, y + 0.5));
        const face = hits.filter((r) => regionLayer(r.name) === 'face');
        const zone = hits.filter((r) => regionLayer(r.name) === 'zone');
        assert.ok(face.length <= 1 && zone.length <= 1, `${name} (${x}, ${y}) is in ${hits.map((h) => h.name)}`);
        assert.equal(maps.labels[i], face.length ? REGION_NAMES.indexOf(face[0].name) : NO_REGION, `${name} face layer at (${x}, ${y})`);
        assert.equal(maps.zones[i], zone.length ? REGION_NAMES.indexOf(zone[0].name) : NO_REGION, `${name} zone layer at (${x}, ${y})`);
        for (const h of hits) areas[REGION_NAMES.indexOf(h.name)]++;
      }
    }
    assert.deepEqual(maps.areas, areas);
  }
});

test('regions turn with the face: rotated landmarks give the same areas', () => {
  const g = FACES.astronaut;
  const c = { x: 250, y: 250 };
  const areas = (pts: Point[]) => rasteriseRegions(faceRegions(pts)!, 512, 512).areas;
  const upright = areas(g.landmarks);
  for (const deg of [30, -75, 180]) {
    const a = (deg * Math.PI) / 180;
    const turned = g.landmarks.map((p) => ({ x: c.x + (p.x - c.x) * Math.cos(a) - (p.y - c.y) * Math.sin(a), y: c.y + (p.x - c.x) * Math.sin(a) + (p.y - c.y) * Math.cos(a) }));
    const got = areas(turned);
    REGION_NAMES.forEach((n, k) => {
      // pixel rounding on small shapes: a few pixels plus 6%
      assert.ok(Math.abs(got[k] - upright[k]) <= 4 + 0.06 * upright[k], `${deg} deg: ${n} ${upright[k]} -> ${got[k]}`);
    });
  }
});

test('no regions without a full mesh; the far ear is hidden on a turned face; a closed mouth has no tooth zone', () => {
  assert.equal(faceRegions(FACES.astronaut.landmarks.slice(0, 6)), undefined);
  assert.equal(faceRegions([]), undefined);
  const names = (rs: FaceRegion[] | undefined) => rs!.map((r) => r.name as string);
  // turned to the subject's left (positive yaw), the left ear is behind the head
  assert.ok(!names(faceRegions(FACES.astronaut.landmarks, 50)).includes('left ear'));
  assert.ok(names(faceRegions(FACES.astronaut.landmarks, 50)).includes('right ear'));
  assert.ok(!names(faceRegions(FACES.astronaut.landmarks, -50)).includes('right ear'));
  // Close the mouth: inner upper-lip points onto the inner lower lip's.
  const L = FACES.astronaut.landmarks.map((p) => ({ ...p }));
  L[13] = { ...L[14] };
  assert.ok(!names(faceRegions(L)).includes('tooth'));
  // without the iris points there are no pupils
  assert.ok(!names(faceRegions(FACES.astronaut.landmarks.slice(0, 468))).some((n) => n.endsWith('pupil')));
});

test('face quality: small faces first, then the landmark presence; without a landmark run only the size is assessed', () => {
  const box = (s: number): Box => ({ x: 0, y: 0, width: s, height: s });
  assert.equal(faceQuality(box(30), 0.99), 'TOO_SMALL');
  assert.equal(faceQuality(box(100), 0.2), 'TOO_DEGRADED');
  assert.equal(faceQuality(box(100), Number.NaN), 'TOO_DEGRADED');
  assert.equal(faceQuality(box(100), 0.9), 'JUDGEABLE');
  assert.equal(faceQuality(box(100), undefined), 'UNSPECIFIED');
  assert.equal(faceQuality(box(30), undefined), 'TOO_SMALL');
});
