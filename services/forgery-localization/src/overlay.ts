// Overlays for people, rendered on request from the stored original, mask and face boxes,
// then kept under their deterministic key so the second request is a plain read.
import sharp from 'sharp';
import { create } from '@bufbuild/protobuf';
import { Bucket, ObjectKey, loadOriginal, sha256Hex, type DecodedImageCache, type ImageLimits, type ObjectStore } from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { ObjectRefSchema, type ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { renderOverlay } from './localize.ts';

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
