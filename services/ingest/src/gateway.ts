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
  InvalidInputError,
  Topic,
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
  ConsumerGroup,
} from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, type ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { ArtifactKind } from '@tampertrace/shared/gen/tampertrace/v1/ingest_pb';
import { overlayFor } from '@tampertrace/forgery-localization/overlay';
import { AnalysesStore } from './analyses.ts';
import { Ingestor, type SubmitResult } from './ingest.ts';

/** Consumer group of the results view: shared by gateway replicas, so each final state is written once per group. */
export const RESULTS_GROUP = ConsumerGroup.ingestResults;

/**
 * How often a waiter re-reads the table. The results consumer wakes waiters in its own process
 * at once; with several gateway replicas the final state may be consumed by another one, and
 * this poll is how the waiter learns about it.
 */
const POLL_MS = 250;

export interface GatewaySubmitOptions {
  tenantId: string;
  sourceName?: string;
  /** Return the tenant's existing analysis of the same bytes instead of analysing them again. */
  dedupe?: boolean;
}

export interface GatewaySubmitResult extends SubmitResult {
  deduplicated: boolean;
}

export interface GatewayDeps {
  cfg: Config;
  log: Logger;
  bus: EventBus;
  store: ObjectStore;
  sql: SqlClient;
  /** Shared with the stages when they run in this process, so an overlay does not decode again. */
  decoded?: DecodedImageCache;
}

export class Gateway {
  readonly store: ObjectStore;
  private readonly analyses: AnalysesStore;
  private readonly ingestor: Ingestor;
  private readonly waiters = new Map<string, Set<(a: Analysis) => void>>();
  private sub?: Subscription;

  private constructor(private readonly deps: GatewayDeps) {
    this.store = deps.store;
    this.analyses = new AnalysesStore(deps.sql);
    this.ingestor = new Ingestor({ bus: deps.bus, store: deps.store, limits: limitsOf(deps.cfg) });
  }

  /** Creates the table and buckets, and starts the results consumer. */
  static async start(deps: GatewayDeps): Promise<Gateway> {
    const g = new Gateway(deps);
    await g.analyses.migrate();
    await deps.store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
    g.sub = await deps.bus.subscribe({
      group: RESULTS_GROUP,
      topics: [Topic.analysisCompleted],
      handler: async (msg) => {
        let a: Analysis;
        try {
          a = decodeEvent(AnalysisCompletedSchema, msg).analysis!;
          if (!a?.analysisId) throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, 'AnalysisCompleted without an analysis');
        } catch (err) {
          const e = classify(err);
          deps.log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code) }, 'dead-lettering an unreadable result');
          await deadLetter(deps.bus, msg, RESULTS_GROUP, codeName(e.code), e.message);
          return;
        }
        // A database failure throws: the message is not committed and comes back.
        await g.analyses.final(a);
        for (const w of g.waiters.get(a.analysisId) ?? []) w(a);
      },
    });
    return g;
  }

  async submit(bytes: Uint8Array, opts: GatewaySubmitOptions): Promise<GatewaySubmitResult> {
    if (opts.dedupe) {
      const prior = await this.analyses.latestOf(opts.tenantId, sha256Hex(bytes));
      if (prior) return { analysisId: prior.analysisId, contentSha256: prior.contentSha256, rejected: prior.error, deduplicated: true };
    }
    const r = await this.ingestor.submit(bytes, opts);
    await this.recordPending(r, opts);
    return { ...r, deduplicated: false };
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
    const r = await this.ingestor.rejectTooLarge(hash.digest('hex'), size, opts);
    await this.recordPending(r, opts);
    return { ...r, deduplicated: false };
  }

  private async recordPending(r: SubmitResult, opts: GatewaySubmitOptions): Promise<void> {
    await this.analyses.pending(
      create(AnalysisSchema, {
        analysisId: r.analysisId,
        tenantId: opts.tenantId,
        contentSha256: r.contentSha256,
        status: AnalysisStatus.PENDING,
        sourceName: opts.sourceName ?? '',
        submittedAt: timestampFromDate(new Date()),
      }),
    );
  }

  /** The analysis as it stands (PENDING while in flight), or undefined when this tenant has none with that id. */
  async get(tenantId: string, analysisId: string): Promise<Analysis | undefined> {
    const a = await this.analyses.get(tenantId, analysisId);
    return a && this.withUrls(a);
  }

  /** Resolves with the final analysis; rejects with an AbortError when `signal` fires first. */
  async wait(tenantId: string, analysisId: string, signal?: AbortSignal): Promise<Analysis> {
    let wake: (a: Analysis) => void = () => {};
    const woken = new Promise<Analysis>((resolve) => (wake = resolve));
    let set = this.waiters.get(analysisId);
    if (!set) this.waiters.set(analysisId, (set = new Set()));
    set.add(wake);
    try {
      for (;;) {
        signal?.throwIfAborted();
        // Registered before this read, so a final state consumed in between still wakes us.
        const a = await this.analyses.get(tenantId, analysisId);
        if (!a) throw new Error(`no analysis ${analysisId} for this tenant`);
        if (a.status !== AnalysisStatus.PENDING) return this.withUrls(a);
        const next = await Promise.race([woken, sleep(POLL_MS, signal)]);
        if (next && next.tenantId === tenantId) return this.withUrls(next);
      }
    } finally {
      set.delete(wake);
      if (set.size === 0) this.waiters.delete(analysisId);
    }
  }

  /** The overlay PNG's ref, rendered and stored on first request. */
  overlay(a: Analysis): Promise<ObjectRef | undefined> {
    return overlayFor(this.store, a, limitsOf(this.deps.cfg), this.deps.decoded);
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
