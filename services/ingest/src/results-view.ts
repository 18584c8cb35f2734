// The ingest service's core, behind both its gRPC API and its HTTP endpoint: accept images,
// keep the results view (the analyses table, fed by the results topic) and answer look-ups.
// It is the same object in embedded mode and in the distributed ingest process.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  Bucket,
  CallerError,
  ConsumerGroup,
  InvalidInputError,
  Topic,
  checkKey,
  classify,
  codeName,
  deadLetter,
  decodeEvent,
  limitsOf,
  presignRefs,
  sha256Hex,
  type Config,
  type DecodedImageCache,
  type EventBus,
  type Logger,
  type ObjectStore,
  type SqlClient,
  type Subscription,
  type BusMessage,
} from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Stage, type ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, FacesDetectedSchema, ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { ArtifactKind, ListAnalysesResponseSchema, type ListAnalysesRequest, type ListAnalysesResponse } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { OverlayRenderer } from '@tampertrace/forgery-localization/overlay';
import { AnalysesStore, type ListCursor } from './analyses.ts';
import { Ingestor, type SubmitOptions, type SubmitResult } from './ingest-stage.ts';

/** Consumer group of the results view: shared by gateway replicas, so each final state is written once per group. */
export const RESULTS_GROUP = ConsumerGroup.ingestResults;

/**
 * How often a watcher re-reads the table. The results consumer wakes watchers in its own process
 * at once; with several gateway replicas a step may be consumed by another one, and this poll is
 * how the watcher learns about it. The interval doubles while nothing happens, up to
 * POLL_MAX_MS, and starts again after each step: under overload, hundreds of watchers polling
 * every 250 ms queued enough reads in the embedded database to hold up Submit for a minute.
 */
const POLL_MS = 250;
const POLL_MAX_MS = 2000;

/** The next poll interval: back to the start after an event, else doubled up to the maximum. */
const nextPoll = (ms: number, woken: boolean) => (woken ? POLL_MS : Math.min(POLL_MAX_MS, ms * 2));

/** Whether `p` settled first (true), or the poll timer fired (false). */
async function wokenBefore(p: Promise<void>, ms: number, signal?: AbortSignal): Promise<boolean> {
  return Promise.race([p.then(() => true), sleep(ms, signal).then(() => false)]);
}

export interface GatewaySubmitOptions {
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

export interface GatewaySubmitResult extends SubmitResult {
  deduplicated: boolean;
}

/** One step of a watched analysis: a stage finished, or the final state. */
export interface WatchStep {
  stage: Stage;
  analysis: Analysis;
}

export interface GatewayDeps {
  cfg: Config;
  log: Logger;
  bus: EventBus;
  store: ObjectStore;
  sql: SqlClient;
  /** Shared with the stages when they run in this process, so an overlay does not decode again. */
  decoded?: DecodedImageCache;
  /** Called once per final result by the replica that consumed it (webhook delivery). */
  onFinal?: (a: Analysis, webhookUrl: string | undefined) => void;
}

/** What the results consumer reads: each stage's output, for WatchAnalysis, and the results. */
const WATCHED = [
  { topic: Topic.facesDetected, schema: FacesDetectedSchema, stage: Stage.FACE_DETECTION },
  { topic: Topic.forgeryLocalized, schema: ForgeryLocalizedSchema, stage: Stage.FORGERY_LOCALIZATION },
] as const;

/** The steps a watcher sees, in order: ingest, each watched stage, then the final one. */
const WATCH_ORDER: readonly Stage[] = [Stage.INGEST, ...WATCHED.map((w) => w.stage), Stage.EXPLANATION];
/** A stage's place in WATCH_ORDER; a stage outside it (one that can only end an analysis) comes last. */
const watchPosition = (s: Stage) => (WATCH_ORDER.includes(s) ? WATCH_ORDER.indexOf(s) : WATCH_ORDER.length);

/** The analysis as its PENDING row held it, for a step the watcher did not see while it was in flight. */
function pendingOf(a: Analysis): Analysis {
  return create(AnalysisSchema, {
    analysisId: a.analysisId,
    tenantId: a.tenantId,
    contentSha256: a.contentSha256,
    status: AnalysisStatus.PENDING,
    sourceName: a.sourceName,
    submittedAt: a.submittedAt,
  });
}

export class Gateway {
  readonly store: ObjectStore;
  /** Overlays rendered on first request, bounded (one render per overlay, so many at once, a pixel cap). */
  readonly overlays: OverlayRenderer;
  private readonly analyses: AnalysesStore;
  private readonly ingestor: Ingestor;
  /**
   * Watchers in this process, woken at once on each event of their analysis (`final` when it is
   * the one that ended it); other replicas' watchers learn by polling.
   */
  private readonly listeners = new Map<string, Set<(final: boolean) => void>>();
  private sub?: Subscription;

  private constructor(private readonly deps: GatewayDeps) {
    this.store = deps.store;
    this.analyses = new AnalysesStore(deps.sql);
    this.ingestor = new Ingestor({ bus: deps.bus, store: deps.store, limits: limitsOf(deps.cfg) });
    this.overlays = new OverlayRenderer(
      deps.store,
      limitsOf(deps.cfg),
      { maxPixels: deps.cfg.TAMPERTRACE_OVERLAY_MAX_PIXELS, renders: deps.cfg.TAMPERTRACE_OVERLAY_RENDERS },
      deps.decoded,
    );
  }

  /** Creates the tables and buckets, and starts the results consumer. */
  static async start(deps: GatewayDeps): Promise<Gateway> {
    const g = new Gateway(deps);
    await g.analyses.migrate();
    await deps.store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
    g.sub = await deps.bus.subscribe({
      group: RESULTS_GROUP,
      topics: [Topic.analysisCompleted, ...WATCHED.map((w) => w.topic)],
      handler: (msg) => g.consume(msg),
    });
    return g;
  }

  private async consume(msg: BusMessage): Promise<void> {
    const watched = WATCHED.find((w) => w.topic === msg.topic);
    let id: string;
    let final: Analysis | undefined;
    try {
      if (watched) {
        id = decodeEvent(watched.schema, msg).meta!.analysisId;
      } else {
        final = decodeEvent(AnalysisCompletedSchema, msg).analysis;
        if (!final?.analysisId) throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'AnalysisCompleted without an analysis');
        id = final.analysisId;
      }
    } catch (err) {
      const e = classify(err);
      this.deps.log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code) }, 'dead-lettering an unreadable event');
      await deadLetter(this.deps.bus, msg, RESULTS_GROUP, codeName(e.code), e.message);
      return;
    }
    // A database failure throws: the message is not committed and comes back.
    if (watched) await this.analyses.stageDone(id, watched.stage);
    else {
      const first = await this.analyses.final(final!);
      if (first) this.deps.onFinal?.(final!, first.webhookUrl);
    }
    for (const wake of this.listeners.get(id) ?? []) wake(!watched);
  }

  async submit(bytes: Uint8Array, opts: GatewaySubmitOptions): Promise<GatewaySubmitResult> {
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
  async submitFile(file: string, opts: GatewaySubmitOptions): Promise<GatewaySubmitResult> {
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
  async submitTooLarge(contentSha256: string, sizeBytes: number, opts: GatewaySubmitOptions): Promise<GatewaySubmitResult> {
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
  async submitObject(ref: { bucket: string; key: string }, opts: GatewaySubmitOptions): Promise<GatewaySubmitResult> {
    const notFound = new CallerError(ErrorCode.NOT_FOUND, `no object ${ref.bucket}/${ref.key} for this tenant`);
    if (!(Object.values(Bucket) as string[]).includes(ref.bucket) || !ref.key.startsWith(`${opts.tenantId}/`)) throw notFound;
    try {
      checkKey(ref.bucket, ref.key);
    } catch {
      throw notFound;
    }
    if (!(await this.store.exists(ref.bucket, ref.key))) throw notFound;
    // The tenant's own derived artefacts (masks, heatmaps) are not inputs.
    if (ref.bucket !== Bucket.originals) throw new CallerError(ErrorCode.PERMISSION_DENIED, `only objects in the ${Bucket.originals} bucket can be submitted`);
    return this.submit(await this.store.get(ref.bucket, ref.key), opts);
  }

  /**
   * The PENDING row goes in before the event goes out, so the final state can never precede it.
   * That insert is also where deduplication and the in-flight cap are decided, atomically
   * (AnalysesStore.admitPending): a submission that loses is abandoned before it is published.
   */
  private async record(opts: GatewaySubmitOptions, run: (o: SubmitOptions) => Promise<SubmitResult>): Promise<GatewaySubmitResult> {
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

  /** The analysis as it stands (PENDING while in flight), or undefined when this tenant has none with that id. */
  async get(tenantId: string, analysisId: string): Promise<Analysis | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    return a && this.withUrls(a);
  }

  /** Resolves with the final analysis; rejects when `signal` fires first or the tenant has no such analysis. */
  async wait(tenantId: string, analysisId: string, signal?: AbortSignal): Promise<Analysis> {
    // Only the end matters here: read now, then again when the final event is recorded or the
    // poll timer fires (a result another replica recorded), not after every stage as watch() does.
    let ended = () => {};
    let end = new Promise<void>((resolve) => (ended = resolve));
    const unlisten = this.listen(analysisId, (final) => final && ended());
    try {
      let poll = POLL_MS;
      for (;;) {
        signal?.throwIfAborted();
        const a = await this.analyses.get(tenantId, analysisId);
        if (!a) throw new CallerError(ErrorCode.NOT_FOUND, `no analysis ${analysisId}`);
        if (a.status !== AnalysisStatus.PENDING) return this.withUrls(a);
        poll = nextPoll(poll, await wokenBefore(end, poll, signal));
        end = new Promise<void>((resolve) => (ended = resolve));
      }
    } finally {
      unlisten();
    }
  }

  private listen(analysisId: string, listener: (final: boolean) => void): () => void {
    let set = this.listeners.get(analysisId);
    if (!set) this.listeners.set(analysisId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(analysisId);
    };
  }

  /**
   * The analysis now, then one step per finished stage, in pipeline order, ending with the final
   * state. A stage that finished between two looks (or whose event was consumed after the final
   * one: the topics are read independently) is still reported, with the analysis as it stood
   * while PENDING, so every watcher sees every stage in order.
   */
  async *watch(tenantId: string, analysisId: string, signal?: AbortSignal): AsyncGenerator<WatchStep> {
    let wake = () => {};
    let woken = new Promise<void>((resolve) => (wake = resolve));
    const unlisten = this.listen(analysisId, () => wake());
    try {
      let seen = -1;
      let pending: Analysis | undefined;
      let poll = POLL_MS;
      for (;;) {
        signal?.throwIfAborted();
        // Listening before this read, so a step consumed in between still wakes us.
        const row = await this.analyses.getWithStage(tenantId, analysisId);
        if (!row) return;
        const final = row.analysis.status !== AnalysisStatus.PENDING;
        if (!final) pending = row.analysis;
        // The stage that finished last: the one that ended it (a rejection names its stage), or
        // the newest one seen while PENDING (ingest until detection is through).
        const stage: Stage = final ? row.analysis.error?.stage || Stage.EXPLANATION : row.stage || Stage.INGEST;
        const at = watchPosition(stage);
        if (at > seen || final) {
          for (let i = seen + 1; i < at; i++) {
            yield { stage: WATCH_ORDER[i], analysis: await this.withUrls(pending ?? pendingOf(row.analysis)) };
          }
          seen = at;
          yield { stage, analysis: await this.withUrls(row.analysis) };
        }
        if (final) return;
        poll = nextPoll(poll, await wokenBefore(woken, poll, signal));
        woken = new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      unlisten();
    }
  }

  /** The overlay PNG's ref, rendered and stored on first request. */
  overlay(a: Analysis): Promise<ObjectRef | undefined> {
    return this.overlays.overlayOf(a);
  }

  /** One page of the tenant's analyses, newest first (ListAnalyses). */
  async list(tenantId: string, req: ListAnalysesRequest): Promise<ListAnalysesResponse> {
    if (!(req.minForgeryScore >= 0 && req.minForgeryScore <= 1)) throw new CallerError(ErrorCode.INVALID_MESSAGE, `min_forgery_score must be in [0, 1], got ${req.minForgeryScore}`);
    const size = Math.min(req.pageSize || LIST_PAGE_DEFAULT, LIST_PAGE_MAX);
    const after = req.pageToken ? cursorOf(req.pageToken) : undefined;
    // One row more than the page says whether another page follows.
    const rows = await this.analyses.list(tenantId, req, size + 1, after);
    const page = rows.slice(0, size);
    const nextPageToken = rows.length > size ? tokenOf(page.at(-1)!.cursor) : '';
    return create(ListAnalysesResponseSchema, { analyses: await Promise.all(page.map((r) => this.withUrls(r.analysis))), nextPageToken });
  }

  /** One artefact of a tenant's analysis with its bytes, or undefined when there is none. */
  async artifact(tenantId: string, analysisId: string, kind: ArtifactKind): Promise<{ ref: ObjectRef; content: Buffer } | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    if (!a?.artifacts) return undefined;
    const ref =
      kind === ArtifactKind.OVERLAY
        ? await this.overlay(a)
        : { [ArtifactKind.ORIGINAL]: a.artifacts.original, [ArtifactKind.MASK]: a.artifacts.mask, [ArtifactKind.HEATMAP]: a.artifacts.heatmap }[kind as number];
    if (!ref?.key) return undefined;
    return { ref, content: await this.store.get(ref.bucket, ref.key) };
  }

  /** Submission-side state the API layers need (admission control counts analyses in flight). */
  get sql(): SqlClient {
    return this.deps.sql;
  }

  async stop(): Promise<void> {
    await this.sub?.stop();
  }

  /** Fresh presigned URLs for the artefacts, where the store can make them (S3). */
  private async withUrls(a: Analysis): Promise<Analysis> {
    const presign = this.store.presignedGetUrl?.bind(this.store);
    if (!presign || !a.artifacts) return a;
    const ttl = this.deps.cfg.TAMPERTRACE_PRESIGN_TTL_S;
    await presignRefs(presign, [a.artifacts.original, a.artifacts.mask, a.artifacts.heatmap, a.artifacts.overlay], ttl);
    return a;
  }
}

/** A submission that found, when it was recorded, an analysis of the same bytes made meanwhile: it is abandoned unpublished. */
class LostToPrior extends Error {
  constructor(readonly prior: Analysis) {
    super('deduplicated');
  }
}

function deduplicated(prior: Analysis): GatewaySubmitResult {
  return { analysisId: prior.analysisId, contentSha256: prior.contentSha256, rejected: prior.error, deduplicated: true };
}

const LIST_PAGE_DEFAULT = 50;
const LIST_PAGE_MAX = 200;

/** A ListAnalyses page token: where the previous page ended (opaque to callers). */
function tokenOf(c: ListCursor): string {
  return Buffer.from(`${c.submittedAt.getTime()}.${c.analysisId}`).toString('base64url');
}

function cursorOf(token: string): ListCursor {
  const m = /^(\d{1,16})\.([0-9a-f-]{36})$/.exec(Buffer.from(token, 'base64url').toString('utf8'));
  const submittedAt = m ? new Date(Number(m[1])) : undefined;
  // Well-formed digits can still be past the last Date (8.64e15 ms), which toISOString refuses.
  if (!m || !submittedAt || Number.isNaN(submittedAt.getTime())) throw new CallerError(ErrorCode.INVALID_MESSAGE, 'not a ListAnalyses page token');
  return { submittedAt, analysisId: m[2] };
}

function sleep(ms: number, signal?: AbortSignal): Promise<undefined> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(undefined);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
