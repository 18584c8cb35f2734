// Turns each stage event into one audit record (pure). Which regions count as "named" follows
// the explanation stage: regions with any masked coverage.
import { toJson, type DescMessage } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { ConsumerGroup, Header, INGESTED, PIPELINE, PIPELINE_TOPICS, callerMessage, classOf, deadLetterTopic, eventSchemaOf, sha256Hex, type BusMessage } from '@tampertrace/shared';
import { FaceSchema, type Face } from '@tampertrace/shared/gen/tampertrace/v1/analysis_pb';
import { AnalysisStatus, ErrorCode, ModelRefSchema, Stage, Verdict, type ModelRef } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import type { AnalysisCompleted, EventMeta, FacesDetected, ForgeryLocalized, ImageIngested, ProvenanceChecked } from '@tampertrace/shared/gen/tampertrace/v1/events_pb';
import type { AuditRecordInput } from '@tampertrace/shared/audit-trail/row';

/** The topics the audit service records, with their event types and stages: ingest's event and every stage's (shared/src/pipeline.ts). */
export const AUDITED: ReadonlyArray<{ topic: string; schema: DescMessage; stage: Stage }> = [INGESTED, ...PIPELINE.map((s) => ({ ...s.output, stage: s.stage }))].map((e) => ({
  topic: e.topic,
  schema: eventSchemaOf(e.type),
  stage: e.stage,
}));

/** The stage that publishes each event type, from the list. */
const STAGE_OF = new Map(AUDITED.map((a) => [a.schema.typeName, a.stage]));

type AuditedEvent = ImageIngested | ProvenanceChecked | FacesDetected | ForgeryLocalized | AnalysisCompleted;

const models = (ms: ModelRef[]) => ms.map((m) => toJson(ModelRefSchema, m));
const faces = (fs: Face[]) => fs.map((f) => toJson(FaceSchema, f));
const named = (fs: Face[]) => [...new Set(fs.flatMap((f) => f.regions.filter((r) => r.coverage > 0).map((r) => r.name)))].sort();

function base(meta: EventMeta, stage: Stage, status: AnalysisStatus): AuditRecordInput {
  return {
    eventId: meta.eventId,
    tenantId: meta.tenantId,
    analysisId: meta.analysisId,
    contentSha256: meta.contentSha256,
    stage: Stage[stage],
    status: AnalysisStatus[status],
    models: [],
    faces: [],
    regions: [],
    sourceName: meta.sourceName || undefined,
    submittedBy: meta.submittedBy || undefined,
    eventTime: meta.occurredAt ? timestampDate(meta.occurredAt) : new Date(0),
  };
}

/**
 * One event as an audit record. An event type with nothing beyond its meta to record (ingest's,
 * provenance's, a new stage's) is recorded as its stage's PENDING step, the stage from the list.
 */
export function toAuditRecord(event: AuditedEvent): AuditRecordInput {
  const meta = event.meta!;
  switch (event.$typeName) {
    case 'tampertrace.v1.FacesDetected':
      return { ...base(meta, Stage.FACE_DETECTION, AnalysisStatus.PENDING), models: models(event.models), faces: event.faces.map((f) => ({ box: f.box, score: f.score })) };
    case 'tampertrace.v1.ForgeryLocalized':
      return {
        ...base(meta, Stage.FORGERY_LOCALIZATION, event.status === AnalysisStatus.NO_FACE ? AnalysisStatus.NO_FACE : AnalysisStatus.PENDING),
        verdict: event.verdict ? Verdict[event.verdict] : undefined,
        maxForgeryScore: Math.max(0, ...event.faces.map((f) => f.forgeryScore)),
        models: models(event.models),
        faces: faces(event.faces),
        regions: named(event.faces),
      };
    case 'tampertrace.v1.AnalysisCompleted': {
      const a = event.analysis!;
      const stage = a.error?.stage ?? Stage.EXPLANATION;
      return {
        ...base(meta, a.status === AnalysisStatus.COMPLETED || a.status === AnalysisStatus.NO_FACE ? Stage.EXPLANATION : stage, a.status),
        verdict: a.verdict ? Verdict[a.verdict] : undefined,
        maxForgeryScore: a.maxForgeryScore,
        models: models(a.models),
        faces: faces(a.faces),
        regions: named(a.faces),
        explanationText: a.explanation?.text,
        explanationFacts: a.explanation ? a.explanation.facts.map((f) => ({ face: f.faceIndex, region: f.region, cue: f.cue, value: f.value, unit: f.unit })) : undefined,
        errorCode: a.error ? ErrorCode[a.error.code] : undefined,
        errorMessage: a.error?.message,
      };
    }
    default:
      return base(meta, STAGE_OF.get(event.$typeName) ?? Stage.UNSPECIFIED, AnalysisStatus.PENDING);
  }
}

/**
 * The trace id of a W3C `traceparent` header (`00-<32 hex trace id>-<16 hex parent id>-<2 hex
 * flags>`), or undefined when absent or malformed. A later version may append fields, which are
 * ignored; version ff and all-zero ids are invalid.
 */
export function traceIdOf(traceparent: string | undefined): string | undefined {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-.*)?$/.exec(traceparent?.trim() ?? '');
  if (!m) return undefined;
  const [, version, traceId, parentId, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return undefined;
  return traceId;
}

/** The stage whose consumer dead-lettered a message, by consumer group: every stage's groups (the list's), and ingest's. */
const DLQ_STAGE: Record<string, Stage> = Object.fromEntries([
  ...PIPELINE.flatMap((s) => [s.group, ...s.sideGroups].map((g) => [g, s.stage] as const)),
  [ConsumerGroup.ingestResults, Stage.INGEST],
  [ConsumerGroup.ingestSubmissions, Stage.INGEST],
]);

/**
 * Dead-letter topics the audit service records (every consumer's but its own, which would loop):
 * a message that could not be processed is a decision too ("this was dropped, and why").
 */
export const AUDITED_DEAD_LETTERS: readonly string[] = Object.keys(DLQ_STAGE).map(deadLetterTopic);

/**
 * Dead letters that belong to no tenant are recorded under this one, for operators only (no
 * tenant can have this id, so no API key reads it): garbage without a tenant header, and every
 * message from outside the pipeline that its consumer did not authenticate (an unsigned or
 * wrongly signed submission, or one naming an unknown tenant), whatever tenant it claims.
 */
export const UNATTRIBUTED_TENANT = '_unattributed';

/**
 * A dead letter's reason as its tenant may read it: the dead-letter topic keeps the full text for
 * operators, but behind an outage or a bug it is a dependency's or a bug's words (addresses,
 * URLs), so the record gets the same caller message as the API would give (callerMessage).
 */
function reasonFor(codeName: string | undefined, reason: string): string {
  const code = codeName && Object.hasOwn(ErrorCode, codeName) ? (ErrorCode[codeName as keyof typeof ErrorCode] as ErrorCode) : ErrorCode.INTERNAL;
  const forCaller = classOf(code) === 'invalid-input' || classOf(code) === 'caller';
  return callerMessage(code, reason.slice(0, 500), forCaller);
}

/** The tenant a dead letter is recorded under: see PIPELINE_TOPICS and Header.dlqTenant. */
function tenantOf(h: Record<string, string>): string | undefined {
  return PIPELINE_TOPICS.has(h[Header.dlqOriginalTopic] ?? '') ? h[Header.tenant] : h[Header.dlqTenant];
}

/**
 * A dead letter as an audit record: FAILED at the stage that gave up, with the code and reason
 * from its headers. Its event id is derived from the message itself, so a redelivered dead
 * letter is recorded once; the original value is not kept (it may be anything), only its hash.
 */
export function toDeadLetterRecord(msg: BusMessage): AuditRecordInput {
  const h = msg.headers;
  const group = h[Header.dlqStage] ?? '';
  const time = new Date(h[Header.dlqTime] ?? '');
  const at = Number.isNaN(time.getTime()) ? new Date(0) : time;
  const id = sha256Hex(`${msg.topic}\n${msg.key}\n${sha256Hex(msg.value)}\n${h[Header.dlqTime] ?? ''}\n${h[Header.dlqOriginalTopic] ?? ''}`);
  const tenant = tenantOf(h);
  // For operators: which tenant an unattributed message named (a claim only, never trusted).
  const claimed = !tenant && h[Header.tenant] ? ` (claims tenant ${JSON.stringify(h[Header.tenant].slice(0, 64))})` : '';
  return {
    eventId: `dlq:${id}`,
    tenantId: tenant || UNATTRIBUTED_TENANT,
    analysisId: /^[0-9a-f-]{36}$/.test(msg.key) ? msg.key : '',
    contentSha256: h[Header.contentSha256] ?? '',
    stage: Stage[DLQ_STAGE[group] ?? Stage.UNSPECIFIED],
    status: AnalysisStatus[AnalysisStatus.FAILED],
    models: [],
    faces: [],
    regions: [],
    errorCode: h[Header.dlqCode] || undefined,
    errorMessage: `dead-lettered by ${group || 'unknown'} from ${h[Header.dlqOriginalTopic] ?? 'unknown'}: ${reasonFor(h[Header.dlqCode], h[Header.dlqReason] ?? '')}${claimed}`,
    eventTime: at,
  };
}
