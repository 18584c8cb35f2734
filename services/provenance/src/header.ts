// Facts about an image's origin read from its file header (pure; no pixel is decoded): the
// editing software its EXIF (Software, tag 0x0131) or XMP (xmp:CreatorTool) names, and whether it
// carries a C2PA manifest store (content credentials: JUMBF in JPEG APP11 segments, a caBX chunk
// in PNG, a C2PA chunk in WebP). Malformed metadata yields no fact rather than an error: the
// image itself was already validated by ingest.
import { inflateSync } from 'node:zlib';

export interface HeaderFacts {
  /** As written, without duplicates, EXIF first. */
  editingSoftware: string[];
  c2paManifestPresent: boolean;
}

const ascii = (b: Uint8Array) => Buffer.from(b).toString('latin1');
/** Printable text only, trimmed and bounded: these strings are shown to people. */
const clean = (s: string) => s.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '').trim().slice(0, 200);

export function headerFacts(bytes: Uint8Array): HeaderFacts {
  const software: string[] = [];
  let c2pa = false;
  try {
    if (bytes[0] === 0xff && bytes[1] === 0xd8) c2pa = jpeg(bytes, software);
    else if (ascii(bytes.subarray(1, 4)) === 'PNG') c2pa = png(bytes, software);
    else if (ascii(bytes.subarray(0, 4)) === 'RIFF' && ascii(bytes.subarray(8, 12)) === 'WEBP') c2pa = webp(bytes, software);
  } catch {
    // A header that ends early or lies about its lengths: keep what was read.
  }
  return { editingSoftware: [...new Set(software.map(clean).filter(Boolean))], c2paManifestPresent: c2pa };
}

function jpeg(b: Uint8Array, software: string[]): boolean {
  let c2pa = false;
  let i = 2;
  while (i + 4 <= b.length && b[i] === 0xff) {
    const marker = b[i + 1];
    if (marker === 0xd9 || marker === 0xda) break; // end of image, start of scan: no more metadata
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const len = (b[i + 2] << 8) | b[i + 3];
    const seg = b.subarray(i + 4, i + 2 + len);
    if (marker === 0xe1 && ascii(seg.subarray(0, 6)) === 'Exif\0\0') exifSoftware(seg.subarray(6), software);
    else if (marker === 0xe1 && ascii(seg.subarray(0, 29)) === 'http://ns.adobe.com/xap/1.0/\0') xmpCreatorTool(Buffer.from(seg.subarray(29)).toString('utf8'), software);
    // APP11 "JP" segments carry JUMBF boxes; C2PA's manifest store is the one labelled "c2pa".
    else if (marker === 0xeb && ascii(seg.subarray(0, 2)) === 'JP' && ascii(seg).includes('c2pa')) c2pa = true;
    i += 2 + len;
  }
  return c2pa;
}

function png(b: Uint8Array, software: string[]): boolean {
  let c2pa = false;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 8;
  while (i + 8 <= b.length) {
    const len = dv.getUint32(i);
    const type = ascii(b.subarray(i + 4, i + 8));
    const data = b.subarray(i + 8, i + 8 + len);
    if (type === 'caBX') c2pa = true;
    else if (type === 'eXIf') exifSoftware(data, software);
    else if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
      const nul = data.indexOf(0);
      const key = ascii(data.subarray(0, nul));
      const text =
        type === 'tEXt' ? ascii(data.subarray(nul + 1)) : type === 'zTXt' ? ascii(inflate(data.subarray(nul + 2))) : Buffer.from(itxtText(data, nul)).toString('utf8');
      if (key === 'Software') software.push(text);
      else if (key === 'XML:com.adobe.xmp') xmpCreatorTool(text, software);
    } else if (type === 'IEND') break;
    i += 12 + len;
  }
  return c2pa;
}

/** Metadata text only, bounded: a small chunk must not inflate into a large allocation. */
const inflate = (b: Uint8Array) => inflateSync(b, { maxOutputLength: 1 << 20 });

/** iTXt: keyword NUL, compression flag, method, language NUL, translated keyword NUL, text. */
function itxtText(data: Uint8Array, nul: number): Uint8Array {
  const compressed = data[nul + 1] === 1;
  let j = data.indexOf(0, nul + 3);
  j = data.indexOf(0, j + 1);
  return compressed ? inflate(data.subarray(j + 1)) : data.subarray(j + 1);
}

function webp(b: Uint8Array, software: string[]): boolean {
  let c2pa = false;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let i = 12;
  while (i + 8 <= b.length) {
    const type = ascii(b.subarray(i, i + 4));
    const len = dv.getUint32(i + 4, true);
    const data = b.subarray(i + 8, i + 8 + len);
    if (type === 'EXIF') exifSoftware(ascii(data.subarray(0, 6)) === 'Exif\0\0' ? data.subarray(6) : data, software);
    else if (type === 'XMP ') xmpCreatorTool(Buffer.from(data).toString('utf8'), software);
    else if (type === 'C2PA') c2pa = true;
    i += 8 + len + (len & 1);
  }
  return c2pa;
}

/** The Software tag (0x0131, ASCII) of a TIFF structure's first IFD. */
function exifSoftware(tiff: Uint8Array, software: string[]): void {
  const dv = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const le = ascii(tiff.subarray(0, 2)) === 'II';
  const ifd = dv.getUint32(4, le);
  const n = dv.getUint16(ifd, le);
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + k * 12;
    if (dv.getUint16(e, le) !== 0x0131 || dv.getUint16(e + 2, le) !== 2) continue;
    const count = dv.getUint32(e + 4, le);
    const at = count <= 4 ? e + 8 : dv.getUint32(e + 8, le);
    software.push(ascii(tiff.subarray(at, at + count)).replace(/\0+$/, ''));
  }
}

function xmpCreatorTool(xmp: string, software: string[]): void {
  const m = /xmp:CreatorTool\s*=\s*"([^"]*)"/.exec(xmp) ?? /<xmp:CreatorTool>([^<]*)<\/xmp:CreatorTool>/.exec(xmp);
  if (m) software.push(m[1].replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"'));
}
