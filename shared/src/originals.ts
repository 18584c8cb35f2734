// Fetching and decoding a stored original, once per process where possible.
import type { ObjectRef } from './gen/tampertrace/v1/common_pb.ts';
import { decodeRgb, type DecodedImageCache, type ImageLimits, type RgbImage } from './image.ts';
import type { ObjectStore } from './object-store.ts';

/** `bytes`: the original's bytes when the caller has fetched them already (they are not fetched again). */
export async function loadOriginal(store: ObjectStore, ref: ObjectRef, limits: ImageLimits, cache?: DecodedImageCache, bytes?: Uint8Array): Promise<RgbImage> {
  const load = async () => decodeRgb(bytes ?? (await store.get(ref.bucket, ref.key)), limits);
  // Keyed by content hash too: the same key always holds the same bytes (content-addressed).
  return cache ? cache.get(`${ref.bucket}/${ref.key}@${ref.sha256}`, load) : load();
}
