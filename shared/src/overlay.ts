// Overlays for people, rendered on request from the stored original, mask and face boxes,
// then kept under their deterministic key so the second request is a plain read. Served by
// ingest; here in shared/ so that no service reaches into the localizer's folder for it.
import sharp from 'sharp';
import { create } from '@bufbuild/protobuf';
import { sha256Hex } from './ids.ts';
import type { DecodedImageCache, ImageLimits, RgbImage } from './image.ts';
import { loadOriginal } from './originals.ts';
import { Bucket, ObjectKey, type ObjectStore } from './object-store.ts';
import type { Analysis } from './gen/tampertrace/v1/analysis_pb.ts';
import { ObjectRefSchema, type ObjectRef } from './gen/tampertrace/v1/common_pb.ts';

/** The overlay of a completed (or no-face) analysis; undefined when it has no mask (rejected, failed). */
export async function overlayFor(store: ObjectStore, a: Analysis, limits: ImageLimits, decoded?: DecodedImageCache): Promise<ObjectRef | undefined> {
  if (a.artifacts?.overlay?.key) return a.artifacts.overlay;
  const { original, mask } = a.artifacts ?? {};
  if (!original?.key || !mask?.key) return undefined;
  // Rendered before for this analysis (the analysis a caller holds may predate it).
  const key = ObjectKey.artifact(a.tenantId, a.analysisId, 'overlay.png');
  if (await store.exists(Bucket.artifacts, key)) {
    const png = await store.get(Bucket.artifacts, key);
    return (a.artifacts!.overlay = create(ObjectRefSchema, { bucket: Bucket.artifacts, key, sha256: sha256Hex(png), sizeBytes: BigInt(png.length), contentType: 'image/png' }));
  }
  const [img, maskPng] = await Promise.all([loadOriginal(store, original, limits, decoded), store.get(mask.bucket, mask.key)]);
  const maskPx = await sharp(maskPng).extractChannel(0).raw().toBuffer();
  const png = await renderOverlay(img, maskPx, a.faces.map((f) => f.box!));
  const ref = await store.put(Bucket.artifacts, key, png, 'image/png');
  a.artifacts!.overlay = ref;
  return ref;
}

/**
 * The image with the mask tinted red and face boxes drawn, for people (PNG). Blending and
 * boxes are drawn here rather than composited by libvips: an SVG layer the size of the image
 * cost more than the whole PNG encode (measured: 140 ms against 62 ms at 1080p).
 */
export async function renderOverlay(img: RgbImage, mask: Uint8Array, boxes: ReadonlyArray<{ x: number; y: number; width: number; height: number }>): Promise<Buffer> {
  const { width, height } = img;
  const out = Buffer.from(img.data);
  const ALPHA = 110; // of 255: enough to see, not enough to hide the pixels underneath
  for (let p = 0; p < mask.length; p++) {
    if (!mask[p]) continue;
    const i = p * 3;
    out[i] = (out[i] * (255 - ALPHA) + 255 * ALPHA) / 255;
    out[i + 1] = (out[i + 1] * (255 - ALPHA)) / 255;
    out[i + 2] = (out[i + 2] * (255 - ALPHA)) / 255;
  }
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 300));
  const fill = (x0: number, y0: number, x1: number, y1: number) => {
    for (let y = Math.max(0, y0); y < Math.min(height, y1); y++) {
      for (let x = Math.max(0, x0); x < Math.min(width, x1); x++) {
        const i = (y * width + x) * 3;
        out[i] = 0x00;
        out[i + 1] = 0xe6;
        out[i + 2] = 0x76;
      }
    }
  };
  for (const b of boxes) {
    const x0 = Math.round(b.x);
    const y0 = Math.round(b.y);
    const x1 = Math.round(b.x + b.width);
    const y1 = Math.round(b.y + b.height);
    fill(x0, y0, x1, y0 + stroke);
    fill(x0, y1 - stroke, x1, y1);
    fill(x0, y0, x0 + stroke, y1);
    fill(x1 - stroke, y0, x1, y1);
  }
  // Level 1 without adaptive filtering: an overlay is looked at, not archived.
  return sharp(out, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
}
