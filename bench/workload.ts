// Reproducible benchmark inputs: 1920x1080 JPEGs with one face of varying size and place,
// built from the licensed photos in testdata/faces.
import sharp from 'sharp';
import { astronautPng } from '@tampertrace/shared/testing';
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
