import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRegionLabels, buildRegionMasks, NO_REGION, REGION_FAMILIES, REGION_NAMES, regionFamily, scoreRegions } from './regions.ts';
import type { RegionMask } from './regions.ts';
import type { Box, Point } from './geometry.ts';

const W = 256, H = 256;
/** The regions the keypoint fallback draws: the first 16 names (no pupils or zones from six points). */
const KEYPOINT_REGIONS = REGION_NAMES.slice(0, 16);
// Upright synthetic face in crop coordinates (MediaPipe order).
const KP: Point[] = [
  { x: 100, y: 100 }, // right eye (image left)
  { x: 156, y: 100 }, // left eye
  { x: 128, y: 135 }, // nose tip
  { x: 128, y: 165 }, // mouth centre
  { x: 70, y: 120 }, // right ear tragion
  { x: 186, y: 120 }, // left ear tragion
];
const BOX: Box = { x: 60, y: 45, width: 136, height: 160 };

function byName(masks: RegionMask[]): Map<string, RegionMask> {
  return new Map(masks.map((m) => [m.name, m]));
}
function has(m: RegionMask | undefined, p: Point): boolean {
  assert.ok(m, 'region missing');
  return m.mask[Math.floor(p.y) * W + Math.floor(p.x)] === 1;
}
/** Names of the regions containing p. */
function regionsAt(masks: RegionMask[], p: Point): string[] {
  return masks.filter((m) => has(m, p)).map((m) => m.name);
}

// Probe points of the upright face and the region that must own them.
const PROBES: [string, Point][] = [
  ['right eye', { x: 100, y: 100 }],
  ['left eye', { x: 156, y: 100 }],
  ['right eyebrow', { x: 100, y: 82 }],
  ['left eyebrow', { x: 156, y: 82 }],
  ['nose', { x: 128, y: 130 }],
  ['mouth', { x: 128, y: 165 }],
  ['right cheek', { x: 95, y: 140 }],
  ['left cheek', { x: 161, y: 140 }],
  ['forehead', { x: 128, y: 60 }],
  ['chin', { x: 128, y: 190 }],
  ['jaw', { x: 156, y: 184 }],
  ['right ear', { x: 64, y: 115 }],
  ['left ear', { x: 192, y: 115 }],
  ['skin', { x: 128, y: 150 }], // philtrum
  ['hair', { x: 128, y: 40 }],
];

test('vocabulary and families', () => {
  assert.equal(REGION_NAMES.length, 21);
  for (const n of REGION_NAMES) assert.ok(regionFamily(n), n);
  assert.equal(regionFamily('left eye'), 'eye');
  assert.equal(regionFamily('right eyebrow'), 'eyebrow');
  assert.equal(regionFamily('Right Cheek'), 'cheek');
  assert.equal(regionFamily('lip'), 'lip');
  assert.equal(regionFamily('tongue'), undefined);
  assert.deepEqual(new Set(REGION_NAMES.map(regionFamily)), new Set(REGION_FAMILIES));
});

test('upright face: every region present, probes land in the right region', () => {
  const masks = buildRegionMasks(KP, BOX, W, H);
  assert.deepEqual(masks.map((m) => m.name), [...KEYPOINT_REGIONS]);
  const r = byName(masks);
  for (const m of masks) {
    assert.equal(m.mask.length, W * H);
    assert.equal(m.area, m.mask.reduce((a, b) => a + b, 0), m.name);
  }
  assert.ok(has(r.get('right eye'), { x: 100, y: 100 }));
  assert.ok(!has(r.get('right eye'), { x: 156, y: 100 }));
  assert.ok(has(r.get('left eye'), { x: 156, y: 100 }));
  assert.ok(!has(r.get('left eye'), { x: 100, y: 100 }));
  assert.ok(has(r.get('lip'), { x: 128, y: 165 }));
  for (const [name, p] of PROBES) {
    const at = regionsAt(masks, p).filter((n) => n !== 'lip');
    assert.deepEqual(at, [name], `${JSON.stringify(p)} should be only in ${name}, got ${at}`);
  }
  // Eye ellipse 0.45d x 0.25d with d = 56 -> about pi * 12.6 * 7 = 277 px.
  assert.ok(Math.abs(r.get('right eye')!.area - 277) < 15, `${r.get('right eye')!.area}`);
  // Symmetric face -> symmetric areas.
  for (const [a, b] of [['right eye', 'left eye'], ['right cheek', 'left cheek'], ['right ear', 'left ear']]) {
    assert.equal(r.get(a)!.area, r.get(b)!.area, `${a} vs ${b}`);
  }
  // Far corners belong to nothing.
  assert.deepEqual(regionsAt(masks, { x: 2, y: 2 }), []);
  assert.deepEqual(regionsAt(masks, { x: 250, y: 250 }), []);
});

test('regions are disjoint except lip inside mouth', () => {
  const masks = buildRegionMasks(KP, BOX, W, H);
  const r = byName(masks);
  for (let i = 0; i < W * H; i++) {
    let n = 0;
    for (const m of masks) if (m.name !== 'lip') n += m.mask[i];
    assert.ok(n <= 1, `pixel ${i % W},${Math.floor(i / W)} in ${n} regions`);
    if (r.get('lip')!.mask[i]) assert.equal(r.get('mouth')!.mask[i], 1, 'lip outside mouth');
  }
  const overlap = (a: string, b: string) => {
    const ma = r.get(a)!.mask, mb = r.get(b)!.mask;
    let k = 0;
    for (let i = 0; i < ma.length; i++) k += ma[i] & mb[i];
    return k;
  };
  assert.equal(overlap('right eye', 'nose'), 0);
  assert.equal(overlap('left eye', 'nose'), 0);
  assert.equal(overlap('mouth', 'nose'), 0);
  assert.equal(overlap('lip', 'mouth'), r.get('lip')!.area);
  assert.ok(r.get('lip')!.area < r.get('mouth')!.area);
});

function rotate(p: Point, deg: number, c: Point = { x: 128, y: 128 }): Point {
  const a = (deg * Math.PI) / 180;
  const dx = p.x - c.x, dy = p.y - c.y;
  return { x: c.x + dx * Math.cos(a) - dy * Math.sin(a), y: c.y + dx * Math.sin(a) + dy * Math.cos(a) };
}
function rotatedBox(b: Box, deg: number): Box {
  const cs = [
    { x: b.x, y: b.y }, { x: b.x + b.width, y: b.y },
    { x: b.x, y: b.y + b.height }, { x: b.x + b.width, y: b.y + b.height },
  ].map((p) => rotate(p, deg));
  const xs = cs.map((p) => p.x), ys = cs.map((p) => p.y);
  return { x: Math.min(...xs), y: Math.min(...ys), width: Math.max(...xs) - Math.min(...xs), height: Math.max(...ys) - Math.min(...ys) };
}

for (const deg of [30, -30, 180]) {
  test(`rolled face (${deg} deg): masks rotate with the keypoints`, () => {
    const upright = byName(buildRegionMasks(KP, BOX, W, H));
    const masks = buildRegionMasks(KP.map((p) => rotate(p, deg)), rotatedBox(BOX, deg), W, H);
    const r = byName(masks);
    // Probe points, rotated (pixel centres of the upright probes).
    for (const [name, p] of PROBES) {
      const q = rotate({ x: Math.floor(p.x) + 0.5, y: Math.floor(p.y) + 0.5 }, deg);
      const at = regionsAt(masks, q).filter((n) => n !== 'lip');
      assert.deepEqual(at, [name], `${deg} deg: rotated ${JSON.stringify(p)} should be in ${name}, got ${at}`);
    }
    assert.ok(!has(r.get('right eye'), rotate({ x: 156, y: 100 }, deg)));
    // Whole-mask agreement: rotated mask vs upright mask sampled at the inverse-rotated pixel.
    for (const name of KEYPOINT_REGIONS) {
      const m = r.get(name)!;
      const u = upright.get(name)!;
      let agree = 0;
      for (let i = 0; i < W * H; i++) {
        if (!m.mask[i]) continue;
        const back = rotate({ x: (i % W) + 0.5, y: Math.floor(i / W) + 0.5 }, -deg);
        const bx = Math.floor(back.x), by = Math.floor(back.y);
        if (bx >= 0 && by >= 0 && bx < W && by < H && u.mask[by * W + bx]) agree++;
      }
      assert.ok(agree / m.area > 0.85, `${name}: ${agree}/${m.area}`);
      assert.ok(Math.abs(m.area - u.area) / u.area < 0.1, `${name}: area ${m.area} vs ${u.area}`);
    }
  });
}

test('degenerate keypoints fall back to the face box; missing ears drop the ear regions', () => {
  const same = { x: 120, y: 120 };
  const masks = buildRegionMasks([same, same, same, same, same, same], BOX, W, H);
  const names = masks.map((m) => m.name);
  for (const n of ['right eye', 'left eye', 'nose', 'mouth', 'forehead']) assert.ok(names.includes(n), n);
  // canonical layout: right eye at (60 + 0.3 * 136, 45 + 0.38 * 160) = (100.8, 105.8)
  assert.ok(has(byName(masks).get('right eye'), { x: 100.8, y: 105.8 }));

  const noEars = buildRegionMasks(KP.slice(0, 4), BOX, W, H).map((m) => m.name);
  assert.ok(!noEars.includes('right ear') && !noEars.includes('left ear'));
  assert.ok(noEars.includes('right cheek') && noEars.includes('jaw'));

  const noHair = buildRegionMasks(KP, BOX, W, H, { includeHair: false }).map((m) => m.name);
  assert.ok(!noHair.includes('hair'));
  // A face near the crop border: regions clipped, empty ones omitted, no throw.
  const shifted = KP.map((p) => ({ x: p.x + 120, y: p.y })); // left eye at x = 276, off the crop
  const clipped = buildRegionMasks(shifted, { ...BOX, x: BOX.x + 120 }, W, H).map((m) => m.name);
  assert.ok(clipped.includes('right eye') && clipped.includes('nose'));
  assert.ok(!clipped.includes('left eye') && !clipped.includes('left ear'));
  assert.throws(() => buildRegionMasks(KP, BOX, 0, 10), RangeError);
});

test('scoreRegions on a hand-made 8x8 map', () => {
  const w = 8, n = 64;
  const rect = (f: (x: number, y: number) => boolean) => Uint8Array.from({ length: n }, (_, i) => (f(i % w, Math.floor(i / w)) ? 1 : 0));
  const prob = Float32Array.from({ length: n }, (_, i) => (i % w < 4 && i < 32 ? 0.8 : 0.2));
  const binary = rect((x, y) => x < 4 && y < 4); // 16 px square at the top-left corner
  const noise = Float32Array.from({ length: n }, (_, i) => (binary[i] ? -1 : 0.5));
  const colour = Float32Array.from({ length: n }, (_, i) => (i % w) / 10);
  const boundary = new Float32Array(n);
  // Mask edge pixels (unmasked 4-neighbour inside the map): column x=3 (y 0..3), row y=3 (x 0..3).
  for (let y = 0; y < 3; y++) boundary[y * w + 3] = 2;
  for (let x = 0; x < 4; x++) boundary[3 * w + x] = 4;
  boundary[0] = 100; // masked but on the crop border only: not an edge pixel
  const regions: RegionMask[] = [
    { name: 'B', mask: rect((x) => x >= 4), area: 32 },
    { name: 'A', mask: rect((x) => x < 4), area: 32 },
    { name: 'C', mask: rect((_, y) => y === 0), area: 8 },
  ];
  const s = scoreRegions(prob, binary, regions, { noise, colour, boundary });
  assert.deepEqual(s.map((r) => r.name), ['A', 'C', 'B']); // A and C tie at 0.5: input order
  const [a, c, b] = s;
  assert.ok(Math.abs(a.score - 0.5) < 1e-6);
  assert.equal(a.coverage, 0.5);
  assert.equal(a.cues.noiseLogRatio, -1); // masked part only
  assert.ok(Math.abs(a.cues.colourDelta! - 0.15) < 1e-6); // mean x/10 over x = 0..3
  assert.ok(Math.abs(a.cues.boundaryStrength! - 22 / 7) < 1e-6);
  assert.ok(Math.abs(c.score - 0.5) < 1e-6);
  assert.equal(c.coverage, 0.5);
  assert.equal(c.cues.boundaryStrength, 2); // only (3,0) is an edge pixel in the top row
  assert.ok(Math.abs(b.score - 0.2) < 1e-6);
  assert.equal(b.coverage, 0);
  assert.equal(b.cues.noiseLogRatio, 0.5); // no masked pixel: whole region
  assert.ok(Math.abs(b.cues.colourDelta! - 0.55) < 1e-6);
  assert.equal(b.cues.boundaryStrength, undefined);

  // Without cue maps: no cue fields; 0/255 masks work too.
  const s2 = scoreRegions(prob, Uint8Array.from(binary, (v) => v * 255), regions);
  assert.deepEqual(s2[0].cues, {});
  assert.equal(s2[0].coverage, 0.5);
  // Non-square layout with an explicit width.
  const s3 = scoreRegions(new Float32Array(8).fill(1), new Uint8Array(8), [{ name: 'x', mask: new Uint8Array(8).fill(1), area: 8 }], undefined, 4);
  assert.equal(s3[0].score, 1);
  assert.throws(() => scoreRegions(prob, new Uint8Array(3), regions), RangeError);
});

test('scoreRegions end to end: a forged mouth ranks mouth and lip first', () => {
  const masks = buildRegionMasks(KP, BOX, W, H);
  const mouth = byName(masks).get('mouth')!;
  const prob = Float32Array.from(mouth.mask, (v) => (v ? 0.9 : 0.05));
  const binary = Uint8Array.from(prob, (v) => (v >= 0.5 ? 1 : 0));
  const noise = new Float32Array(W * H).fill(-0.8);
  const boundary = new Float32Array(W * H).fill(0.7);
  const s = scoreRegions(prob, binary, masks, { noise, boundary });
  assert.deepEqual(s.slice(0, 2).map((r) => r.name).sort(), ['lip', 'mouth']);
  const m = s.find((r) => r.name === 'mouth')!;
  assert.equal(m.coverage, 1);
  assert.ok(Math.abs(m.score - 0.9) < 1e-6);
  assert.ok(Math.abs(m.cues.noiseLogRatio! + 0.8) < 1e-6);
  assert.ok(Math.abs(m.cues.boundaryStrength! - 0.7) < 1e-6);
  assert.equal(s.find((r) => r.name === 'lip')!.cues.boundaryStrength, undefined); // lip core holds no edge
  assert.equal(s.find((r) => r.name === 'nose')!.coverage, 0);
});

test('the label map equals the masks, its bounding box loses no pixel, and both score alike', () => {
  let seed = 5;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let k = 0; k < 60; k++) {
    // Faces of every size, place and roll, some past the crop's border, some without ears.
    const cx = 20 + rand() * 216, cy = 20 + rand() * 216, d = 10 + rand() * 90, a = (rand() - 0.5) * 2 * Math.PI;
    const at = (u: number, v: number): Point => ({ x: cx + d * (u * Math.cos(a) - v * Math.sin(a)), y: cy + d * (u * Math.sin(a) + v * Math.cos(a)) });
    const kp = [at(-0.5, 0), at(0.5, 0), at(rand() * 0.4 - 0.2, 0.6 + rand() * 0.3), at(rand() * 0.4 - 0.2, 1.1 + rand() * 0.3), at(-1 - rand() * 0.4, 0.3), at(1 + rand() * 0.4, 0.3)];
    const keypoints = k % 4 === 0 ? kp.slice(0, 4) : kp;
    const box: Box = { x: cx - d * 1.2, y: cy - d, width: d * 2.4, height: d * 2.6 };
    const labels = buildRegionLabels(keypoints, box, W, H);
    assert.deepEqual(labels, buildRegionLabels(keypoints, box, W, H, { scanAll: true }), `face ${k}: the bounding box cut off a region`);
    const masks = buildRegionMasks(keypoints, box, W, H);
    for (const m of masks) {
      const i = REGION_NAMES.indexOf(m.name as (typeof REGION_NAMES)[number]);
      assert.equal(labels.areas[i], m.area, m.name);
      for (let p = 0; p < W * H; p++) {
        assert.equal(m.mask[p] === 1, labels.labels[p] === i || labels.zones[p] === i, `${m.name} at ${p}`);
      }
    }
    assert.equal(labels.labels.filter((l) => l !== NO_REGION).length, masks.filter((m) => m.name !== 'lip').reduce((s, m) => s + m.area, 0));
    const prob = Float32Array.from({ length: W * H }, () => rand());
    const binary = Uint8Array.from(prob, (v) => (v >= 0.5 ? 1 : 0));
    const cues = { noise: Float32Array.from(prob, () => rand() - 0.5), colour: Float32Array.from(prob, () => rand()), boundary: Float32Array.from(prob, () => rand()) };
    assert.deepEqual(scoreRegions(prob, binary, labels, cues), scoreRegions(prob, binary, masks, cues));
  }
});
