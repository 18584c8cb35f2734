// Runs a transport-free stage behind any EventBus: decode, handle, publish, and map failures
// once. The stage function never sees the bus; the bus never sees the stage's types.
import { create, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { BusMessage, EventBus, Subscription } from './bus.ts';
import { AnalysisStatus, ErrorCode, type Stage, StageTimingSchema } from './gen/tampertrace/v1/common_pb.ts';
import { AnalysisCompletedSchema, type EventMeta } from './gen/tampertrace/v1/events_pb.ts';
import { classify, codeName, toErrorInfo } from './errors.ts';
import { decodeEvent, encodeEvent, terminalEvent } from './events.ts';
import type { Logger } from './log.ts';
import { Header, Topic, deadLetterTopic } from './topics.ts';
import { metrics } from './metrics.ts';
import { Attr, recordError, withSpan } from './telemetry.ts';
import { pipelineStage, type StageService } from './pipeline.ts';
import { trace } from '@opentelemetry/api';

type WithMeta = { meta?: EventMeta };

/** A pipeline stage: one input event type in, one output event type out, no I/O knowledge of transport. */
export interface StageDefinition<I extends DescMessage, O extends DescMessage> {
  /** Service name; also the consumer group. */
  readonly name: string;
  readonly stage: Stage;
  /** Name of the span around handle(), inside the message's consumer span (a SpanName). */
  readonly span: string;
  readonly input: { topic: string; schema: I };
  readonly output: { topic: string; schema: O };
  handle(event: MessageShape<I> & WithMeta): Promise<MessageShape<O> & WithMeta>;
}

/**
 * A stage's name, Stage value, span and topics from the pipeline's list (shared/src/pipeline.ts),
 * with the schemas of its messages; throws at start when a schema is not the list's type.
 */
export function stageWiring<I extends DescMessage, O extends DescMessage>(service: StageService, input: I, output: O): Omit<StageDefinition<I, O>, 'handle'> {
  const s = pipelineStage(service);
  if (input.typeName !== s.input.type || output.typeName !== s.output.type) {
    throw new Error(`stage ${service}: the list says ${s.input.type} -> ${s.output.type}, its definition ${input.typeName} -> ${output.typeName}`);
  }
  return { name: s.group, stage: s.stage, span: s.span, input: { topic: s.input.topic, schema: input }, output: { topic: s.output.topic, schema: output } };
}

export interface RunStageOptions {
  concurrency: number;
  /** Attempts for a retriable failure other than a dependency outage before the event is dead-lettered and the analysis failed. */
  maxAttempts: number;
  log: Logger;
}

/**
 * Sends a message to the consuming service's dead-letter topic with provenance headers; original
 * key and value kept. `authenticatedTenant`: the tenant the consumer proved sent it (on a topic
 * outside PIPELINE_TOPICS); a tt-dlq-tenant the producer set itself is never passed on.
 */
export async function deadLetter(bus: EventBus, msg: BusMessage, stage: string, code: string, reason: string, authenticatedTenant?: string): Promise<void> {
  metrics.deadLetters.inc({ group: stage, code });
  const { [Header.dlqTenant]: _claimed, ...headers } = msg.headers;
  await bus.publish({
    topic: deadLetterTopic(stage),
    key: msg.key,
    value: msg.value,
    headers: {
      ...headers,
      ...(authenticatedTenant ? { [Header.dlqTenant]: authenticatedTenant } : {}),
      [Header.dlqReason]: reason.slice(0, 1000),
      [Header.dlqCode]: code,
      [Header.dlqStage]: stage,
      [Header.dlqTime]: new Date().toISOString(),
      [Header.dlqOriginalTopic]: msg.topic,
    },
  });
}

export async function runStage<I extends DescMessage, O extends DescMessage>(bus: EventBus, def: StageDefinition<I, O>, opts: RunStageOptions): Promise<Subscription> {
  const attempts = new Map<string, number>();
  const log = opts.log;

  const handler = async (msg: BusMessage): Promise<void> => {
    let event: MessageShape<I> & WithMeta;
    try {
      event = decodeEvent(def.input.schema, msg);
    } catch (err) {
      const e = classify(err);
      metrics.errors.inc({ stage: def.name, code: codeName(e.code) });
      log.warn({ topic: msg.topic, key: msg.key, code: codeName(e.code), err: e.message }, 'dead-lettering an undecodable message');
      await deadLetter(bus, msg, def.name, codeName(e.code), e.message);
      return;
    }
    const meta = event.meta!;
    const started = performance.now();
    const span = trace.getActiveSpan(); // the consumer span of this message
    span?.setAttribute(Attr.tenant, meta.tenantId);
    const done = (outcome: 'ok' | 'rejected' | 'failed' | 'retry') => {
      metrics.stageDuration.observe({ stage: def.name, outcome }, (performance.now() - started) / 1000);
      if (outcome !== 'retry') metrics.imagesProcessed.inc({ stage: def.name, outcome });
    };
    try {
      const out = await withSpan(def.span, { [Attr.analysisId]: meta.analysisId, [Attr.stage]: def.name }, () => def.handle(event));
      out.meta!.timings.push(create(StageTimingSchema, { stage: def.stage, durationMs: performance.now() - started }));
      await bus.publish(encodeEvent(def.output.topic, def.output.schema, out));
      attempts.delete(meta.eventId);
      done('ok');
      log.debug({ analysisId: meta.analysisId, tenant: meta.tenantId, ms: Math.round(performance.now() - started) }, 'message handled');
    } catch (err) {
      const e = classify(err);
      metrics.errors.inc({ stage: def.name, code: codeName(e.code) });
      span?.setAttributes({ [Attr.errorCode]: codeName(e.code), [Attr.errorClass]: e.errorClass });
      // A rethrown error is recorded by the consumer span itself; a handled one, here.
      const handled = () => span && recordError(span, e);
      const ctx = { analysisId: meta.analysisId, tenant: meta.tenantId, code: codeName(e.code), class: e.errorClass };
      if (e.errorClass === 'invalid-input') {
        // The image itself is bad: a normal, final outcome for the user, not an incident.
        log.info({ ...ctx, err: e.message }, 'input rejected');
        handled();
        const final = terminalEvent(meta, AnalysisStatus.REJECTED, toErrorInfo(e, def.stage), def.name);
        await bus.publish(encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, final));
        done('rejected');
        return;
      }
      const n = (attempts.get(meta.eventId) ?? 0) + 1;
      attempts.set(meta.eventId, n);
      // A dependency outage (bus, store, database down) is waited out however long it lasts: the
      // bus redelivers with capped backoff. Only other retriable errors, such as timeouts that a
      // message itself may cause, count against maxAttempts.
      if (e.errorClass === 'retriable' && (e.code === ErrorCode.DEPENDENCY_UNAVAILABLE || n < opts.maxAttempts)) {
        log.warn({ ...ctx, attempt: n, err: e.message }, 'retriable failure; the message will be redelivered');
        done('retry');
        throw e; // not committed: the bus redelivers after a backoff
      }
      log.error({ ...ctx, attempt: n, err: e.message, stack: e.stack }, 'giving up on message');
      handled();
      await deadLetter(bus, msg, def.name, codeName(e.code), e.message);
      const final = terminalEvent(meta, AnalysisStatus.FAILED, toErrorInfo(e, def.stage), def.name);
      await bus.publish(encodeEvent(Topic.analysisCompleted, AnalysisCompletedSchema, final));
      attempts.delete(meta.eventId);
      done('failed');
    }
  };

  return bus.subscribe({ group: def.name, topics: [def.input.topic], handler, concurrency: opts.concurrency });
}
