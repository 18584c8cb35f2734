import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { InvalidInputError } from './errors.ts';
import { decodeRgb, endsEarly, probeImage, type ImageLimits } from './image.ts';
import { astronautPng, cameraPng, pngDeclaring, truncatedJpeg } from './testing.ts';

const limits: ImageLimits = { maxInputBytes: 5_000_000, maxPixels: 50_000_000, minSide: 32 };

async function codeOf(p: Promise<unknown>): Promise<ErrorCode> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${err}`);
    return err.code;
  }
  assert.fail('expected a rejection');
}

test('probe reads format and oriented size from the header', async () => {
  const info = await probeImage(astronautPng(), limits);
  assert.equal(info.format, 'png');
  assert.equal(info.width, 512);
  assert.equal(info.height, 512);
  const jpg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#808080' } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  const rotated = await probeImage(jpg, limits);
  assert.deepEqual([rotated.width, rotated.height], [200, 300]);
});

test('decode applies EXIF orientation: an orientation-6 JPEG comes out rotated', async () => {
  // Left half black, right half white; orientation 6 rotates 90° clockwise, so black ends up on top.
  const raw = Buffer.alloc(300 * 200 * 3);
  for (let y = 0; y < 200; y++) for (let x = 150; x < 300; x++) raw.fill(255, (y * 300 + x) * 3, (y * 300 + x) * 3 + 3);
  const jpg = await sharp(raw, { raw: { width: 300, height: 200, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  const img = await decodeRgb(jpg, limits);
  assert.deepEqual([img.width, img.height], [200, 300]);
  assert.ok(img.data[(20 * 200 + 100) * 3] < 30, 'top is black');
  assert.ok(img.data[(280 * 200 + 100) * 3] > 225, 'bottom is white');
});

test('greyscale images decode to three equal channels', async () => {
  const img = await decodeRgb(cameraPng(), limits);
  assert.equal(img.data.length, 512 * 512 * 3);
  const p = (100 * 512 + 100) * 3;
  assert.equal(img.data[p], img.data[p + 1]);
  assert.equal(img.data[p], img.data[p + 2]);
});

test('each kind of bad input fails with its own code', async () => {
  assert.equal(await codeOf(probeImage(new Uint8Array(0), limits)), ErrorCode.EMPTY_INPUT);
  assert.equal(await codeOf(probeImage(Buffer.from('this is plain text, not a JPEG'), limits)), ErrorCode.UNSUPPORTED_FORMAT);
  assert.equal(await codeOf(probeImage(pngDeclaring(60000, 60000), limits)), ErrorCode.TOO_MANY_PIXELS);
  assert.equal(await codeOf(probeImage(astronautPng(), { ...limits, maxInputBytes: 1000 })), ErrorCode.TOO_LARGE);
  assert.equal(await codeOf(probeImage(pngDeclaring(10, 10), limits)), ErrorCode.TOO_SMALL);
  // The header of a truncated JPEG is fine; its missing end marker is found without decoding.
  const cut = await truncatedJpeg();
  assert.equal(await codeOf(probeImage(cut, limits)), ErrorCode.TRUNCATED_IMAGE);
  assert.equal(await codeOf(decodeRgb(cut, limits)), ErrorCode.TRUNCATED_IMAGE);
});

test('truncation is read from the container itself, for every accepted format', async () => {
  const src = sharp(astronautPng());
  for (const [name, full] of [
    ['jpeg', await src.clone().jpeg().toBuffer()],
    ['png', astronautPng()],
    ['webp', await src.clone().webp().toBuffer()],
    ['gif', await src.clone().gif().toBuffer()],
  ] as const) {
    assert.equal(endsEarly(full), false, `${name} complete`);
    assert.equal(endsEarly(full.subarray(0, Math.floor(full.length * 0.7))), true, `${name} cut at 70%`);
  }
  // A whole JPEG with trailing data after its end marker (cameras append 100 KB and more) is not truncated.
  const jpg = await src.clone().jpeg().toBuffer();
  assert.equal(endsEarly(Buffer.concat([jpg, Buffer.alloc(200_000, 7)])), false);
  assert.equal((await probeImage(Buffer.concat([jpg, Buffer.alloc(200_000, 7)]), limits)).width, 512);
  // Many truncated JPEGs decoded at once: every one is TRUNCATED_IMAGE, never CORRUPT_IMAGE
  // (libvips' message under concurrency was once "Unknown error").
  const cut = await truncatedJpeg();
  const codes = await Promise.all(Array.from({ length: 16 }, () => codeOf(decodeRgb(cut, limits))));
  assert.deepEqual(new Set(codes), new Set([ErrorCode.TRUNCATED_IMAGE]));
});

test('a pixel limit below the image size refuses it before decoding', async () => {
  assert.equal(await codeOf(decodeRgb(astronautPng(), { ...limits, maxPixels: 512 * 511 })), ErrorCode.TOO_MANY_PIXELS);
});

test('grey PNGs stay single-channel and keep their values where they were', async () => {
  const { encodeGreyPng } = await import('./image.ts');
  const m = new Uint8Array(64 * 48);
  m[5 * 64 + 7] = 255;
  const png = await encodeGreyPng(m, 64, 48);
  const meta = await sharp(png).metadata();
  assert.equal(meta.channels, 1);
  const back = await sharp(png).extractChannel(0).raw().toBuffer();
  assert.equal(back.length, 64 * 48);
  assert.equal(back[5 * 64 + 7], 255);
  assert.equal(back[5 * 64 + 8], 0);
});

test('the decoded-image cache decodes once, evicts the least recently used, and does not keep failures', async () => {
  const { DecodedImageCache } = await import('./image.ts');
  const cache = new DecodedImageCache(250);
  let decodes = 0;
  const img = (n: number) => async () => {
    decodes++;
    return { data: new Uint8Array(100), width: n, height: 1 };
  };
  assert.equal((await cache.get('a', img(1))).width, 1);
  assert.equal((await cache.get('a', img(99))).width, 1, 'second get is a hit');
  await cache.get('b', img(2));
  await cache.get('a', img(99)); // a is now the most recent
  await cache.get('c', img(3)); // 300 bytes > 250: b goes
  assert.equal(decodes, 3);
  assert.equal((await cache.get('a', img(99))).width, 1);
  assert.equal((await cache.get('b', img(22))).width, 22, 'b was evicted and decoded again');
  await assert.rejects(cache.get('bad', async () => { throw new Error('corrupt'); }));
  assert.equal((await cache.get('bad', img(5))).width, 5, 'a failure is not cached');
});
