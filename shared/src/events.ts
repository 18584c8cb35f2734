// Encoding of events onto the bus: protobuf values, analysis id as key, routing facts in headers.
import { create, createRegistry, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { timestampFromDate, timestampNow } from '@bufbuild/protobuf/wkt';
import type { BusMessage } from './bus.ts';
import { ErrorCode, Stage, type ErrorInfo } from './gen/tampertrace/v1/common_pb.ts';
import { AnalysisSchema } from './gen/tampertrace/v1/analysis_pb.ts';
import { AnalysisStatus } from './gen/tampertrace/v1/common_pb.ts';
import { AnalysisCompletedSchema, EventMetaSchema, file_tampertrace_v1_events, type AnalysisCompleted, type EventMeta } from './gen/tampertrace/v1/events_pb.ts';
import { InvalidInputError } from './errors.ts';
import { eventId } from './ids.ts';
import { Header, SCHEMA_VERSION } from './topics.ts';

export function encodeEvent<D extends DescMessage>(topic: string, schema: D, message: MessageShape<D> & { meta?: EventMeta }): BusMessage {
  const meta = message.meta;
  if (!meta?.analysisId) throw new Error(`event for ${topic} has no meta.analysisId`);
  return {
    topic,
    key: meta.analysisId,
    value: toBinary(schema, message),
    headers: {
      [Header.eventType]: schema.typeName,
      [Header.tenant]: meta.tenantId,
      [Header.contentSha256]: meta.contentSha256,
      [Header.schemaVersion]: SCHEMA_VERSION,
    },
  };
}

/** Decodes and checks the fields every stage relies on; anything else is INVALID_MESSAGE. */
export function decodeEvent<D extends DescMessage>(schema: D, msg: BusMessage): MessageShape<D> & { meta?: EventMeta } {
  const type = msg.headers[Header.eventType];
  if (type !== undefined && type !== schema.typeName) {
    throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `expected ${schema.typeName} on ${msg.topic}, header says ${type}`);
  }
  let decoded: MessageShape<D> & { meta?: EventMeta };
  try {
    decoded = fromBinary(schema, msg.value) as MessageShape<D> & { meta?: EventMeta };
  } catch (err) {
    throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `undecodable ${schema.typeName}: ${(err as Error).message}`, { cause: err });
  }
  const meta = decoded.meta;
  if (!meta || !meta.analysisId || !meta.tenantId || !meta.contentSha256) {
    throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `${schema.typeName} lacks meta.analysisId, tenantId or contentSha256`);
  }
  if (meta.analysisId !== msg.key) {
    throw new InvalidInputError(ErrorCode.INVALID_MESSAGE, `message key "${msg.key}" does not match meta.analysisId`);
  }
  return decoded;
}

/** The meta of the event a stage emits: same analysis, deterministic new event id. */
export function nextMeta(input: EventMeta, stage: Stage, stageName: string): EventMeta {
  return create(EventMetaSchema, {
    ...input,
    eventId: eventId(input.analysisId, stageName),
    occurredAt: timestampNow(),
    timings: [...input.timings],
  });
}

/** The final event of an analysis that stopped early (rejected or failed). */
export function terminalEvent(meta: EventMeta, status: AnalysisStatus, error: ErrorInfo, stageName: string, base?: MessageInitShape<typeof AnalysisSchema>): AnalysisCompleted {
  const m = nextMeta(meta, error.stage, `${stageName}:terminal`);
  const analysis = create(AnalysisSchema, {
    ...base,
    analysisId: meta.analysisId,
    tenantId: meta.tenantId,
    contentSha256: meta.contentSha256,
    status,
    error,
    submittedAt: meta.submittedAt,
    completedAt: timestampFromDate(new Date()),
    timings: m.timings,
    sourceName: meta.sourceName,
  });
  return create(AnalysisCompletedSchema, { meta: m, analysis });
}

const EVENTS = createRegistry(file_tampertrace_v1_events);

/** The schema of an event type by its full proto name (as the pipeline's list and the tt-event-type header name it). */
export function eventSchemaOf(typeName: string): DescMessage {
  const schema = EVENTS.getMessage(typeName);
  if (!schema) throw new Error(`${typeName} is not an event of events.proto`);
  return schema;
}
