// The results view: the analyses table kept up to date from the stages' events and the results
// topic (one consumer group for every ingest replica), and the waits on it (WatchAnalysis's steps,
// a submission's final state). The same in embedded mode and in the distributed ingest process.
import { create } from '@bufbuild/protobuf';
import {
  CallerError,
  ConsumerGroup,
  InvalidInputError,
  Topic,
  classify,
  codeName,
  deadLetter,
  decodeEvent,
  eventSchemaOf,
  intermediateEvents,
  stageAtOrder,
  stageOrder,
  type BusMessage,
  type EventBus,
  type Logger,
  type Subscription,
} from '@tampertrace/shared';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Stage } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { AnalysesStore } from './analyses.ts';
import type { Artifacts } from './artifacts.ts';

/** Consumer group of the results view: shared by ingest replicas, so each final state is written once per group. */
export const RESULTS_GROUP = ConsumerGroup.ingestResults;

/**
 * How often a watcher re-reads the table. The results consumer wakes watchers in its own process
 * at once; with several ingest replicas a step may be consumed by another one, and this poll is
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

/** One step of a watched analysis: a stage finished, or the final state. */
export interface WatchStep {
  stage: Stage;
  analysis: Analysis;
}

export interface ResultsViewDeps {
  log: Logger;
  bus: EventBus;
  /** Called once per final result by the replica that consumed it (webhook delivery). */
  onFinal?: (a: Analysis, webhookUrl: string | undefined) => void;
}

/** What the results consumer reads: each stage's output, for WatchAnalysis, and the results. */
const WATCHED = intermediateEvents().map((e) => ({ topic: e.topic, schema: eventSchemaOf(e.type), stage: e.stage }));

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

export class ResultsView {
  /**
   * Watchers in this process, woken at once on each event of their analysis (`final` when it is
   * the one that ended it); other replicas' watchers learn by polling.
   */
  private readonly listeners = new Map<string, Set<(final: boolean) => void>>();
  private sub?: Subscription;

  private constructor(
    private readonly deps: ResultsViewDeps,
    private readonly analyses: AnalysesStore,
    private readonly artifacts: Artifacts,
  ) {}

  /** Starts the results consumer; the analyses table must exist (AnalysesStore.migrate). */
  static async start(deps: ResultsViewDeps, analyses: AnalysesStore, artifacts: Artifacts): Promise<ResultsView> {
    const v = new ResultsView(deps, analyses, artifacts);
    v.sub = await deps.bus.subscribe({
      group: RESULTS_GROUP,
      topics: [Topic.analysisCompleted, ...WATCHED.map((w) => w.topic)],
      handler: (msg) => v.consume(msg),
    });
    return v;
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
    if (watched) await this.analyses.stageDone(id, stageOrder(watched.stage));
    else {
      const first = await this.analyses.final(final!);
      if (first) this.deps.onFinal?.(final!, first.webhookUrl);
    }
    for (const wake of this.listeners.get(id) ?? []) wake(!watched);
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
        if (a.status !== AnalysisStatus.PENDING) return this.artifacts.withUrls(a);
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
        const stage: Stage = final ? row.analysis.error?.stage || Stage.EXPLANATION : stageAtOrder(row.stage);
        const at = watchPosition(stage);
        if (at > seen || final) {
          for (let i = seen + 1; i < at; i++) {
            yield { stage: WATCH_ORDER[i], analysis: await this.artifacts.withUrls(pending ?? pendingOf(row.analysis)) };
          }
          seen = at;
          yield { stage, analysis: await this.artifacts.withUrls(row.analysis) };
        }
        if (final) return;
        poll = nextPoll(poll, await wokenBefore(woken, poll, signal));
        woken = new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      unlisten();
    }
  }

  async stop(): Promise<void> {
    await this.sub?.stop();
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
