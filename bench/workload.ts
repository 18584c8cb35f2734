// Reproducible benchmark inputs: 1920x1080 JPEGs with one face of varying size and place,
// built from the licensed photos in testdata/faces.
import sharp from 'sharp';
import { ASTRONAUT_FACE, astronautPng } from '@tampertrace/shared/testing';
import { rng } from '@tampertrace/forgery-localization/sbi';

export async function oneFace1080p(count: number, seed = 7): Promise<Buffer[]> {
  const rand = rng(seed);
  // A face-free scene: smooth coloured noise (the cameraman photo would add a second face).
  const background = await sharp({ create: { width: 1920, height: 1080, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 120, sigma: 40 } } })
    .blur(8)
    .png()
    .toBuffer();
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 2 === 0) {
      // The astronaut filling the frame: a face of about 350 px.
      const top = Math.round(rand() * 500);
      out.push(await sharp(astronautPng()).resize(1920).extract({ left: 0, top, width: 1920, height: 1080 }).jpeg({ quality: 90 }).toBuffer());
    } else {
      // The astronaut photo pasted small into a wide scene: a face of 90-180 px.
      const side = Math.round(480 + rand() * 480);
      const photo = await sharp(astronautPng()).resize(side).toBuffer();
      const left = Math.round(rand() * (1920 - side));
      const top = Math.round(rand() * (1080 - side));
      out.push(await sharp(background).composite([{ input: photo, left, top }]).jpeg({ quality: 90 }).toBuffer());
    }
  }
  return out;
}

/** One benchmark input and what it is, for the per-kind figures. */
export interface WorkItem {
  bytes: Buffer;
  kind: string;
  width: number;
  height: number;
  faces: 0 | 1 | 3;
  forged: boolean;
  bad: boolean;
}

/**
 * The mixed stream of issue #8, deterministic for a seed: 1920x1080 and 4000x3000 JPEGs with 0,
 * 1 or 3 faces, about a third self-blended forgeries, and one bad input in twelve (truncated
 * JPEG, text named as an image, empty). In every twelve: eight 1080p with faces (two with
 * three), two 1080p without, one 4000x3000 with one face, one bad input.
 */
export async function mixedWorkload(count: number, seed = 11): Promise<WorkItem[]> {
  const { makeSelfBlended, toPng } = await import('@tampertrace/forgery-localization/sbi');
  const { decodeRgb } = await import('@tampertrace/shared');
  const { truncatedJpeg } = await import('@tampertrace/shared/testing');
  const rand = rng(seed);
  const real = astronautPng();
  const rgb = await decodeRgb(real, { maxInputBytes: 50e6, maxPixels: 50e6, minSide: 32 });
  const forgeries: Buffer[] = [];
  for (const [i, [regions, transform]] of ([
    [['nose', 'mouth'], 'blur'],
    [['left eye', 'right eye'], 'colour'],
    [['nose', 'left cheek'], 'colour+blur'],
  ] as const).entries()) {
    forgeries.push(await toPng((await makeSelfBlended(rgb, ASTRONAUT_FACE, { regions: [...regions], transform, seed: seed + i })).rgb));
  }
  // Smooth coloured noise from the seeded generator (sharp's own noise is not reproducible).
  const scene = async (width: number, height: number) => {
    const w = Math.ceil(width / 10);
    const h = Math.ceil(height / 10);
    const px = Buffer.alloc(w * h * 3);
    for (let p = 0; p < px.length; p++) px[p] = 60 + Math.floor(rand() * 120);
    return sharp(px, { raw: { width: w, height: h, channels: 3 } }).resize(width, height, { kernel: 'cubic' }).png({ compressionLevel: 1 }).toBuffer();
  };
  const bg1080 = await scene(1920, 1080);
  const bg12mp = await scene(4000, 3000);
  const photo = (forged: boolean) => (forged ? forgeries[Math.floor(rand() * forgeries.length)] : real);
  /** Photos of the astronaut (side px each) pasted at random, non-overlapping columns of the scene. */
  const compose = async (bg: Buffer, width: number, height: number, sides: number[], forged: boolean[]) => {
    const column = width / sides.length;
    // Every draw from the generator before the first await: resizes finish in any order.
    const placed = sides.map((side, k) => ({
      side,
      src: photo(forged[k]),
      left: Math.round(k * column + rand() * Math.max(0, column - side)),
      top: Math.round(rand() * (height - side)),
    }));
    const layers = await Promise.all(placed.map(async (p) => ({ input: await sharp(p.src).resize(p.side).toBuffer(), left: p.left, top: p.top })));
    return sharp(bg).composite(layers).jpeg({ quality: 90 }).toBuffer();
  };
  const bad = [await truncatedJpeg(), Buffer.from('this is not an image, only named like one'), Buffer.alloc(0)];
  const out: WorkItem[] = [];
  for (let i = 0; i < count; i++) {
    const k = i % 12;
    const forged = k === 1 || k === 6 || k === 10 || (k === 5 && i % 24 === 5);
    let item: Omit<WorkItem, 'kind'>;
    if (k === 11) {
      item = { bytes: bad[Math.floor(i / 12) % bad.length], width: 0, height: 0, faces: 0, forged: false, bad: true };
    } else if (k === 3 || k === 9) {
      item = { bytes: await sharp(await scene(1920, 1080)).jpeg({ quality: 90 }).toBuffer(), width: 1920, height: 1080, faces: 0, forged: false, bad: false };
    } else if (k === 5) {
      // A 12 MP photo: the astronaut at 1600-2400 px, a face of about 300-450 px.
      const side = Math.round(1600 + rand() * 800);
      item = { bytes: await compose(bg12mp, 4000, 3000, [side], [forged]), width: 4000, height: 3000, faces: 1, forged, bad: false };
    } else if (k === 2 || k === 7) {
      // Three people: faces of about 70-100 px.
      const sides = [0, 1, 2].map(() => Math.round(380 + rand() * 160));
      item = { bytes: await compose(bg1080, 1920, 1080, sides, [false, k === 7, false]), width: 1920, height: 1080, faces: 3, forged: k === 7, bad: false };
    } else if (k === 0 || k === 6) {
      // The astronaut filling the frame: a face of about 350 px.
      const top = Math.round(rand() * 500);
      const bytes = await sharp(photo(forged)).resize(1920).extract({ left: 0, top, width: 1920, height: 1080 }).jpeg({ quality: 90 }).toBuffer();
      item = { bytes, width: 1920, height: 1080, faces: 1, forged, bad: false };
    } else {
      // Pasted small into a wide scene: a face of 90-180 px.
      const side = Math.round(480 + rand() * 480);
      item = { bytes: await compose(bg1080, 1920, 1080, [side], [forged]), width: 1920, height: 1080, faces: 1, forged, bad: false };
    }
    const kind = item.bad ? 'bad' : `${item.width}x${item.height} ${item.faces} face${item.faces === 1 ? '' : 's'}`;
    out.push({ ...item, kind });
  }
  return out;
}
