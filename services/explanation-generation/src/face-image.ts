// The face as a vision-language model is shown it: the localizer's crop of the face (box x1.5,
// square) from the stored original, with the forgery mask tinted red and its edge drawn, as PNG.
import sharp from 'sharp';
import { cropRectFor, cutFaceCrop, decodeRgb, loadOriginal, type ImageLimits, type ObjectStore, type RgbImage } from '@tampertrace/shared';
import type { Face, Artifacts } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';

/** Side of the image sent, pixels: enough for a model to see the eyes and lips of the crop. */
export const FACE_IMAGE_SIZE = 320;

/** Generous decoding limits for stored originals (they passed ingest's own limits already). */
const STORED: ImageLimits = { maxInputBytes: 512 * 1024 * 1024, maxPixels: 268_402_689, minSide: 1 };

/** Draws the mask on the crop: tinted inside, solid red on its edge. Both are packed RGB, size x size. */
export function drawMask(crop: Uint8Array, mask: Uint8Array, size: number): Buffer {
  const out = Buffer.from(crop);
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < size && y < size && mask[(y * size + x) * 3] >= 128;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!inside(x, y)) continue;
      const i = (y * size + x) * 3;
      const edge = !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1);
      const a = edge ? 1 : 0.35;
      out[i] = Math.round(out[i] * (1 - a) + 255 * a);
      out[i + 1] = Math.round(out[i + 1] * (1 - a));
      out[i + 2] = Math.round(out[i + 2] * (1 - a));
    }
  }
  return out;
}

/** PNG of one face with its mask drawn, from the decoded original and mask. */
export async function faceWithMask(original: RgbImage, mask: RgbImage | undefined, face: Pick<Face, 'box'>, size = FACE_IMAGE_SIZE): Promise<Uint8Array> {
  const rect = cropRectFor(face.box!, 1.5);
  const crop = await cutFaceCrop(original, rect, size);
  const drawn = mask ? drawMask(crop, await cutFaceCrop(mask, rect, size), size) : crop;
  return sharp(drawn, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
}

/**
 * ExplanationInput.faceImage for one analysis: reads the original and the mask once, on the
 * first call, and renders each face asked for. Undefined for a face without a box or stored
 * pixels; a read or decode failure surfaces to the explainer, which falls back to the template.
 */
export function faceImageLoader(store: ObjectStore, artifacts: Artifacts, faces: readonly Face[], limits: ImageLimits = STORED): (faceIndex: number) => Promise<Uint8Array | undefined> {
  let images: Promise<[RgbImage, RgbImage | undefined]> | undefined;
  return async (faceIndex) => {
    const face = faces.find((f) => f.index === faceIndex);
    if (!face?.box || !artifacts.original?.key) return undefined;
    images ??= Promise.all([
      loadOriginal(store, artifacts.original, limits),
      artifacts.mask?.key ? store.get(artifacts.mask.bucket, artifacts.mask.key).then((b) => decodeRgb(b, STORED)) : Promise.resolve(undefined),
    ]);
    const [original, mask] = await images;
    return faceWithMask(original, mask && mask.width === original.width && mask.height === original.height ? mask : undefined, face);
  };
}
