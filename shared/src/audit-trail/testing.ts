// Audit records for tests (the same shape for the PGlite and the PostgreSQL suites), and synthetic
// data sets with their expected query results for the query tests and bench/audit.ts.
import { rng, type SqlTx } from '../index.ts';
import type { AuditFilter } from './query.ts';
import type { AuditStore } from './store.ts';
import { GENESIS, HASH_VERSION, recordHash, type AuditRecordInput, type AuditRow } from './row.ts';

export function auditRecord(i: number, tenantId = 't1'): AuditRecordInput {
  return {
    eventId: `${tenantId}:a${i}:stage`,
    tenantId,
    analysisId: `a${i}`,
    contentSha256: 'cd'.repeat(32),
    stage: 'EXPLANATION',
    status: 'COMPLETED',
    verdict: 'LIKELY_FORGED',
    maxForgeryScore: 0.1 * i,
    models: [{ name: 'm', version: '1' }],
    faces: [{ box: { x: 1, y: 2, width: 3, height: 4 } }],
    regions: ['nose', 'mouth'],
    explanationText: `record ${i}`,
    explanationFacts: [{ fact: 'f', value: i }],
    sourceName: 'upload.jpg',
    eventTime: new Date(1_700_000_000_000 + i),
  };
}

// ---- Synthetic data sets (query tests and bench/audit.ts) ----

/** Region names as the localizer reports them. */
export const REGION_NAMES = ['forehead', 'left eye', 'right eye', 'left eyebrow', 'right eyebrow', 'nose', 'mouth', 'left cheek', 'right cheek', 'chin', 'jaw', 'skin'];
/** Localizer versions over time (the oldest data uses the first). */
export const LOCALIZER_VERSIONS = ['0.1.0', '0.2.0', '0.3.0', '0.3.1'];
const REJECT_CODES = ['TRUNCATED_IMAGE', 'UNSUPPORTED_FORMAT', 'CORRUPT_IMAGE', 'TOO_SMALL', 'TOO_MANY_PIXELS'];

/** Deterministic PRNG (mulberry32) in [0, 1). */
export const prng = rng;

export interface SyntheticOptions {
  /** Tenant ids with their share of the analyses (weights, any scale). */
  tenants: Array<{ id: string; weight: number }>;
  /** Records to produce (the last analysis may be cut short). */
  count: number;
  seed?: number;
  /** Event time of the first analysis (default 2024-01-01). */
  start?: Date;
  /** Event times spread over this long (default 90 days). */
  spanMs?: number;
}

/**
 * Stage records of synthetic analyses, in recording order: per analysis INGEST, then either a
 * REJECTED terminal record (5%) or FACE_DETECTION, FORGERY_LOCALIZATION and EXPLANATION (10% of
 * them NO_FACE). Stages are sometimes recorded out of event-time order, and some share an event
 * time, as they do when stages publish on different topics.
 */
export function* syntheticRecords(o: SyntheticOptions): Generator<AuditRecordInput> {
  const rnd = prng(o.seed ?? 1);
  const start = (o.start ?? new Date('2024-01-01T00:00:00Z')).getTime();
  const span = o.spanMs ?? 90 * 86_400_000;
  const total = o.tenants.reduce((s, t) => s + t.weight, 0);
  const analyses = Math.ceil(o.count / 3.7);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd() * xs.length)];
  let n = 0;
  for (let i = 0; n < o.count; i++) {
    let w = rnd() * total;
    const tenant = o.tenants.find((t) => (w -= t.weight) < 0)?.id ?? o.tenants[0].id;
    const analysisId = `an-${i.toString(36).padStart(6, '0')}`;
    const contentSha256 = (i * 2654435761 % 4294967296).toString(16).padStart(8, '0').repeat(8);
    const t0 = start + Math.floor((i / analyses) * span);
    const version = LOCALIZER_VERSIONS[Math.min(LOCALIZER_VERSIONS.length - 1, Math.floor((i / analyses) * LOCALIZER_VERSIONS.length + rnd() * 0.5))];
    const detector = { name: 'blazeface-front-128', version: '1.2.0', sha256: 'b1'.repeat(32) };
    const localizer = { name: 'tt-localizer', version, sha256: 'c2'.repeat(32) };
    const base = (stage: string, status: string, dt: number): AuditRecordInput => ({
      eventId: `${analysisId}:${stage}`,
      tenantId: tenant,
      analysisId,
      contentSha256,
      stage,
      status,
      models: [],
      faces: [],
      regions: [],
      sourceName: `img-${i}.jpg`,
      traceId: rnd() < 0.9 ? (i * 7919).toString(16).padStart(32, 'a') : undefined,
      eventTime: new Date(t0 + dt),
    });
    const recs: AuditRecordInput[] = [base('INGEST', 'PENDING', 0)];
    if (rnd() < 0.05) {
      const code = pick(REJECT_CODES);
      recs.push({ ...base('INGEST', 'REJECTED', 3), eventId: `${analysisId}:INGEST:terminal`, errorCode: code, errorMessage: `synthetic ${code.toLowerCase()}` });
    } else {
      const noFace = rnd() < 0.1;
      const faces = noFace ? [] : Array.from({ length: 1 + Math.floor(rnd() * 2) }, (_, f) => ({
        box: { x: 100 * f + Math.floor(rnd() * 50), y: Math.floor(rnd() * 80), width: 120, height: 140 },
        score: Math.round(rnd() * 1000) / 1000,
        forgeryScore: Math.round(rnd() * 1000) / 1000,
        regions: REGION_NAMES.filter(() => rnd() < 0.35).map((name) => ({ name, score: Math.round(rnd() * 1000) / 1000, coverage: rnd() < 0.3 ? Math.round(rnd() * 100) / 100 : 0 })),
      }));
      const score = noFace ? 0 : Math.max(0, ...faces.map((f) => f.forgeryScore));
      const named = [...new Set(faces.flatMap((f) => f.regions.filter((r) => r.coverage > 0).map((r) => r.name)))].sort();
      const verdict = noFace ? undefined : score > 0.7 ? 'LIKELY_FORGED' : score > 0.4 ? 'UNCERTAIN' : 'LIKELY_AUTHENTIC';
      const status = noFace ? 'NO_FACE' : 'PENDING';
      const dLoc = 40 + Math.floor(rnd() * 40);
      const dExp = rnd() < 0.1 ? dLoc : dLoc + 5; // same event time now and then
      recs.push(
        { ...base('FACE_DETECTION', 'PENDING', 20), models: [detector], faces: faces.map((f) => ({ box: f.box, score: f.score })) },
        { ...base('FORGERY_LOCALIZATION', status, dLoc), verdict, maxForgeryScore: score, models: [localizer], faces, regions: named },
        {
          ...base('EXPLANATION', noFace ? 'NO_FACE' : 'COMPLETED', dExp),
          verdict,
          maxForgeryScore: score,
          models: [detector, localizer, { name: 'template-explainer', version: '1', sha256: '' }],
          faces,
          regions: named,
          explanationText: noFace ? 'No face was found.' : `The ${named[0] ?? 'face'} looks ${score > 0.5 ? 'manipulated' : 'unremarkable'} (face score ${score.toFixed(2)}).`,
          explanationFacts: named.map((r) => ({ face: 0, region: r, cue: 'coverage', value: 0.5, unit: 'fraction' })),
        },
      );
      // The localization event is recorded after the explanation now and then.
      if (rnd() < 0.1) [recs[2], recs[3]] = [recs[3], recs[2]];
    }
    for (const r of recs) {
      if (n++ >= o.count) return;
      yield r;
    }
  }
}

/**
 * Chains records the way append() does (sequence, prev_hash, hash version 2), continuing from
 * `heads` (per tenant; updated), with a recording time a little after the event time.
 */
export function chainRecords(records: Iterable<AuditRecordInput>, heads: Map<string, { sequence: number; recordHash: string }>): AuditRow[] {
  const out: AuditRow[] = [];
  for (const r of records) {
    const head = heads.get(r.tenantId) ?? { sequence: 0, recordHash: GENESIS };
    const sequence = head.sequence + 1;
    const recordedTime = new Date(r.eventTime.getTime() + 7);
    const recordHash_ = recordHash(head.recordHash, r, sequence, { recordedTime });
    out.push({ ...r, sequence, prevHash: head.recordHash, recordHash: recordHash_, recordedTime, hashVersion: HASH_VERSION });
    heads.set(r.tenantId, { sequence, recordHash: recordHash_ });
  }
  return out;
}

const pgArray = (xs: string[]) => `{${xs.map((x) => `"${x.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;

/** Inserts chained rows with one multi-row INSERT (the bulk path for test and bench data sets). */
export async function insertRows(db: SqlTx, rows: AuditRow[]): Promise<void> {
  if (!rows.length) return;
  const cols: Array<[string, string, (r: AuditRow) => unknown]> = [
    ['event_id', 'text', (r) => r.eventId],
    ['tenant_id', 'text', (r) => r.tenantId],
    ['analysis_id', 'text', (r) => r.analysisId],
    ['content_sha256', 'text', (r) => r.contentSha256],
    ['stage', 'text', (r) => r.stage],
    ['status', 'text', (r) => r.status],
    ['verdict', 'text', (r) => r.verdict ?? null],
    ['max_forgery_score', 'real', (r) => r.maxForgeryScore ?? null],
    ['models', 'jsonb', (r) => JSON.stringify(r.models)],
    ['faces', 'jsonb', (r) => JSON.stringify(r.faces)],
    ['regions', 'text[]', (r) => pgArray(r.regions)],
    ['explanation_text', 'text', (r) => r.explanationText ?? null],
    ['explanation_facts', 'jsonb', (r) => (r.explanationFacts ? JSON.stringify(r.explanationFacts) : null)],
    ['error_code', 'text', (r) => r.errorCode ?? null],
    ['error_message', 'text', (r) => r.errorMessage ?? null],
    ['source_name', 'text', (r) => r.sourceName ?? null],
    ['trace_id', 'text', (r) => r.traceId ?? null],
    ['submitted_by', 'text', (r) => r.submittedBy ?? null],
    ['event_time', 'timestamptz', (r) => r.eventTime.toISOString()],
    ['recorded_time', 'timestamptz', (r) => r.recordedTime.toISOString()],
    ['sequence', 'bigint', (r) => r.sequence],
    ['prev_hash', 'text', (r) => r.prevHash],
    ['record_hash', 'text', (r) => r.recordHash],
    ['hash_version', 'smallint', (r) => r.hashVersion],
  ];
  // Each column travels as one text[] parameter and is cast back per row.
  await db.query(
    `INSERT INTO audit_records (${cols.map(([c]) => c).join(', ')})
     SELECT ${cols.map(([, type], i) => `c${i}::${type}`).join(', ')}
     FROM unnest(${cols.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS u(${cols.map((_, i) => `c${i}`).join(', ')})`,
    cols.map(([, , get]) => rows.map((r) => { const v = get(r); return v === null ? null : String(v); })),
  );
}

/** What query() should return for a filter, computed in JS: the filter's meaning, stated once for the tests. */
export function matchesFilter(r: AuditRow, f: AuditFilter): boolean {
  if (f.from && r.eventTime.getTime() < f.from.getTime()) return false;
  if (f.to && r.eventTime.getTime() >= f.to.getTime()) return false;
  if (f.status && r.status !== f.status) return false;
  if (f.verdict && r.verdict !== f.verdict) return false;
  if (f.stage && r.stage !== f.stage) return false;
  if (f.errorCode && r.errorCode !== f.errorCode) return false;
  if (f.minForgeryScore !== undefined && (r.maxForgeryScore === undefined || Math.fround(r.maxForgeryScore) < Math.fround(f.minForgeryScore))) return false;
  if (f.region && !r.regions.includes(f.region)) return false;
  if (f.modelVersion && !r.models.some((m) => (m as { version?: string }).version === f.modelVersion)) return false;
  return true;
}

/** query() order: newest first by (event time, sequence). */
export const newestFirst = (a: AuditRow, b: AuditRow): number => b.eventTime.getTime() - a.eventTime.getTime() || b.sequence - a.sequence;

/** One filter per filterable field, and combinations, over data made by syntheticRecords(start, spanMs). */
export function filterCases(start: Date, spanMs: number): Array<[string, AuditFilter]> {
  const at = (f: number) => new Date(start.getTime() + Math.floor(spanMs * f));
  return [
    ['no filter', {}],
    ['time range', { from: at(0.3), to: at(0.35) }],
    ['from only', { from: at(0.9) }],
    ['to only', { to: at(0.05) }],
    ['status REJECTED', { status: 'REJECTED' }],
    ['status COMPLETED', { status: 'COMPLETED' }],
    ['verdict LIKELY_FORGED', { verdict: 'LIKELY_FORGED' }],
    ['minimum score 0.9', { minForgeryScore: 0.9 }],
    ['minimum score 0.3', { minForgeryScore: 0.3 }],
    ['model version (oldest)', { modelVersion: LOCALIZER_VERSIONS[0] }],
    ['model version (newest)', { modelVersion: LOCALIZER_VERSIONS.at(-1) }],
    ['region nose', { region: 'nose' }],
    ['region chin', { region: 'chin' }],
    ['stage FORGERY_LOCALIZATION', { stage: 'FORGERY_LOCALIZATION' }],
    ['error code TRUNCATED_IMAGE', { errorCode: 'TRUNCATED_IMAGE' }],
    ['region and model version', { region: 'mouth', modelVersion: LOCALIZER_VERSIONS[1] }],
    ['verdict, region and time', { verdict: 'LIKELY_FORGED', region: 'left eye', from: at(0.2), to: at(0.7) }],
    ['status and time', { status: 'NO_FACE', from: at(0.5), to: at(0.8) }],
    ['stage and minimum score', { stage: 'EXPLANATION', minForgeryScore: 0.8 }],
    ['nothing matches', { region: 'no such region' }],
  ];
}

/** Every page of a query, in order; fails on a page longer than asked or a cursor that repeats. */
export async function allPages(store: AuditStore, tenantId: string, filter: AuditFilter, limit: number): Promise<{ rows: AuditRow[]; pages: number }> {
  const rows: AuditRow[] = [];
  const cursors = new Set<string>();
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await store.query(tenantId, filter, { limit, cursor });
    pages++;
    if (page.records.length > limit) throw new Error(`page of ${page.records.length} records for a limit of ${limit}`);
    if (page.nextCursor && page.records.length !== limit) throw new Error('a page before the last one is short');
    rows.push(...page.records);
    cursor = page.nextCursor;
    if (cursor && cursors.has(cursor)) throw new Error('a cursor came back twice');
    if (cursor) cursors.add(cursor);
  } while (cursor);
  return { rows, pages };
}
