// Header facts from files made here with sharp (EXIF, XMP) and by hand (C2PA's JUMBF and caBX).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { headerFacts } from './header.ts';

const photo = () => readFile(path.resolve(import.meta.dirname, '../../../testdata/photos/bridge.jpg'));
const XMP = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Adobe Photoshop 25.1 (Windows)"/></rdf:RDF></x:xmpmeta>';

/** A JPEG APP11 segment holding a JUMBF superbox labelled "c2pa", as C2PA writes its manifest store. */
function app11C2pa(): Buffer {
  const label = Buffer.from('c2pa\0');
  const jumd = Buffer.concat([u32(8 + 16 + 1 + label.length), Buffer.from('jumd'), Buffer.alloc(16, 0x63), Buffer.from([0x03]), label]);
  const jumb = Buffer.concat([u32(8 + jumd.length), Buffer.from('jumb'), jumd]);
  const payload = Buffer.concat([Buffer.from('JP'), Buffer.from([0, 1]), u32(1), jumb]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(payload.length + 2);
  return Buffer.concat([Buffer.from([0xff, 0xeb]), len, payload]);
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

test('EXIF Software and XMP CreatorTool in a JPEG are named; a plain JPEG names none', async () => {
  const plain = await sharp(await photo()).jpeg().toBuffer();
  assert.deepEqual(headerFacts(plain), { editingSoftware: [], c2paManifestPresent: false });
  const edited = await sharp(await photo()).withExif({ IFD0: { Software: 'GIMP 2.10.34' } }).withXmp(XMP).jpeg().toBuffer();
  assert.deepEqual(headerFacts(edited), { editingSoftware: ['GIMP 2.10.34', 'Adobe Photoshop 25.1 (Windows)'], c2paManifestPresent: false });
});

test('the same facts are read from PNG and WebP files', async () => {
  const png = await sharp(await photo()).withExif({ IFD0: { Software: 'darktable 4.6' } }).withXmp(XMP).png().toBuffer();
  assert.deepEqual(headerFacts(png).editingSoftware, ['darktable 4.6', 'Adobe Photoshop 25.1 (Windows)']);
  const webp = await sharp(await photo()).withExif({ IFD0: { Software: 'Snapseed 2.0' } }).webp().toBuffer();
  assert.deepEqual(headerFacts(webp).editingSoftware, ['Snapseed 2.0']);
});

test('a C2PA manifest store is seen in a JPEG APP11 segment and in a PNG caBX chunk', async () => {
  const jpeg = await sharp(await photo()).jpeg().toBuffer();
  const withManifest = Buffer.concat([jpeg.subarray(0, 2), app11C2pa(), jpeg.subarray(2)]);
  assert.equal(headerFacts(withManifest).c2paManifestPresent, true);
  // An APP11 segment of another JUMBF kind is not content credentials.
  const other = Buffer.from(app11C2pa().toString('latin1').replace('c2pa', 'abcd'), 'latin1');
  assert.equal(headerFacts(Buffer.concat([jpeg.subarray(0, 2), other, jpeg.subarray(2)])).c2paManifestPresent, false);

  const png = await sharp(await photo()).png().toBuffer();
  const iend = png.length - 12;
  const chunk = Buffer.concat([u32(4), Buffer.from('caBX'), Buffer.from('jumb'), u32(0)]);
  assert.equal(headerFacts(png).c2paManifestPresent, false);
  // Chunks are walked by their lengths (no pixel is inflated), so one after the image data counts too.
  assert.equal(headerFacts(Buffer.concat([png.subarray(0, iend), chunk, png.subarray(iend)])).c2paManifestPresent, true);
  const ihdrEnd = 8 + 25;
  assert.equal(headerFacts(Buffer.concat([png.subarray(0, ihdrEnd), chunk, png.subarray(ihdrEnd)])).c2paManifestPresent, true);
});

test('a header that lies about its lengths yields no fact, not an error', async () => {
  const jpeg = await sharp(await photo()).withExif({ IFD0: { Software: 'GIMP' } }).jpeg().toBuffer();
  const broken = Buffer.from(jpeg.subarray(0, 40));
  assert.doesNotThrow(() => headerFacts(broken));
  assert.deepEqual(headerFacts(new Uint8Array([0xff, 0xd8, 0xff, 0xe1, 0xff, 0xff])), { editingSoftware: [], c2paManifestPresent: false });
});
