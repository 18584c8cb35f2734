// Object storage contract shared by the local-folder store (embedded mode) and S3/MinIO
// (distributed mode). Keys are deterministic, so writing an object twice is harmless.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { type ObjectRef, ObjectRefSchema } from './gen/tampertrace/v1/common_pb.ts';
import { sha256Hex } from './ids.ts';
import { observeStore } from './observe.ts';

export const Bucket = {
  originals: 'originals',
  artifacts: 'artifacts',
} as const;

export interface ObjectStore {
  put(bucket: string, key: string, data: Uint8Array, contentType: string): Promise<ObjectRef>;
  get(bucket: string, key: string): Promise<Buffer>;
  exists(bucket: string, key: string): Promise<boolean>;
  ensureBuckets(buckets: string[]): Promise<void>;
  /** Throws when the store cannot serve requests now (readiness probes). */
  ping(): Promise<void>;
  /** A time-limited GET URL for consumers outside the process; absent where objects are local files. */
  presignedGetUrl?(bucket: string, key: string, expirySeconds: number): Promise<string>;
}

/** Sets `url` and `url_expires_at` on each ref that names an object. */
export async function presignRefs(
  presign: (bucket: string, key: string, expirySeconds: number) => Promise<string>,
  refs: Array<ObjectRef | undefined>,
  ttlSeconds: number,
): Promise<void> {
  const expires = timestampFromDate(new Date(Date.now() + ttlSeconds * 1000));
  await Promise.all(
    refs.map(async (ref) => {
      if (!ref?.key) return;
      ref.url = await presign(ref.bucket, ref.key, ttlSeconds);
      ref.urlExpiresAt = expires;
    }),
  );
}

export class ObjectNotFoundError extends Error {}

/** Object keys: tenant first, so that a prefix is a tenant boundary. */
export const ObjectKey = {
  original: (tenant: string, sha256: string) => `${tenant}/${sha256}/original`,
  /** face-crops.bin: the detection stage's crops for the localizer (face-crops.ts), not served to users. */
  artifact: (tenant: string, analysisId: string, name: 'mask.png' | 'overlay.png' | 'heatmap.png' | 'face-crops.bin') => `${tenant}/${analysisId}/${name}`,
};

const SAFE_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function checkKey(bucket: string, key: string): void {
  if (!SAFE_SEGMENT.test(bucket)) throw new Error(`invalid bucket name "${bucket}"`);
  const parts = key.split('/');
  if (parts.some((s) => !SAFE_SEGMENT.test(s) || s === '.' || s === '..')) throw new Error(`invalid object key "${key}"`);
}

/** Objects as files under a root folder: <root>/<bucket>/<key>. Writes are atomic (temp file + rename). */
export class FsObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private file(bucket: string, key: string): string {
    checkKey(bucket, key);
    return path.join(this.root, bucket, ...key.split('/'));
  }

  async ensureBuckets(buckets: string[]): Promise<void> {
    await Promise.all(buckets.map((b) => mkdir(this.file(b, 'x').slice(0, -2), { recursive: true })));
  }

  async put(bucket: string, key: string, data: Uint8Array, contentType: string): Promise<ObjectRef> {
    const file = this.file(bucket, key);
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await observeStore('put', bucket, data.byteLength, async () => {
      await writeFile(tmp, data);
      await rename(tmp, file);
    });
    return create(ObjectRefSchema, { bucket, key, sha256: sha256Hex(data), sizeBytes: BigInt(data.byteLength), contentType });
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    try {
      const file = this.file(bucket, key);
      return await observeStore('get', bucket, undefined, () => readFile(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ObjectNotFoundError(`${bucket}/${key} not found`);
      throw err;
    }
  }

  async ping(): Promise<void> {
    await stat(this.root);
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await stat(this.file(bucket, key));
      return true;
    } catch {
      return false;
    }
  }
}
