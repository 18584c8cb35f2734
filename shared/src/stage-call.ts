// Synchronous calls to a stage (FaceDetectionService.Detect, ...): the stage's own handler, fed
// one call as if it were one event, with an in-memory store that nothing outlives.
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { Config } from './config.ts';
import { ObjectRefSchema, type ImageInfo, type ObjectRef } from './gen/tampertrace/v1/common_pb.ts';
import { EventMetaSchema, type EventMeta } from './gen/tampertrace/v1/events_pb.ts';
import { eventId, sha256Hex, uuidv7 } from './ids.ts';
import { probeImage } from './image.ts';
import { Bucket, ObjectKey, ObjectNotFoundError, type ObjectStore } from './object-store.ts';

/** The objects of one synchronous call, in memory: the stage reads the call's image and writes its artefacts here; nothing outlives the call. */
export class CallObjectStore implements ObjectStore {
  private readonly objects = new Map<string, Buffer>();

  async put(bucket: string, key: string, data: Uint8Array, contentType: string): Promise<ObjectRef> {
    this.objects.set(`${bucket}/${key}`, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return create(ObjectRefSchema, { bucket, key, sha256: sha256Hex(data), sizeBytes: BigInt(data.byteLength), contentType });
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    const o = this.objects.get(`${bucket}/${key}`);
    if (!o) throw new ObjectNotFoundError(`${bucket}/${key} not found`);
    return o;
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    return this.objects.has(`${bucket}/${key}`);
  }

  async ensureBuckets(): Promise<void> {}

  async ping(): Promise<void> {}
}

/** What a stage's input event needs for one synchronous call. */
export interface StageCall {
  /** Holds the call's original (when there is one) and whatever the stage stores. */
  store: CallObjectStore;
  /** A fresh analysis id (never published), the configured tenant, the content's sha256. */
  meta: EventMeta;
  /** The call's image in `store`, as ingest would have stored it. */
  original?: ObjectRef;
  /** Header facts of the call's image, checked as ingest checks a submission (probeImage). */
  image?: ImageInfo;
}

/**
 * Turns a synchronous call into a stage's input: with `content`, the bytes are checked like a
 * submission (empty, too large, not an image, too many pixels: InvalidInputError with its code)
 * and put where the stage will fetch them.
 */
export async function stageCall(cfg: Config, content?: Uint8Array): Promise<StageCall> {
  const store = new CallObjectStore();
  const analysisId = uuidv7();
  const now = timestampNow();
  if (content === undefined) {
    return { store, meta: create(EventMetaSchema, { eventId: eventId(analysisId, 'call'), analysisId, tenantId: cfg.TAMPERTRACE_TENANT, submittedAt: now, occurredAt: now }) };
  }
  const image = await probeImage(content, { maxInputBytes: cfg.TAMPERTRACE_MAX_INPUT_BYTES, maxPixels: cfg.TAMPERTRACE_MAX_PIXELS, minSide: cfg.TAMPERTRACE_MIN_SIDE });
  const contentSha256 = sha256Hex(content);
  const original = await store.put(Bucket.originals, ObjectKey.original(cfg.TAMPERTRACE_TENANT, contentSha256), content, `image/${image.format}`);
  const meta = create(EventMetaSchema, { eventId: eventId(analysisId, 'call'), analysisId, tenantId: cfg.TAMPERTRACE_TENANT, contentSha256, submittedAt: now, occurredAt: now });
  return { store, meta, original, image };
}

