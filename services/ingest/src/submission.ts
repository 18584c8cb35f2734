// Submission: accept an image (bytes, a file, an object of the tenant's, or only the hash of an
// oversized input), record it PENDING with deduplication and the in-flight cap decided atomically
// (AnalysesStore.admitPending), then hand it to the ingest stage, which publishes it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { Bucket, CallerError, checkKey, limitsOf, sha256Hex, type Config, type EventBus, type ObjectStore } from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { AnalysesStore } from './analyses.ts';
import { Ingestor, type SubmitOptions, type SubmitResult } from './ingest-stage.ts';

export interface SubmissionOptions {
  tenantId: string;
  sourceName?: string;
  /** Who submitted it, for the audit trail (see EventMeta.submitted_by). */
  submittedBy?: string;
  /** Return the tenant's existing analysis of the same bytes instead of analysing them again. */
  dedupe?: boolean;
  /**
   * Refuse (QUOTA_EXCEEDED) when the tenant already has this many analyses in flight; checked
   * atomically with recording this one, across every replica on the database.
   */
  maxInFlight?: number;
  /** Receives the final result (overrides the tenant's webhook). */
  webhookUrl?: string;
  /** A submission whose caller gave up (deadline, cancel) before it was published leaves no trace. */
  signal?: AbortSignal;
}

export interface SubmissionResult extends SubmitResult {
  deduplicated: boolean;
}

export interface SubmissionDeps {
  cfg: Config;
  bus: EventBus;
  store: ObjectStore;
}

export class Submission {
  private readonly ingestor: Ingestor;

  constructor(
    private readonly deps: SubmissionDeps,
    private readonly analyses: AnalysesStore,
  ) {
    this.ingestor = new Ingestor({ bus: deps.bus, store: deps.store, limits: limitsOf(deps.cfg) });
  }

  async submit(bytes: Uint8Array, opts: SubmissionOptions): Promise<SubmissionResult> {
    // A cheap first look spares the usual resubmission the work; the answer that counts is
    // decided atomically when the analysis is recorded (record), since others may be racing.
    if (opts.dedupe) {
      const prior = await this.analyses.latestOf(opts.tenantId, sha256Hex(bytes));
      if (prior) return deduplicated(prior);
    }
    return this.record(opts, (o) => this.ingestor.submit(bytes, o));
  }

  /**
   * Submits a file, reading it only when it is within the size limit: a bigger one is hashed as
   * a stream and refused without ever being held in memory.
   */
  async submitFile(file: string, opts: SubmissionOptions): Promise<SubmissionResult> {
    const size = (await stat(file)).size;
    const limit = this.deps.cfg.TAMPERTRACE_MAX_INPUT_BYTES;
    if (size <= limit) return this.submit(await readFile(file), opts);
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    return this.submitTooLarge(hash.digest('hex'), size, opts);
  }

  /**
   * Records the REJECTED (TOO_LARGE) analysis of an input over the size limit that the caller
   * hashed as it streamed past (a file, a raw HTTP body), never holding its bytes; deduplicated
   * like every other submission.
   */
  async submitTooLarge(contentSha256: string, sizeBytes: number, opts: SubmissionOptions): Promise<SubmissionResult> {
    if (opts.dedupe) {
      const prior = await this.analyses.latestOf(opts.tenantId, contentSha256);
      if (prior) return deduplicated(prior);
    }
    return this.record(opts, (o) => this.ingestor.rejectTooLarge(contentSha256, sizeBytes, o));
  }

  /**
   * Submits an object already in the tenant's storage. Keys outside the tenant's prefix answer
   * NOT_FOUND without a look, so other tenants' objects cannot even be probed.
   */
  async submitObject(ref: { bucket: string; key: string }, opts: SubmissionOptions): Promise<SubmissionResult> {
    const notFound = new CallerError(ErrorCode.NOT_FOUND, `no object ${ref.bucket}/${ref.key} for this tenant`);
    if (!(Object.values(Bucket) as string[]).includes(ref.bucket) || !ref.key.startsWith(`${opts.tenantId}/`)) throw notFound;
    try {
      checkKey(ref.bucket, ref.key);
    } catch {
      throw notFound;
    }
    if (!(await this.deps.store.exists(ref.bucket, ref.key))) throw notFound;
    // The tenant's own derived artefacts (masks, heatmaps) are not inputs.
    if (ref.bucket !== Bucket.originals) throw new CallerError(ErrorCode.PERMISSION_DENIED, `only objects in the ${Bucket.originals} bucket can be submitted`);
    return this.submit(await this.deps.store.get(ref.bucket, ref.key), opts);
  }

  /**
   * The PENDING row goes in before the event goes out, so the final state can never precede it.
   * That insert is also where deduplication and the in-flight cap are decided, atomically
   * (AnalysesStore.admitPending): a submission that loses is abandoned before it is published.
   */
  private async record(opts: SubmissionOptions, run: (o: SubmitOptions) => Promise<SubmitResult>): Promise<SubmissionResult> {
    let id: string | undefined;
    try {
      const r = await run({
        tenantId: opts.tenantId,
        sourceName: opts.sourceName,
        submittedBy: opts.submittedBy,
        beforePublish: async ({ analysisId, contentSha256 }) => {
          opts.signal?.throwIfAborted();
          const pending = create(AnalysisSchema, {
            analysisId,
            tenantId: opts.tenantId,
            contentSha256,
            status: AnalysisStatus.PENDING,
            sourceName: opts.sourceName ?? '',
            submittedAt: timestampFromDate(new Date()),
          });
          const admitted = await this.analyses.admitPending(pending, { dedupe: opts.dedupe ?? false, maxInFlight: opts.maxInFlight, webhookUrl: opts.webhookUrl });
          if (admitted.prior) throw new LostToPrior(admitted.prior);
          if (admitted.inFlight !== undefined) throw new CallerError(ErrorCode.QUOTA_EXCEEDED, `${admitted.inFlight} analyses in flight; the maximum is ${opts.maxInFlight}`, 1000);
          id = analysisId;
          opts.signal?.throwIfAborted();
        },
      });
      return { ...r, deduplicated: false };
    } catch (err) {
      if (err instanceof LostToPrior) return deduplicated(err.prior);
      // Not published: no analysis exists, so its PENDING row must not either.
      if (id) await this.analyses.forget(id).catch(() => {});
      throw err;
    }
  }
}

/** A submission that found, when it was recorded, an analysis of the same bytes made meanwhile: it is abandoned unpublished. */
class LostToPrior extends Error {
  constructor(readonly prior: Analysis) {
    super('deduplicated');
  }
}

function deduplicated(prior: Analysis): SubmissionResult {
  return { analysisId: prior.analysisId, contentSha256: prior.contentSha256, rejected: prior.error, deduplicated: true };
}
