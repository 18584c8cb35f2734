// The ingest stage: validate the submitted bytes from their header, store them under a
// content-addressed key, and announce them. Bad input ends here with a REJECTED result.
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import {
  Bucket,
  InvalidInputError,
  ObjectKey,
  Topic,
  classify,
  encodeEvent,
  eventId,
  probeImage,
  sha256Hex,
  terminalEvent,
  toErrorInfo,
  uuidv7,
  type EventBus,
  type ImageLimits,
  type ObjectStore,
} from '@tampertrace/shared';
import { AnalysisStatus, ErrorCode, Stage, StageTimingSchema, type ErrorInfo } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, EventMetaSchema, ImageIngestedSchema, type EventMeta } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';

export const INGEST = 'ingest';

export interface SubmitOptions {
  tenantId: string;
  sourceName?: string;
  /** Who submitted it (EventMeta.submitted_by): "key:<id>", "stream:<tenant>", "local". */
  submittedBy?: string;
  /**
   * Runs after the input is validated and stored and before its event is published: the last
   * moment at which the submission can still be abandoned without a trace (a passed deadline),
   * and the first at which its id is known (to record it as PENDING).
   */
  beforePublish?: (r: { analysisId: string; contentSha256: string }) => Promise<void>;
}

export interface SubmitResult {
  analysisId: string;
  contentSha256: string;
  /** Set when the input was refused; the REJECTED result has been published too. */
  rejected?: ErrorInfo;
}

export class Ingestor {
  constructor(private readonly deps: { bus: EventBus; store: ObjectStore; limits: ImageLimits }) {}

  async submit(bytes: Uint8Array, opts: SubmitOptions): Promise<SubmitResult> {
    const started = performance.now();
    const meta = newMeta(sha256Hex(bytes), opts);
    let image;
    try {
      image = await probeImage(bytes, this.deps.limits);
    } catch (err) {
      const e = classify(err);
      if (!(e instanceof InvalidInputError)) throw e;
      return this.reject(meta, e, opts);
    }
    const original = await this.deps.store.put(Bucket.originals, ObjectKey.original(opts.tenantId, meta.contentSha256), bytes, `image/${image.format}`);
    meta.timings.push(create(StageTimingSchema, { stage: Stage.INGEST, durationMs: performance.now() - started }));
    const event = create(ImageIngestedSchema, { meta, original, image });
    await opts.beforePublish?.({ analysisId: meta.analysisId, contentSha256: meta.contentSha256 });
    await this.deps.bus.publish(encodeEvent(Topic.imageIngested, ImageIngestedSchema, event));
    return { analysisId: meta.analysisId, contentSha256: meta.contentSha256 };
  }

  /**
   * For callers that learn the size before reading (files, streams): refuses an oversized input
   * without ever holding its bytes. The caller hashes the content as it streams past.
   */
  async rejectTooLarge(contentSha256: string, sizeBytes: number, opts: SubmitOptions): Promise<SubmitResult> {
    const limit = this.deps.limits.maxInputBytes;
    if (sizeBytes <= limit) throw new Error(`rejectTooLarge called for ${sizeBytes} bytes, within the limit of ${limit}`);
    return this.reject(newMeta(contentSha256, opts), new InvalidInputError(ErrorCode.TOO_LARGE, `the input has ${sizeBytes} bytes; the limit is ${limit}`), opts);
  }

  private async reject(meta: EventMeta, e: InvalidInputError, opts: SubmitOptions): Promise<SubmitResult> {
    await opts.beforePublish?.({ analysisId: meta.analysisId, contentSha256: meta.contentSha256 });
    const error = toErrorInfo(e, Stage.INGEST);
    const final = terminalEvent(meta, AnalysisStatus.REJECTED, error, INGEST);
    await this.deps.bus.publish(encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, final));
    return { analysisId: meta.analysisId, contentSha256: meta.contentSha256, rejected: error };
  }
}

function newMeta(contentSha256: string, opts: SubmitOptions): EventMeta {
  const analysisId = uuidv7();
  return create(EventMetaSchema, {
    eventId: eventId(analysisId, INGEST),
    analysisId,
    tenantId: opts.tenantId,
    contentSha256,
    occurredAt: timestampNow(),
    submittedAt: timestampNow(),
    sourceName: opts.sourceName ?? '',
    submittedBy: opts.submittedBy ?? '',
  });
}
