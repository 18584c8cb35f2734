// An audit record as the application sees it and as the table stores it, and its hash.
import { sha256Hex } from '../index.ts';

export interface AuditRecordInput {
  eventId: string;
  tenantId: string;
  analysisId: string;
  contentSha256: string;
  stage: string;
  status: string;
  verdict?: string;
  maxForgeryScore?: number;
  models: unknown[];
  faces: unknown[];
  regions: string[];
  explanationText?: string;
  explanationFacts?: unknown[];
  errorCode?: string;
  errorMessage?: string;
  sourceName?: string;
  /** W3C trace id (32 lower-case hex) of the message that carried the event. */
  traceId?: string;
  /** Who submitted the analysis (an API key id), when known. */
  submittedBy?: string;
  eventTime: Date;
}

export interface AuditRow extends AuditRecordInput {
  /** Position in the tenant's chain, from 1: recording order. */
  sequence: number;
  prevHash: string;
  recordHash: string;
  recordedTime: Date;
  /** How recordHash was computed: 1 (rows from before hash versions), 2 (also covers recordedTime). */
  hashVersion: number;
}

/** The hash version append() writes. */
export const HASH_VERSION = 2;
export const GENESIS = '0'.repeat(64);

/** The record fields a hash covers, in the order of AuditRecordInput (order does not matter to the hash). */
const INPUT_KEYS = [
  'eventId', 'tenantId', 'analysisId', 'contentSha256', 'stage', 'status', 'verdict', 'maxForgeryScore', 'models', 'faces',
  'regions', 'explanationText', 'explanationFacts', 'errorCode', 'errorMessage', 'sourceName', 'traceId', 'submittedBy', 'eventTime',
] as const satisfies ReadonlyArray<keyof AuditRecordInput>;

/** Only the input fields of r (a caller may hand in a row or an object with more properties). */
export function inputOf(r: AuditRecordInput): AuditRecordInput {
  const out: Record<string, unknown> = {};
  for (const k of INPUT_KEYS) if (r[k] !== undefined && r[k] !== null) out[k] = r[k];
  return out as unknown as AuditRecordInput;
}

/** Object shapes seen (own keys in their order, as a trie): each one's keys sorted and quoted with a colon. */
interface ShapeNode {
  next: Map<string, ShapeNode>;
  keys?: string[];
  quoted?: string[];
}
const shapes: ShapeNode = { next: new Map() };
let shapeCount = 0;
const MAX_SHAPES = 10_000;

function shapeOf(own: string[]): { keys: string[]; quoted: string[] } {
  let node = shapes;
  for (const k of own) {
    let n = node.next.get(k);
    if (!n) {
      if (shapeCount >= MAX_SHAPES) return sortedShape(own);
      shapeCount++;
      node.next.set(k, (n = { next: new Map() }));
    }
    node = n;
  }
  if (!node.keys) Object.assign(node, sortedShape(own));
  return node as { keys: string[]; quoted: string[] };
}

function sortedShape(own: string[]): { keys: string[]; quoted: string[] } {
  const keys = [...own].sort();
  return { keys, quoted: keys.map((k) => `${JSON.stringify(k)}:`) };
}

/**
 * Canonical JSON: keys sorted (by UTF-16 code units), null and undefined members dropped, so the
 * hash does not depend on field order. verify() runs it over every record: the sorted, quoted
 * keys of each object shape are remembered (records share a handful of shapes).
 */
export function canonicalJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v);
    case 'number':
      return Number.isFinite(v) ? String(v) : 'null';
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object':
      break;
    default:
      return JSON.stringify(v);
  }
  if (v instanceof Date) return JSON.stringify(v.toISOString());
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += (i ? ',' : '') + canonicalJson(v[i]);
    return out + ']';
  }
  const o = v as Record<string, unknown>;
  const shape = shapeOf(Object.keys(o));
  let out = '{';
  let first = true;
  for (let i = 0; i < shape.keys.length; i++) {
    const x = o[shape.keys[i]];
    if (x === undefined || x === null) continue;
    out += (first ? '' : ',') + shape.quoted[i] + canonicalJson(x);
    first = false;
  }
  return out + '}';
}

/**
 * sha256(prevHash || canonical JSON of the record with its sequence). Version 1 (no `v2`): the
 * input fields and the sequence, as rows written before hash versions were; absent fields
 * (trace id, submitter) leave the JSON as it was. Version 2 also covers the recording time and
 * the version itself. Only the input fields of r count.
 */
export function recordHash(prevHash: string, r: AuditRecordInput, sequence: number, v2?: { recordedTime: Date }): string {
  const body = inputOf(r) as AuditRecordInput & Record<string, unknown>;
  // real columns round-trip through float4, so hash scores at the precision the table keeps.
  if (body.maxForgeryScore !== undefined) body.maxForgeryScore = Math.fround(body.maxForgeryScore);
  body.sequence = sequence;
  if (v2) {
    body.recordedTime = v2.recordedTime;
    body.hashVersion = 2;
  }
  return sha256Hex(prevHash + canonicalJson(body));
}

/** The hash a stored row should have, by its hash version; undefined for an unknown version. */
export function expectedHash(row: AuditRow): string | undefined {
  if (row.hashVersion === 1) return recordHash(row.prevHash, row, row.sequence);
  if (row.hashVersion === 2) return recordHash(row.prevHash, row, row.sequence, { recordedTime: row.recordedTime });
  return undefined;
}

/** The columns toRow reads (model_versions is derived from models, id is internal). */
const ROW_COLUMN_NAMES = [
  'event_id', 'tenant_id', 'analysis_id', 'content_sha256', 'stage', 'status', 'verdict', 'max_forgery_score', 'models', 'faces',
  'regions', 'explanation_text', 'explanation_facts', 'error_code', 'error_message', 'source_name', 'trace_id', 'submitted_by',
  'event_time', 'recorded_time', 'sequence', 'prev_hash', 'record_hash', 'hash_version',
];
export const ROW_COLUMNS = ROW_COLUMN_NAMES.join(', ');
/** ROW_COLUMNS qualified with a table alias, for joins. */
export const rowColumnsOf = (alias: string): string => ROW_COLUMN_NAMES.map((c) => `${alias}.${c}`).join(', ');

function opt<T>(v: unknown): T | undefined {
  return v === null || v === undefined ? undefined : (v as T);
}

export function toRow(r: Record<string, unknown>): AuditRow {
  return {
    eventId: r.event_id as string,
    tenantId: r.tenant_id as string,
    analysisId: r.analysis_id as string,
    contentSha256: r.content_sha256 as string,
    stage: r.stage as string,
    status: r.status as string,
    verdict: opt(r.verdict),
    maxForgeryScore: opt<number>(r.max_forgery_score),
    models: r.models as unknown[],
    faces: r.faces as unknown[],
    regions: r.regions as string[],
    explanationText: opt(r.explanation_text),
    explanationFacts: opt(r.explanation_facts),
    errorCode: opt(r.error_code),
    errorMessage: opt(r.error_message),
    sourceName: opt(r.source_name),
    traceId: opt(r.trace_id),
    submittedBy: opt(r.submitted_by),
    eventTime: new Date(r.event_time as string),
    sequence: Number(r.sequence),
    prevHash: r.prev_hash as string,
    recordHash: r.record_hash as string,
    recordedTime: new Date(r.recorded_time as string),
    hashVersion: Number(r.hash_version ?? 1),
  };
}
