// The results view on its own (PGlite, the in-memory bus, a local store): it records each final
// state once however often it is delivered, calls onFinal once, dead-letters what it cannot read
// and goes on, wakes waiters, and reports every stage in pipeline order even when the stages'
// events arrive out of order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import { pino } from 'pino';
import { CallerError, FsObjectStore, Header, InMemoryBus, Topic, deadLetterTopic, encodeEvent, eventId, intermediateEvents, loadConfig, uuidv7, type SqlClient } from '@tampertrace/shared';
import { openPglite } from '@tampertrace/shared/pglite';
import { AnalysisSchema, type Analysis } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, Stage, Verdict } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { AnalysisCompletedSchema, EventMetaSchema, FacesDetectedSchema, ForgeryLocalizedSchema } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import { AnalysesStore } from './analyses.ts';
import { Artifacts } from './artifacts.ts';
import { RESULTS_GROUP, ResultsView, type WatchStep } from './results-view.ts';

let home: string;
let sql: SqlClient;
let bus: InMemoryBus;
let analyses: AnalysesStore;
let view: ResultsView;
const finals: string[] = [];
const dead: { key: string; code?: string }[] = [];
const TENANT = 'view-test';

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), 'tt-results-'));
  const cfg = loadConfig({ ...process.env, TAMPERTRACE_HOME: home });
  sql = await openPglite(undefined);
  bus = new InMemoryBus();
  analyses = new AnalysesStore(sql);
  await analyses.migrate();
  const artifacts = new Artifacts({ cfg, store: new FsObjectStore(path.join(home, 'objects')) }, analyses);
  view = await ResultsView.start({ log: pino({ level: 'silent' }), bus, onFinal: (a) => finals.push(a.analysisId) }, analyses, artifacts);
  await bus.subscribe({ group: 'dlq-reader', topics: [deadLetterTopic(RESULTS_GROUP)], handler: async (msg) => void dead.push({ key: msg.key, code: msg.headers[Header.dlqCode] }) });
});

after(async () => {
  await view?.stop();
  await bus?.close();
  await sql?.close();
  if (home) await rm(home, { recursive: true, force: true });
});

/** A PENDING analysis, as Submit records it. */
async function pending(): Promise<Analysis> {
  const a = create(AnalysisSchema, { analysisId: uuidv7(), tenantId: TENANT, contentSha256: 'be'.repeat(32), status: AnalysisStatus.PENDING, submittedAt: timestampNow() });
  await analyses.pending(a);
  return a;
}

const meta = (a: Analysis, stage: string) => create(EventMetaSchema, { eventId: eventId(a.analysisId, stage), analysisId: a.analysisId, tenantId: a.tenantId, contentSha256: a.contentSha256 });
const detected = (a: Analysis) => bus.publish(encodeEvent(Topic.facesDetected, FacesDetectedSchema, create(FacesDetectedSchema, { meta: meta(a, 'face-detection') })));
const localized = (a: Analysis) => bus.publish(encodeEvent(Topic.forgeryLocalized, ForgeryLocalizedSchema, create(ForgeryLocalizedSchema, { meta: meta(a, 'forgery-localization') })));
const completed = (a: Analysis, verdict = Verdict.LIKELY_AUTHENTIC) =>
  bus.publish(
    encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, create(AnalysisCompletedSchema, { meta: meta(a, 'explanation'), analysis: { analysisId: a.analysisId, tenantId: a.tenantId, contentSha256: a.contentSha256, status: AnalysisStatus.COMPLETED, verdict } })),
  );

test('a final state delivered twice is recorded once and announced once (webhook)', async () => {
  const a = await pending();
  await completed(a, Verdict.LIKELY_FORGED);
  await completed(a, Verdict.LIKELY_AUTHENTIC);
  await bus.idle();
  assert.equal((await analyses.get(TENANT, a.analysisId))?.verdict, Verdict.LIKELY_FORGED);
  assert.deepEqual(finals.filter((id) => id === a.analysisId), [a.analysisId]);
});

test('an unreadable event is dead-lettered with its code, and the events behind it are still recorded', async () => {
  const a = await pending();
  await bus.publish({ topic: Topic.analysisCompleted, key: a.analysisId, value: new Uint8Array([0xff, 0xff, 0xff]), headers: {} });
  const empty = create(AnalysisCompletedSchema, { meta: meta(a, 'explanation') });
  await bus.publish(encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, empty));
  await completed(a);
  await bus.idle();
  assert.deepEqual(dead.filter((d) => d.key === a.analysisId).map((d) => d.code), ['INVALID_MESSAGE', 'INVALID_MESSAGE']);
  assert.equal((await analyses.get(TENANT, a.analysisId))?.status, AnalysisStatus.COMPLETED);
});

test('wait resolves with the final state once it is recorded; unknown ids are NOT_FOUND; an abort ends it', async () => {
  const a = await pending();
  const waiting = view.wait(TENANT, a.analysisId);
  await detected(a);
  await completed(a, Verdict.UNCERTAIN);
  const final = await waiting;
  assert.deepEqual([final.status, final.verdict], [AnalysisStatus.COMPLETED, Verdict.UNCERTAIN]);
  await assert.rejects(view.wait('another-tenant', a.analysisId), (err) => err instanceof CallerError && err.code === ErrorCode.NOT_FOUND);
  const b = await pending();
  const gaveUp = new AbortController();
  const abandoned = view.wait(TENANT, b.analysisId, gaveUp.signal);
  gaveUp.abort(new Error('caller left'));
  await assert.rejects(abandoned, /caller left/);
});

test('watch reports every stage in pipeline order, even when localization\'s event is consumed before detection\'s', async () => {
  const a = await pending();
  const steps: WatchStep[] = [];
  const watching = (async () => {
    for await (const s of view.watch(TENANT, a.analysisId)) steps.push(s);
  })();
  while (steps.length === 0) await new Promise((r) => setTimeout(r, 5));
  await localized(a);
  await bus.idle();
  await detected(a);
  await completed(a);
  await watching;
  assert.deepEqual(
    steps.map((s) => `${Stage[s.stage]} ${AnalysisStatus[s.analysis.status]}`),
    [...[Stage.INGEST, ...intermediateEvents().map((e) => e.stage)].map((s) => `${Stage[s]} PENDING`), 'EXPLANATION COMPLETED'],
  );
  // An unknown analysis, or another tenant's, has no steps at all.
  const none: WatchStep[] = [];
  for await (const s of view.watch('another-tenant', a.analysisId)) none.push(s);
  assert.deepEqual(none, []);
});
