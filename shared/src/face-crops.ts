// Face crops as the localizer takes them, cut once by the detection stage from the image it has
// already decoded and stored next to the analysis, so that the localization stage, in its own
// process in distributed mode, needs neither the original nor a second full decode of it.
// The crop code lives here, shared by both stages, so a stored crop is byte for byte the crop
// the localization stage would cut itself.
import sharp from 'sharp';
import type { Box, RgbImage } from './image.ts';

/** Square crop in image pixels (integer position and side); may extend past the image borders. */
export interface CropRect {
  x: number;
  y: number;
  size: number;
}

/** What the localizer needs cut: crop side relative to the face box, and the model's input side. */
export interface FaceCropSpec {
  /** Crop side = max(box width, height) x scale. */
  scale: number;
  /** Side of the resized crop, pixels (the model's input size). */
  size: number;
}

/**
 * Square crop around a face: side = max(width, height) * scale, centred on the box centre.
 * Position and side are rounded to whole pixels (side at least 1) so the crop can be cut
 * exactly with integer extract/extend operations; the rounding shifts the centre by at most
 * half a pixel.
 */
export function cropRectFor(face: Box, scale = 1.5): CropRect {
  if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`invalid crop scale ${scale}`);
  if (![face.x, face.y, face.width, face.height].every(Number.isFinite) || face.width <= 0 || face.height <= 0) {
    throw new RangeError(`invalid face box ${JSON.stringify(face)}`);
  }
  const size = Math.max(1, Math.round(Math.max(face.width, face.height) * scale));
  const cx = face.x + face.width / 2;
  const cy = face.y + face.height / 2;
  return { x: Math.round(cx - size / 2), y: Math.round(cy - size / 2), size };
}

/** The crop, padded by repeating the border where it leaves the image, resized to size x size: packed RGB. */
export async function cutFaceCrop(img: RgbImage, rect: CropRect, size: number): Promise<Buffer> {
  const x0 = Math.round(rect.x);
  const y0 = Math.round(rect.y);
  const s = Math.max(1, Math.round(rect.size));
  const left = Math.min(Math.max(0, x0), img.width - 1);
  const top = Math.min(Math.max(0, y0), img.height - 1);
  const right = Math.max(left + 1, Math.min(img.width, x0 + s));
  const bottom = Math.max(top + 1, Math.min(img.height, y0 + s));
  // Two pipelines: sharp applies extend after resize within one pipeline, and the padding must come first.
  const padded = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .extract({ left, top, width: right - left, height: bottom - top })
    .extend({ left: left - x0, top: top - y0, right: x0 + s - right, bottom: y0 + s - bottom, extendWith: 'copy' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return sharp(padded.data, { raw: { width: padded.info.width, height: padded.info.height, channels: 3 } })
    .resize(size, size, { fit: 'fill' })
    .raw()
    .toBuffer();
}

/** Every face's crop of one image, as stored. */
export interface FaceCrops {
  size: number;
  rects: CropRect[];
  /** Packed RGB, size*size*3 bytes each, in the order of the faces. */
  rgb: Uint8Array[];
}

// Layout: "TTFC", version byte, then u32 size, u32 count, per crop 3 int32 (x, y, side), then
// the pixels. Little-endian. Raw rather than PNG: encoding would cost more CPU than the bytes
// cost to store and move (196 KiB per face at 256 px).
const MAGIC = 'TTFC';
const VERSION = 1;
const HEADER = 4 + 1 + 4 + 4;

export function encodeFaceCrops(c: FaceCrops): Buffer {
  const plane = c.size * c.size * 3;
  const out = Buffer.alloc(HEADER + c.rects.length * 12 + c.rects.length * plane);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt8(VERSION, 4);
  out.writeUInt32LE(c.size, 5);
  out.writeUInt32LE(c.rects.length, 9);
  c.rects.forEach((r, i) => {
    out.writeInt32LE(r.x, HEADER + i * 12);
    out.writeInt32LE(r.y, HEADER + i * 12 + 4);
    out.writeInt32LE(r.size, HEADER + i * 12 + 8);
  });
  const pixels = HEADER + c.rects.length * 12;
  c.rgb.forEach((px, i) => {
    if (px.length !== plane) throw new RangeError(`face crop ${i}: ${px.length} bytes, expected ${plane}`);
    out.set(px, pixels + i * plane);
  });
  return out;
}

/** Throws on anything that is not a whole crops object of this version. */
export function decodeFaceCrops(bytes: Uint8Array): FaceCrops {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < HEADER || b.toString('latin1', 0, 4) !== MAGIC || b.readUInt8(4) !== VERSION) throw new Error('not a face crops object');
  const size = b.readUInt32LE(5);
  const count = b.readUInt32LE(9);
  const plane = size * size * 3;
  const pixels = HEADER + count * 12;
  if (b.length !== pixels + count * plane) throw new Error(`face crops object of ${b.length} bytes, expected ${pixels + count * plane}`);
  const rects: CropRect[] = [];
  const rgb: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    rects.push({ x: b.readInt32LE(HEADER + i * 12), y: b.readInt32LE(HEADER + i * 12 + 4), size: b.readInt32LE(HEADER + i * 12 + 8) });
    rgb.push(b.subarray(pixels + i * plane, pixels + (i + 1) * plane));
  }
  return { size, rects, rgb };
}
