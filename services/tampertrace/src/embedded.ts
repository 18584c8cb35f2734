// Every stage in this process: embedded mode (in-process bus, a local folder as object store,
// PGlite, all under $TAMPERTRACE_HOME) or, through startPipeline, the same on real servers.
import path from 'node:path';
import type { DescMessage } from '@bufbuild/protobuf';
import { mkdir } from 'node:fs/promises';
import {
  DecodedImageCache,
  FsObjectStore,
  InMemoryBus,
  PIPELINE,
  limitsOf,
  runStage,
  type Config,
  type StageDefinition,
  type StageService,
  type EventBus,
  type ObjectStore,
  type Logger,
  type Subscription,
  type SqlClient,
} from '@tampertrace/shared';
import type { Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import type { ObjectRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { SubmissionResult } from '@tampertrace/ingest';
import { openIngest, type Ingest } from '@tampertrace/ingest/service';
import { ensureTenantKey, localPepper } from './local-secrets.ts';
import { loadDetector } from '@tampertrace/face-detection/load';
import { faceDetectionStage } from '@tampertrace/face-detection/stage';
import { loadLocalizer } from '@tampertrace/forgery-localization/load';
import { forgeryLocalizationStage } from '@tampertrace/forgery-localization/stage';
import { createExplainer } from '@tampertrace/explanation-generation/explainers';
import type { Explainer } from '@tampertrace/explanation-generation/explainer';
import { explanationStage } from '@tampertrace/explanation-generation/stage';
import type { AuditStore } from '@tampertrace/shared/audit-trail/store';
import { openPglite } from '@tampertrace/shared/pglite';
import { runAuditConsumer } from '@tampertrace/audit/consumer';
import { acquireDataLock, type DataLock } from './data-lock.ts';
import { HashStore } from '@tampertrace/provenance/store';
import { provenanceStage } from '@tampertrace/provenance/stage';
import { runVerdictRecorder } from '@tampertrace/provenance/verdicts';

/** The models every analysis needs, loaded and verified against the manifest. */
export async function loadModels(cfg: Config, log?: Logger) {
  const [detector, { model, entry: locEntry, localizer }] = await Promise.all([loadDetector(cfg), loadLocalizer(cfg)]);
  return { detector, model, locEntry, localizer, explainer: createExplainer(cfg, locEntry, log) };
}

/** The transports a pipeline runs on: in-process ones for embedded mode, real servers otherwise. */
export interface Transports {
  bus: EventBus;
  store: ObjectStore;
  /** The database of the results view and, when the stages run here, of the audit trail. */
  sql: SqlClient;
  /** Resolves once every consumer has caught up (InMemoryBus.idle); absent where that cannot be known. */
  idle?: () => Promise<void>;
}

/** A pipeline in this process, as the CLI and the tests use it; every call is for the configured tenant. */
export interface Embedded {
  /** The ingest service's public side (submission, results view, listing, artefacts, tenants, admission, sources), also for the gRPC and HTTP servers. */
  readonly ingest: Ingest;
  /** An API key of the configured tenant (embedded mode: kept in $TAMPERTRACE_HOME/api-key). */
  readonly apiKey?: string;
  /** True when this start created that key (it is printed once). */
  readonly apiKeyCreated?: boolean;
  /** Embedded mode: the data folder's lock, held until close() (a server records its addresses in it). */
  readonly lock?: DataLock;
  readonly store: ObjectStore;
  /** Absent for an ingest service that runs no stages. */
  readonly audit?: AuditStore;
  readonly bus: EventBus;
  submit(bytes: Uint8Array, sourceName?: string): Promise<SubmissionResult>;
  /** Analyses a file, reading it only when it is within the size limit (bigger ones are hashed as a stream and refused). */
  analyzeFile(file: string, sourceName?: string): Promise<Analysis>;
  /** Resolves with the final Analysis (completed, no face, rejected or failed). */
  result(analysisId: string): Promise<Analysis>;
  /** The final Analysis, a PENDING one while it is in flight, or undefined for an unknown id. */
  lookup(analysisId: string): Promise<Analysis | undefined>;
  analyze(bytes: Uint8Array, sourceName?: string): Promise<Analysis>;
  /** The analysis's overlay PNG, rendered and stored on first request. */
  overlay(a: Analysis): Promise<ObjectRef | undefined>;
  /** Waits until every stage and the audit have consumed everything, then stops. */
  close(): Promise<void>;
}

/**
 * Embedded mode: in-process bus, a local folder as object store, PGlite, all under
 * $TAMPERTRACE_HOME. The folder has one writer: this takes its lock (data-lock.ts), or uses the
 * one the caller took, and throws DataFolderBusy while another live process holds it.
 */
export async function startEmbedded(cfg: Config, log: Logger, opts: { lock?: DataLock } = {}): Promise<Embedded> {
  const home = cfg.TAMPERTRACE_HOME;
  await mkdir(home, { recursive: true });
  const lock = opts.lock ?? (await acquireDataLock(home, 'command'));
  try {
    const bus = new InMemoryBus({ onHandlerError: (err, msg, attempt) => log.debug({ topic: msg.topic, key: msg.key, attempt, err: String(err) }, 'handler failed') });
    const sql = await openPglite(path.join(home, 'db'));
    const pipeline = await startPipeline(cfg, log, { bus, store: new FsObjectStore(path.join(home, 'objects')), sql, idle: () => bus.idle() }, { pepper: cfg.TAMPERTRACE_API_KEY_PEPPER || (await localPepper(home)) });
    // The configured tenant exists with a key, so the local API can be called at once.
    const { apiKey, created } = await ensureTenantKey(pipeline.ingest.tenants, cfg.TAMPERTRACE_TENANT, path.join(home, 'api-key'));
    return {
      ...pipeline,
      apiKey,
      apiKeyCreated: created,
      lock,
      async close() {
        try {
          await pipeline.close();
        } finally {
          await lock.release();
        }
      },
    };
  } catch (err) {
    await lock.release();
    throw err;
  }
}

/**
 * The ingest service in this process, on the given transports; with `stages`, also every stage
 * and the audit consumer (embedded mode, or all-in-one on real servers). Without them, this is
 * the distributed mode's ingest service, in front of stage services running elsewhere.
 */
export async function startPipeline(cfg: Config, log: Logger, t: Transports, opts: { stages?: boolean; pepper: string; explainer?: Explainer }): Promise<Embedded> {
  const { bus, store, sql } = t;
  const limits = limitsOf(cfg);
  // Detection and localization run in this one process: decode each original once for both.
  const decoded = new DecodedImageCache();
  const subs: Subscription[] = [];
  let audit: AuditStore | undefined;
  let release = async () => {};
  const ingest = await openIngest({ cfg, log: log.child({ component: 'ingest' }), bus, store, sql, decoded, pepper: opts.pepper });
  const { submission, results, listing, artifacts } = ingest;
  if (opts.stages !== false) {
    const { detector, model, locEntry, localizer, explainer } = await loadModels(cfg, log.child({ stage: 'explanation-generation' }));
    // openIngest migrated it: the API reads the same store.
    audit = ingest.audit;
    const stageOpts = { concurrency: cfg.TAMPERTRACE_STAGE_CONCURRENCY, maxAttempts: cfg.TAMPERTRACE_MAX_ATTEMPTS };
    const presign = { store, presignTtlS: cfg.TAMPERTRACE_PRESIGN_TTL_S };
    const hashes = new HashStore(sql);
    await hashes.migrate();
    // Every stage of the list (shared/src/pipeline.ts), built here with its dependencies; the
    // type makes a stage missing from this map a compile error.
    const stages: { [S in StageService]: () => StageDefinition<DescMessage, DescMessage> } = {
      provenance: () => provenanceStage({ store, hashes, limits, decoded }),
      'face-detection': () => faceDetectionStage({ store, detector, limits, decoded, faceCrops: localizer.cropSpec }),
      'forgery-localization': () => forgeryLocalizationStage({ store, localizer, model: locEntry, limits, decoded }),
      'explanation-generation': () => explanationStage({ explainer: opts.explainer ?? explainer, limits, ...presign }),
    };
    for (const s of PIPELINE) subs.push(await runStage(bus, stages[s.service](), { ...stageOpts, log: log.child({ stage: s.service }) }));
    subs.push(
      await runVerdictRecorder(bus, hashes, log.child({ stage: 'provenance-verdicts' }), cfg.TAMPERTRACE_STAGE_CONCURRENCY),
      await runAuditConsumer(bus, audit, log.child({ stage: 'audit' }), {
        concurrency: cfg.TAMPERTRACE_AUDIT_CONCURRENCY,
        batchWaitMs: cfg.TAMPERTRACE_AUDIT_BATCH_WAIT_MS,
        checkpointEvery: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_EVERY,
        checkpointIntervalMs: cfg.TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS,
      }),
    );
    release = async () => {
      await Promise.all([detector.close(), model.close()]);
    };
  }
  const tenantId = cfg.TAMPERTRACE_TENANT;
  const submit = (bytes: Uint8Array, sourceName?: string) => submission.submit(bytes, { tenantId, sourceName, submittedBy: 'local' });
  const result = (id: string) => results.wait(tenantId, id);

  return {
    ingest,
    store,
    audit,
    bus,
    submit,
    result,
    lookup: (id) => listing.get(tenantId, id),
    analyze: async (bytes, sourceName) => result((await submit(bytes, sourceName)).analysisId),
    analyzeFile: async (file, sourceName) => result((await submission.submitFile(file, { tenantId, sourceName, submittedBy: 'local' })).analysisId),
    overlay: (a) => artifacts.overlay(a),
    async close() {
      await t.idle?.();
      for (const s of subs) await s.stop();
      await ingest.stop();
      await bus.close();
      await release();
      await sql.close();
    },
  };
}
