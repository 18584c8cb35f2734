// Every stage in this process: embedded mode (in-process bus, a local folder as object store,
// PGlite, all under $TAMPERTRACE_HOME) or, through startPipeline, the same on real servers.
import path from 'node:path';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { create, fromBinary } from '@bufbuild/protobuf';
import {
  Bucket,
  DecodedImageCache,
  FsObjectStore,
  InMemoryBus,
  Topic,
  limitsOf,
  runStage,
  type Config,
  type EventBus,
  type ObjectStore,
  type Logger,
  type Subscription,
} from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, type ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { Ingestor, type SubmitResult } from '@tampertrace/ingest';
import { loadDetector } from '@tampertrace/face-detection/load';
import { faceDetectionStage } from '@tampertrace/face-detection/stage';
import { loadLocalizer } from '@tampertrace/forgery-localization/load';
import { forgeryLocalizationStage } from '@tampertrace/forgery-localization/stage';
import { overlayFor } from '@tampertrace/forgery-localization/overlay';
import { TemplateExplainer } from '@tampertrace/explanation-generation/explainer';
import { explanationStage } from '@tampertrace/explanation-generation/stage';
import { AuditStore, type SqlClient } from '@tampertrace/audit/store';
import { openPglite } from '@tampertrace/audit/pglite';
import { runAuditConsumer } from '@tampertrace/audit/consumer';

/** Keeps final results for look-up and hands them to whoever waits for one. */
class Results {
  private readonly done = new Map<string, Analysis>();
  /** Submitted and not finished yet, so a look-up can answer PENDING rather than "unknown". */
  private readonly pending = new Map<string, Analysis>();
  private readonly waiters = new Map<string, Array<(a: Analysis) => void>>();
  constructor(private readonly capacity = 10_000) {}

  submitted(a: Analysis): void {
    if (!this.done.has(a.analysisId)) this.pending.set(a.analysisId, a);
  }

  add(a: Analysis): void {
    this.pending.delete(a.analysisId);
    this.done.set(a.analysisId, a);
    if (this.done.size > this.capacity) this.done.delete(this.done.keys().next().value!);
    for (const w of this.waiters.get(a.analysisId) ?? []) w(a);
    this.waiters.delete(a.analysisId);
  }
  get(id: string): Analysis | undefined {
    return this.done.get(id) ?? this.pending.get(id);
  }
  wait(id: string): Promise<Analysis> {
    const a = this.done.get(id);
    if (a) return Promise.resolve(a);
    return new Promise((resolve) => this.waiters.set(id, [...(this.waiters.get(id) ?? []), resolve]));
  }
}

/** The models every analysis needs, loaded and verified against the manifest. */
export async function loadModels(cfg: Config) {
  const [detector, { model, entry: locEntry, localizer }] = await Promise.all([loadDetector(cfg), loadLocalizer(cfg)]);
  return { detector, model, locEntry, localizer, explainer: new TemplateExplainer(locEntry.cueThresholds) };
}

/** The transports a pipeline runs on: in-process ones for embedded mode, real servers otherwise. */
export interface Transports {
  bus: EventBus;
  store: ObjectStore;
  /** The audit database; absent for a gateway that runs no stages. */
  sql?: SqlClient;
  /** Resolves once every consumer has caught up (InMemoryBus.idle); absent where that cannot be known. */
  idle?: () => Promise<void>;
}

export interface Embedded {
  readonly store: ObjectStore;
  /** Absent for a gateway that runs no stages. */
  readonly audit?: AuditStore;
  readonly bus: EventBus;
  submit(bytes: Uint8Array, sourceName?: string): Promise<SubmitResult>;
  /** Analyses a file, reading it only when it is within the size limit (bigger ones are hashed as a stream and refused). */
  analyzeFile(file: string, sourceName?: string): Promise<Analysis>;
  /** Resolves with the final Analysis (completed, no face, rejected or failed). */
  result(analysisId: string): Promise<Analysis>;
  /** The final Analysis, a PENDING one while it is in flight, or undefined for an unknown id. */
  lookup(analysisId: string): Analysis | undefined;
  analyze(bytes: Uint8Array, sourceName?: string): Promise<Analysis>;
  /** The analysis's overlay PNG, rendered and stored on first request. */
  overlay(a: Analysis): Promise<ObjectRef | undefined>;
  /** Waits until every stage and the audit have consumed everything, then stops. */
  close(): Promise<void>;
}

/** Embedded mode: in-process bus, a local folder as object store, PGlite, all under $TAMPERTRACE_HOME. */
export async function startEmbedded(cfg: Config, log: Logger): Promise<Embedded> {
  const home = cfg.TAMPERTRACE_HOME;
  await mkdir(home, { recursive: true });
  const bus = new InMemoryBus({ onHandlerError: (err, msg, attempt) => log.debug({ topic: msg.topic, key: msg.key, attempt, err: String(err) }, 'handler failed') });
  const sql = await openPglite(path.join(home, 'db'));
  return startPipeline(cfg, log, { bus, store: new FsObjectStore(path.join(home, 'objects')), sql, idle: () => bus.idle() });
}

/**
 * Ingest and a results view in this process, on the given transports; with `t.sql`, also every
 * stage and the audit consumer (embedded mode, or all-in-one on real servers). Without it, this is
 * the gateway of the distributed mode, in front of stage services running elsewhere.
 */
export async function startPipeline(cfg: Config, log: Logger, t: Transports): Promise<Embedded> {
  const { bus, store } = t;
  const limits = limitsOf(cfg);
  await store.ensureBuckets([Bucket.originals, Bucket.artifacts]);
  const results = new Results();
  // Detection and localization run in this one process: decode each original once for both.
  const decoded = new DecodedImageCache();
  const subs: Subscription[] = [];
  let audit: AuditStore | undefined;
  let release = async () => {};
  if (t.sql) {
    const { detector, model, locEntry, localizer, explainer } = await loadModels(cfg);
    audit = new AuditStore(t.sql);
    await audit.migrate();
    const opts = { concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY, maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS };
    subs.push(
      await runStage(bus, faceDetectionStage({ store, detector, limits, decoded }), { ...opts, log: log.child({ stage: 'face-detection' }) }),
      await runStage(bus, forgeryLocalizationStage({ store, localizer, model: locEntry, limits, decoded }), { ...opts, log: log.child({ stage: 'forgery-localization' }) }),
      await runStage(bus, explanationStage({ explainer }), { ...opts, log: log.child({ stage: 'explanation-generation' }) }),
      await runAuditConsumer(bus, audit, log.child({ stage: 'audit' })),
    );
    release = async () => {
      await Promise.all([detector.close(), model.close()]);
      await audit!.close();
    };
  }
  subs.push(
    await bus.subscribe({
      // Every gateway keeps its own complete view, so its group is its own.
      group: t.sql ? 'embedded-results' : `results-view-${process.pid}-${Date.now()}`,
      topics: [Topic.analysisCompleted],
      handler: async (msg) => results.add(fromBinary(AnalysisCompletedSchema, msg.value).analysis!),
    }),
  );
  const ingestor = new Ingestor({ bus, store, limits });
  const tenantId = cfg.TAMPERTRACE_TENANT;
  const submit = async (bytes: Uint8Array, sourceName?: string) => {
    const r = await ingestor.submit(bytes, { tenantId, sourceName });
    results.submitted(create(AnalysisSchema, { analysisId: r.analysisId, tenantId, contentSha256: r.contentSha256, status: AnalysisStatus.PENDING, sourceName }));
    return r;
  };
  const analyze = async (bytes: Uint8Array, sourceName?: string) => results.wait((await submit(bytes, sourceName)).analysisId);

  return {
    store,
    audit,
    bus,
    submit,
    result: (id) => results.wait(id),
    lookup: (id) => results.get(id),
    analyze,
    overlay: (a) => overlayFor(store, a, limits, decoded),
    async analyzeFile(file, sourceName) {
      const size = (await stat(file)).size;
      if (size <= limits.maxInputBytes) return analyze(await readFile(file), sourceName);
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
      const r = await ingestor.rejectTooLarge(hash.digest('hex'), size, { tenantId, sourceName });
      return results.wait(r.analysisId);
    },
    async close() {
      await t.idle?.();
      for (const s of subs) await s.stop();
      await bus.close();
      await release();
    },
  };
}
