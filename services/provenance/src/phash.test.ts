// Properties of the perceptual hash that the lookup relies on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { decodeRgb } from '@tampertrace/shared';
import { hamming, hashHex, perceptualHash, trimBorders } from './phash.ts';
import { LIMITS, PHOTOS_DIR } from './provenance.testing.ts';

const photo = (n: string) => readFile(path.join(PHOTOS_DIR, n));

test('the mirrored hash, computed from the same coefficients, is the hash of the flopped image', async () => {
  const bytes = await photo('dragonfly.jpg');
  const h = await perceptualHash(await decodeRgb(bytes, LIMITS));
  const flopped = await perceptualHash(await decodeRgb(await sharp(bytes).flop().png().toBuffer(), LIMITS));
  assert.ok(hamming(h.mirrored, flopped.hash) <= 2, `${hashHex(h.mirrored)} vs ${hashHex(flopped.hash)}`);
  assert.ok(hamming(h.hash, flopped.hash) > 10, 'a mirrored picture is not the same hash');
});

test('uniform borders are trimmed; a picture without them is kept whole', async () => {
  const bytes = await photo('sunset.jpg');
  const { width, height } = await sharp(bytes).metadata();
  const framed = await decodeRgb(await sharp(bytes).extend({ top: 30, bottom: 30, left: 20, right: 20, background: '#ffffff' }).png().toBuffer(), LIMITS);
  assert.deepEqual(trimBorders(framed), { left: 20, top: 30, width: width!, height: height! });
  const plain = await decodeRgb(bytes, LIMITS);
  assert.deepEqual(trimBorders(plain), { left: 0, top: 0, width: width!, height: height! });
});

test('hamming and hex', () => {
  assert.equal(hamming(0n, 0xffff_ffff_ffff_ffffn), 64);
  assert.equal(hamming(0b1011n, 0b0001n), 2);
  assert.equal(hashHex(0xabcn), '0000000000000abc');
});
