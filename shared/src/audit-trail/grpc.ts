// AuditService (protos/tampertrace/v1/audit.proto): the audit store's reads as proto messages,
// served over gRPC here and over HTTP/JSON by the ingest service (services/ingest/src/http.ts).
// Every operation takes the tenant the caller's API key authenticated; nothing here crosses it.
import { once } from 'node:events';
import { create, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { InvalidInputError, callSignal, failStream, grpc, unaryHandler, type Logger } from '../index.ts';
import { Cue, ExplanationSchema, FaceSchema, FactSchema, type Face } from '../gen/tampertrace/v1/analysis_pb.ts';
import { AnalysisStatus, ErrorCode, ErrorInfoSchema, ModelRefSchema, Stage, Verdict } from '../gen/tampertrace/v1/common_pb.ts';
import {
  AuditCheckpointSchema,
  AuditRecordSchema,
  AuditService,
  ExportFormat,
  ExportRecordsResponseSchema,
  GetTrailResponseSchema,
  ListCheckpointsResponseSchema,
  QueryRecordsResponseSchema,
  VerifyChainResponseSchema,
  type AuditCheckpoint as AuditCheckpointMsg,
  type AuditFilter as AuditFilterMsg,
  type AuditRecord,
  type ExportRecordsRequest,
  type GetTrailRequest,
  type GetTrailResponse,
  type ListCheckpointsRequest,
  type ListCheckpointsResponse,
  type QueryRecordsRequest,
  type QueryRecordsResponse,
  type VerifyChainRequest,
  type VerifyChainResponse,
} from '../gen/tampertrace/v1/audit_pb.ts';
import type { AuditCheckpoint } from './chain.ts';
import type { AuditFilter, AuditRow, AuditStore, ExportFormat as StoreExportFormat } from './store.ts';

export { AuditService };

/** The tenant id of a call's API key; rejects (UNAUTHENTICATED) when there is none or it is not valid. */
export type TenantOf = (md: grpc.Metadata) => Promise<string>;

/** Bytes per ExportRecordsResponse: well under every message limit, large enough to stream fast. */
export const EXPORT_CHUNK_BYTES = 64 * 1024;

const invalid = (message: string) => new InvalidInputError(ErrorCode.INVALID_MESSAGE, message);

/** An enum value by the name the table keeps (the value name without its prefix), UNSPECIFIED when unknown. */
function enumOf<E extends Record<string, string | number>>(e: E, name: string | undefined): number {
  const v = name === undefined ? undefined : e[name];
  return typeof v === 'number' ? v : 0;
}

/**
 * A recorded face. Localization and final records keep Face in proto3 JSON; detection records
 * keep only `{box, score}`, whose score is the detection score.
 */
function faceOf(j: unknown): Face {
  const o = (j ?? {}) as Record<string, unknown>;
  const face = fromJson(FaceSchema, o as JsonValue, { ignoreUnknownFields: true });
  if (typeof o.score === 'number' && !face.detectionScore) face.detectionScore = o.score;
  return face;
}

interface StoredFact {
  face?: number;
  region?: string;
  cue?: number | string;
  value?: number;
  unit?: string;
}

/** A stored row as the API's AuditRecord. */
export function recordOf(r: AuditRow): AuditRecord {
  const stage = enumOf(Stage, r.stage);
  return create(AuditRecordSchema, {
    eventId: r.eventId,
    tenantId: r.tenantId,
    analysisId: r.analysisId,
    contentSha256: r.contentSha256,
    stage,
    status: enumOf(AnalysisStatus, r.status),
    verdict: enumOf(Verdict, r.verdict),
    models: r.models.map((m) => fromJson(ModelRefSchema, m as JsonValue, { ignoreUnknownFields: true })),
    maxForgeryScore: r.maxForgeryScore ?? 0,
    faces: r.faces.map(faceOf),
    explanation:
      r.explanationText !== undefined || r.explanationFacts !== undefined
        ? create(ExplanationSchema, {
            text: r.explanationText ?? '',
            facts: ((r.explanationFacts ?? []) as StoredFact[]).map((f) =>
              create(FactSchema, {
                faceIndex: f.face ?? 0,
                region: f.region ?? '',
                cue: typeof f.cue === 'number' ? f.cue : enumOf(Cue, f.cue),
                value: f.value ?? 0,
                unit: f.unit ?? '',
              }),
            ),
          })
        : undefined,
    error: r.errorCode !== undefined ? create(ErrorInfoSchema, { code: enumOf(ErrorCode, r.errorCode), message: r.errorMessage ?? '', stage }) : undefined,
    eventTime: timestampFromDate(r.eventTime),
    recordedTime: timestampFromDate(r.recordedTime),
    sequence: BigInt(r.sequence),
    sourceName: r.sourceName ?? '',
    traceId: r.traceId ?? '',
    submittedBy: r.submittedBy ?? '',
    prevHash: r.prevHash,
    recordHash: r.recordHash,
    hashVersion: r.hashVersion,
    regions: r.regions,
  });
}

/** The store's filter for a request's; unset fields do not filter. */
export function filterOf(f: AuditFilterMsg | undefined): AuditFilter {
  if (!f) return {};
  const out: AuditFilter = {};
  if (f.fromTime) out.from = timestampDate(f.fromTime);
  if (f.toTime) out.to = timestampDate(f.toTime);
  const name = <E extends Record<string, string | number>>(e: E, v: number, what: string): string | undefined => {
    if (v === 0) return undefined;
    const n = e[v];
    if (typeof n !== 'string') throw invalid(`unknown ${what} ${v}`);
    return n;
  };
  out.status = name(AnalysisStatus, f.status, 'status');
  out.verdict = name(Verdict, f.verdict, 'verdict');
  out.stage = name(Stage, f.stage, 'stage');
  out.errorCode = name(ErrorCode, f.errorCode, 'error code');
  if (f.minForgeryScore !== undefined) {
    if (!(f.minForgeryScore >= 0 && f.minForgeryScore <= 1)) throw invalid(`minimum forgery score must be in [0, 1], got ${f.minForgeryScore}`);
    out.minForgeryScore = f.minForgeryScore;
  }
  if (f.modelVersion) out.modelVersion = f.modelVersion;
  if (f.region) out.region = f.region;
  return out;
}

export function checkpointMsg(cp: AuditCheckpoint): AuditCheckpointMsg {
  return create(AuditCheckpointSchema, {
    tenantId: cp.tenantId,
    checkpointSequence: BigInt(cp.checkpointSequence),
    recordSequence: BigInt(cp.recordSequence),
    headHash: cp.headHash,
    createdTime: timestampFromDate(new Date(cp.createdTime)),
    prevCheckpointHash: cp.prevCheckpointHash,
    checkpointHash: cp.checkpointHash,
  });
}

/** A kept checkpoint handed back by a caller, as the store compares it (under the caller's tenant). */
function keptCheckpoint(tenantId: string, m: AuditCheckpointMsg): AuditCheckpoint {
  return {
    tenantId,
    checkpointSequence: Number(m.checkpointSequence),
    recordSequence: Number(m.recordSequence),
    headHash: m.headHash,
    createdTime: (m.createdTime ? timestampDate(m.createdTime) : new Date(0)).toISOString(),
    prevCheckpointHash: m.prevCheckpointHash,
    checkpointHash: m.checkpointHash,
  };
}

/** A positive int64 sequence as a number; 0 means "not set". */
function sequenceOf(v: bigint, name: string): number | undefined {
  if (v === 0n) return undefined;
  if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${name} must be a positive integer, got ${v}`);
  return Number(v);
}

export const EXPORT_CONTENT_TYPE: Record<StoreExportFormat, string> = { jsonl: 'application/x-ndjson', csv: 'text/csv; charset=utf-8' };

export function exportFormatOf(f: ExportFormat): StoreExportFormat {
  switch (f) {
    case ExportFormat.UNSPECIFIED:
    case ExportFormat.JSONL:
      return 'jsonl';
    case ExportFormat.CSV:
      return 'csv';
    default:
      throw invalid(`unknown export format ${f}`);
  }
}

/** AuditService's operations on messages, for a tenant already authenticated (the gRPC and HTTP adapters share them). */
export class AuditApi {
  constructor(readonly store: AuditStore) {}

  async trail(tenantId: string, req: GetTrailRequest): Promise<GetTrailResponse> {
    const key = req.key;
    if (key.case === 'contentSha256' && !/^[0-9a-f]{64}$/.test(key.value)) throw invalid('content_sha256 must be 64 lower-case hex characters');
    if (!key.case || !key.value) throw invalid('an analysis_id or a content_sha256 is required');
    const rows = await this.store.trail(tenantId, key.case === 'analysisId' ? { analysisId: key.value } : { contentSha256: key.value });
    return create(GetTrailResponseSchema, { records: rows.map(recordOf) });
  }

  async query(tenantId: string, req: QueryRecordsRequest): Promise<QueryRecordsResponse> {
    const page = await this.store.query(tenantId, filterOf(req.filter), { limit: req.pageSize, cursor: req.pageToken || undefined });
    return create(QueryRecordsResponseSchema, { records: page.records.map(recordOf), nextPageToken: page.nextCursor ?? '' });
  }

  /** The export's bytes in chunks of at most EXPORT_CHUNK_BYTES; a bad filter throws before the first one. */
  async *exportChunks(tenantId: string, req: ExportRecordsRequest): AsyncGenerator<Uint8Array> {
    const format = exportFormatOf(req.format);
    const filter = filterOf(req.filter);
    for await (const text of this.store.exportRecords(tenantId, filter, format)) {
      const buf = Buffer.from(text, 'utf8');
      for (let i = 0; i < buf.length; i += EXPORT_CHUNK_BYTES) yield buf.subarray(i, i + EXPORT_CHUNK_BYTES);
    }
  }

  async verify(tenantId: string, req: VerifyChainRequest): Promise<VerifyChainResponse> {
    const v = await this.store.verify(tenantId, {
      fromSequence: sequenceOf(req.fromSequence, 'from_sequence'),
      toSequence: sequenceOf(req.toSequence, 'to_sequence'),
      checkpoints: req.checkpoints.map((c) => keptCheckpoint(tenantId, c)),
    });
    return v.ok
      ? create(VerifyChainResponseSchema, { ok: true, count: BigInt(v.count) })
      : create(VerifyChainResponseSchema, { ok: false, failedSequence: BigInt(v.sequence), reason: v.reason });
  }

  async checkpoints(tenantId: string, req: ListCheckpointsRequest): Promise<ListCheckpointsResponse> {
    const since = sequenceOf(req.since, 'since') ?? 0;
    return create(ListCheckpointsResponseSchema, { checkpoints: (await this.store.exportCheckpoints(tenantId, since)).map(checkpointMsg) });
  }
}

/** AuditService for grpc-js: each call authenticated by `tenantOf`, errors mapped once by toGrpcError. */
export function auditServiceImpl(store: AuditStore, tenantOf: TenantOf, log: Logger): grpc.UntypedServiceImplementation {
  const api = new AuditApi(store);
  const unary = <Req, Res>(fn: (tenantId: string, req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> =>
    unaryHandler(log, async (req: Req, _signal, md) => fn(await tenantOf(md), req));

  return {
    getTrail: unary((t, req: GetTrailRequest) => api.trail(t, req)),
    queryRecords: unary((t, req: QueryRecordsRequest) => api.query(t, req)),
    verifyChain: unary((t, req: VerifyChainRequest) => api.verify(t, req)),
    listCheckpoints: unary((t, req: ListCheckpointsRequest) => api.checkpoints(t, req)),

    // One page of records at a time is read while the client takes the previous one: writes wait
    // for the stream to drain, so a slow client never makes the server hold the whole export.
    exportRecords: (call: grpc.ServerWritableStream<ExportRecordsRequest, unknown>) => {
      const signal = callSignal(call);
      (async () => {
        const tenantId = await tenantOf(call.metadata);
        for await (const data of api.exportChunks(tenantId, call.request)) {
          if (signal.aborted) return;
          if (!call.write(create(ExportRecordsResponseSchema, { data }))) await once(call, 'drain', { signal });
        }
        call.end();
      })().catch((err) => {
        if (!signal.aborted) failStream(log, call, err);
      });
    },
  };
}
