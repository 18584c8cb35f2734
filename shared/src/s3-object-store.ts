// ObjectStore on an S3 API (AWS S3, MinIO, S3Proxy) through the minio client: the distributed
// mode's counterpart of FsObjectStore. Import it from '@tampertrace/shared/s3-object-store' (it is
// not re-exported from the package index, so embedded mode never loads minio).
//
// Objects are written with one single PUT: partSize is set to S3's maximum part size (5 GiB), so
// minio never switches to a multipart upload for a Buffer (multipart needs ListMultipartUploads,
// which S3Proxy's filesystem backends lack; see deploy/local/README.md). S3 itself caps a single
// PUT at 5 GiB, far above anything this project stores.
import { Client, S3Error } from 'minio';
import { create } from '@bufbuild/protobuf';
import { type ObjectRef, ObjectRefSchema, ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { RetriableError } from './errors.ts';
import { sha256Hex } from './ids.ts';
import { Bucket, checkKey, ObjectNotFoundError, type ObjectStore } from './object-store.ts';
import { observeStore } from './observe.ts';

export interface S3ObjectStoreOptions {
  /** http(s)://host[:port], no path. http → payload SHA-256 is signed; https → TLS. */
  endpoint: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** Prepended to every bucket name on the server (e.g. "prod-"); ObjectRefs keep the logical name. */
  bucketPrefix?: string;
  /** Path-style URLs (http://host/bucket/key). Default true (MinIO, S3Proxy); false = virtual-hosted. */
  pathStyle?: boolean;
}

/** Error codes of a dropped or refused connection (classify() treats these as retriable). */
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'ECONNABORTED']);
/** S3 error codes that mean "try again later". */
const S3_RETRIABLE = new Set(['SlowDown', 'ServiceUnavailable', 'InternalError', 'RequestTimeout', 'RequestTimeTooSkewed']);
const NOT_FOUND = new Set(['NoSuchKey', 'NotFound', 'NoSuchBucket']);

function errCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown } | undefined;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.code === 'string') return e.code;
  // Node's happy-eyeballs connect failures come as AggregateError.
  if (Array.isArray(e.errors)) for (const inner of e.errors) if (typeof (inner as { code?: unknown })?.code === 'string') return (inner as { code: string }).code;
  if (e.cause) return errCode(e.cause);
  return undefined;
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3Error && typeof err.code === 'string' && NOT_FOUND.has(err.code);
}

export class S3ObjectStore implements ObjectStore {
  readonly client: Client;
  private readonly prefix: string;

  constructor(readonly options: S3ObjectStoreOptions) {
    const url = new URL(options.endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`S3 endpoint must be http(s): ${options.endpoint}`);
    if (url.pathname !== '/' && url.pathname !== '') throw new Error(`S3 endpoint must not have a path: ${options.endpoint}`);
    const useSSL = url.protocol === 'https:';
    this.client = new Client({
      endPoint: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      region: options.region, // known region: minio never asks the server for a bucket's location
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      pathStyle: options.pathStyle ?? true,
      partSize: 5 * 1024 * 1024 * 1024, // single PUT for every Buffer (see header)
    });
    this.prefix = options.bucketPrefix ?? '';
  }

  /**
   * TAMPERTRACE_S3_ENDPOINT, _REGION (default us-east-1), _ACCESS_KEY, _SECRET_KEY,
   * _FORCE_PATH_STYLE (default true) and the optional _BUCKET_PREFIX.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): S3ObjectStore {
    const need = (name: string): string => {
      const v = env[name];
      if (!v) throw new Error(`${name} is not set`);
      return v;
    };
    const pathStyle = env.TAMPERTRACE_S3_FORCE_PATH_STYLE;
    return new S3ObjectStore({
      endpoint: need('TAMPERTRACE_S3_ENDPOINT'),
      region: env.TAMPERTRACE_S3_REGION || 'us-east-1',
      accessKey: need('TAMPERTRACE_S3_ACCESS_KEY'),
      secretKey: need('TAMPERTRACE_S3_SECRET_KEY'),
      bucketPrefix: env.TAMPERTRACE_S3_BUCKET_PREFIX || undefined,
      pathStyle: pathStyle === undefined || pathStyle === '' ? true : /^(1|true|yes)$/i.test(pathStyle),
    });
  }

  /** The bucket's name on the server. */
  physicalBucket(bucket: string): string {
    return this.prefix + bucket;
  }

  /** Connection failures and S3 "slow down / unavailable" become RetriableError; the rest pass through. */
  private fail(op: string, bucket: string, key: string | undefined, err: unknown): Error {
    const where = key === undefined ? bucket : `${bucket}/${key}`;
    const code = errCode(err);
    const msg = err instanceof Error ? err.message || code || err.name : String(err);
    if ((code && NET_CODES.has(code)) || (code && S3_RETRIABLE.has(code)) || /Retryable HTTP status/.test(msg)) {
      return new RetriableError(ErrorCode.DEPENDENCY_UNAVAILABLE, `S3 ${op} ${where} at ${this.options.endpoint}: ${code && !msg.includes(code) ? `${code} ` : ''}${msg}`, { cause: err });
    }
    if (err instanceof Error) return err;
    return new Error(`S3 ${op} ${where}: ${msg}`, { cause: err });
  }

  async ensureBuckets(buckets: string[]): Promise<void> {
    for (const b of buckets) checkKey(b, 'x');
    await Promise.all(
      buckets.map(async (b) => {
        const name = this.physicalBucket(b);
        try {
          if (await this.client.bucketExists(name)) return;
          await this.client.makeBucket(name, this.options.region);
        } catch (err) {
          // Created concurrently (by us or another replica): that is what we wanted.
          if (err instanceof S3Error && err.code === 'BucketAlreadyOwnedByYou') return;
          throw this.fail('create bucket', name, undefined, err);
        }
      }),
    );
  }

  async put(bucket: string, key: string, data: Uint8Array, contentType: string): Promise<ObjectRef> {
    checkKey(bucket, key);
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const sha256 = sha256Hex(buf);
    try {
      await observeStore('put', bucket, buf.byteLength, () =>
        this.client.putObject(this.physicalBucket(bucket), key, buf, buf.byteLength, {
          'Content-Type': contentType,
          'x-amz-meta-sha256': sha256,
        }),
      );
    } catch (err) {
      throw this.fail('put', this.physicalBucket(bucket), key, err);
    }
    return create(ObjectRefSchema, { bucket, key, sha256, sizeBytes: BigInt(buf.byteLength), contentType });
  }

  async get(bucket: string, key: string): Promise<Buffer> {
    checkKey(bucket, key);
    const name = this.physicalBucket(bucket);
    try {
      return await observeStore('get', bucket, undefined, async () => {
        const stream = await this.client.getObject(name, key);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      });
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(`${bucket}/${key} not found`, { cause: err });
      throw this.fail('get', name, key, err);
    }
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    checkKey(bucket, key);
    const name = this.physicalBucket(bucket);
    try {
      await this.client.statObject(name, key);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw this.fail('stat', name, key, err); // unlike a missing object, an unreachable server is not "false"
    }
  }

  /** Readiness: the server answers and the originals bucket exists. */
  async ping(): Promise<void> {
    const name = this.physicalBucket(Bucket.originals);
    try {
      if (!(await this.client.bucketExists(name))) throw new Error(`bucket ${name} does not exist`);
    } catch (err) {
      throw this.fail('head bucket', name, undefined, err);
    }
  }

  /** A URL that GETs the object without credentials until it expires (1 s .. 7 days). Signed locally, no request. */
  async presignedGetUrl(bucket: string, key: string, expirySeconds: number): Promise<string> {
    checkKey(bucket, key);
    if (!Number.isInteger(expirySeconds) || expirySeconds < 1 || expirySeconds > 604_800) {
      throw new RangeError(`expirySeconds must be an integer in 1..604800, got ${expirySeconds}`);
    }
    try {
      return await this.client.presignedGetObject(this.physicalBucket(bucket), key, expirySeconds);
    } catch (err) {
      throw this.fail('presign', this.physicalBucket(bucket), key, err);
    }
  }
}
