// Safe image reading with sharp: header checks before any decoding (size, format, pixel count),
// then a strict decode to packed RGB in the EXIF-oriented frame. Every failure is an
// InvalidInputError with a precise code.
import sharp, { type Metadata } from 'sharp';
import { create } from '@bufbuild/protobuf';
import { ErrorCode, type ImageInfo, ImageInfoSchema } from './gen/tampertrace/v1/common_pb.ts';
import { InvalidInputError } from './errors.ts';
import { Attr, SpanName, withSpan } from './telemetry.ts';

export interface ImageLimits {
  maxInputBytes: number;
  maxPixels: number;
  minSide: number;
}

/** Continuous pixel coordinates in the EXIF-oriented image: origin at the top-left corner, y down. */
export interface Point {
  x: number;
  y: number;
}

/** An axis-aligned rectangle in the same frame as Point. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Packed RGB, 3 bytes per pixel, row-major, EXIF orientation applied. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export const ACCEPTED_FORMATS = ['jpeg', 'png', 'webp', 'gif'] as const;

/**
 * Whether the container visibly stops before its end marker. libvips' error text says
 * "truncated" only sometimes (under concurrent decodes it has come back as "Unknown error"),
 * so a failed decode is classified by looking at the bytes themselves first.
 */
const JPEG_EOI = Buffer.from([0xff, 0xd9]);

export function endsEarly(b: Uint8Array): boolean {
  const n = b.byteLength;
  const buf = Buffer.from(b.buffer, b.byteOffset, n);
  if (n >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    // JPEG: no end-of-image marker (FFD9) anywhere. Entropy-coded data never contains FFD9, and
    // trailers that cameras append (of any size) come after it, so this never flags a whole file.
    return buf.lastIndexOf(JPEG_EOI) < 0;
  }
  if (n >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    // PNG: no IEND chunk anywhere.
    return buf.lastIndexOf('IEND') < 0;
  }
  if (n >= 12 && Buffer.from(b.buffer, b.byteOffset, 4).toString('latin1') === 'RIFF') {
    // WebP: the RIFF header declares the file size.
    const declared = new DataView(b.buffer, b.byteOffset, n).getUint32(4, true) + 8;
    return declared > n;
  }
  if (n >= 6 && Buffer.from(b.buffer, b.byteOffset, 3).toString('latin1') === 'GIF') return b[n - 1] !== 0x3b;
  return false;
}

// sharp reports failures as messages only; this is the one place that maps them to codes.
function mapSharpError(err: unknown, bytes?: Uint8Array): InvalidInputError {
  const msg = err instanceof Error ? err.message : String(err);
  if (bytes && !/exceeds pixel limit/i.test(msg) && endsEarly(bytes)) return new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, `image data ends early (${msg})`, { cause: err });
  if (/exceeds pixel limit/i.test(msg)) return new InvalidInputError(ErrorCode.TOO_MANY_PIXELS, `image has too many pixels (${msg})`, { cause: err });
  if (/unsupported image format|Input Buffer is empty/i.test(msg)) return new InvalidInputError(ErrorCode.UNSUPPORTED_FORMAT, 'not an image in an accepted format (JPEG, PNG, WebP, GIF)', { cause: err });
  if (/premature end|truncated|unexpected end|not enough data|read error|end of (file|stream)/i.test(msg)) return new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, `image data ends early (${msg})`, { cause: err });
  return new InvalidInputError(ErrorCode.CORRUPT_IMAGE, `image cannot be decoded (${msg})`, { cause: err });
}

/** EXIF orientations 5-8 swap width and height. */
function orientedSize(width: number, height: number, orientation: number | undefined): [number, number] {
  return orientation !== undefined && orientation >= 5 ? [height, width] : [width, height];
}

/** Reads only the header: cheap, and refuses what must never be decoded. */
export async function probeImage(bytes: Uint8Array, limits: ImageLimits): Promise<ImageInfo> {
  if (bytes.byteLength === 0) throw new InvalidInputError(ErrorCode.EMPTY_INPUT, 'the input is empty (0 bytes)');
  if (bytes.byteLength > limits.maxInputBytes) {
    throw new InvalidInputError(ErrorCode.TOO_LARGE, `the input has ${bytes.byteLength} bytes; the limit is ${limits.maxInputBytes}`);
  }
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: limits.maxPixels, pages: 1 }).metadata();
  } catch (err) {
    throw mapSharpError(err, bytes);
  }
  const format = meta.format as string | undefined;
  if (!format || !(ACCEPTED_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidInputError(ErrorCode.UNSUPPORTED_FORMAT, `format "${format ?? 'unknown'}" is not accepted (JPEG, PNG, WebP, GIF)`);
  }
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  if (w * h > limits.maxPixels) {
    throw new InvalidInputError(ErrorCode.TOO_MANY_PIXELS, `image declares ${w}x${h} = ${w * h} pixels; the limit is ${limits.maxPixels}`);
  }
  if (w < limits.minSide || h < limits.minSide) {
    throw new InvalidInputError(ErrorCode.TOO_SMALL, `image is ${w}x${h}; both sides must be at least ${limits.minSide} pixels`);
  }
  // Cut-off JPEGs and PNGs are refused here, before anything is stored or queued; the check
  // reads no pixels. (WebP and GIF truncation is found when the first stage decodes.)
  if ((format === 'jpeg' || format === 'png') && endsEarly(bytes)) {
    throw new InvalidInputError(ErrorCode.TRUNCATED_IMAGE, `the ${format.toUpperCase()} data ends before its end marker`);
  }
  const [width, height] = orientedSize(w, h, meta.orientation);
  return create(ImageInfoSchema, { format, width, height, sizeBytes: BigInt(bytes.byteLength) });
}

/**
 * Decodes the first frame to sRGB packed RGB with EXIF orientation applied. Truncated or
 * damaged data fails rather than yielding a half-grey picture.
 */
/**
 * The image as RGB. With `maxPixelsOut`, a larger image comes out scaled down (aspect kept) to
 * at most that many pixels, resized as it decodes so the full size is never held.
 */
export function decodeRgb(bytes: Uint8Array, limits: ImageLimits, maxPixelsOut?: number): Promise<RgbImage> {
  return withSpan(SpanName.decode, { [Attr.objectBytes]: bytes.byteLength }, async (span) => {
    const img = await decode(bytes, limits, maxPixelsOut);
    span.setAttributes({ [Attr.imageWidth]: img.width, [Attr.imageHeight]: img.height });
    return img;
  });
}

async function decode(bytes: Uint8Array, limits: ImageLimits, maxPixelsOut = Infinity): Promise<RgbImage> {
  const info0 = await probeImage(bytes, limits);
  try {
    let pipeline = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'truncated', pages: 1 }).rotate().toColourspace('srgb').removeAlpha();
    const scale = Math.sqrt(maxPixelsOut / (info0.width * info0.height));
    // 'inside' a box of at most maxPixelsOut pixels also bounds an image the rotation turns.
    if (scale < 1) pipeline = pipeline.resize({ width: Math.max(1, Math.floor(info0.width * scale)), height: Math.max(1, Math.floor(info0.height * scale)), fit: 'inside' });
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) {
      // Greyscale sources come out with one channel; expand so every consumer sees RGB.
      return expandToRgb(data, info.width, info.height, info.channels);
    }
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw mapSharpError(err, bytes);
  }
}

function expandToRgb(data: Uint8Array, width: number, height: number, channels: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += channels) {
    const v = data[j];
    out[i * 3] = data[j];
    out[i * 3 + 1] = channels >= 3 ? data[j + 1] : v;
    out[i * 3 + 2] = channels >= 3 ? data[j + 2] : v;
  }
  return { data: out, width, height };
}

/** PNG encoding of a single-channel buffer (masks, heatmaps). */
export async function encodeGreyPng(data: Uint8Array, width: number, height: number): Promise<Buffer> {
  // b-w keeps the PNG single-channel; libvips would otherwise widen it to sRGB.
  return sharp(data, { raw: { width, height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 6 }) /* masks are mostly flat: small and quick at any level */.toBuffer();
}

/**
 * A small in-process cache of decoded originals, so that stages sharing a process (embedded
 * mode) decode each image once. Bounded by bytes; least recently used entries go first. In
 * distributed mode every process has its own and simply misses.
 */
export class DecodedImageCache {
  private readonly entries = new Map<string, Promise<RgbImage>>();
  private readonly sizes = new Map<string, number>();
  private bytes = 0;
  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  get(key: string, decode: () => Promise<RgbImage>): Promise<RgbImage> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const p = decode();
    this.entries.set(key, p);
    p.then(
      (img) => {
        if (!this.entries.has(key)) return;
        this.sizes.set(key, img.data.byteLength);
        this.bytes += img.data.byteLength;
        for (const k of this.entries.keys()) {
          if (this.bytes <= this.maxBytes || k === key) break;
          this.evict(k);
        }
      },
      () => this.entries.delete(key), // failures are not cached: the error is the caller's
    );
    return p;
  }

  private evict(key: string): void {
    this.entries.delete(key);
    this.bytes -= this.sizes.get(key) ?? 0;
    this.sizes.delete(key);
  }
}
