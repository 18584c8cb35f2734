// The pipeline's stages in order: the one list that the other places derive from (stage
// definitions, topic chain, audit mapping, ingest's watch list, the console's steps, the CLI's
// services, the embedded wiring, the test cluster) or are checked against by pipeline.test.ts
// (compose, deploy/local/services.sh, Prometheus, the chart's components). README, "Adding a
// stage", says what a new stage needs. Imports nothing that a browser cannot load: the console
// reads it too.
import { Stage } from './gen/tampertrace/v1/common_pb.ts';
import { ConsumerGroup, Topic } from './topics.ts';

export interface PipelineStage {
  /** The service that runs it: services/<service>, `tampertrace service <service>`, the chart component. */
  readonly service: string;
  /** Its value in timings, errors, audit records and the events stream. */
  readonly stage: Stage;
  /** Its consumer group, which is its service name. */
  readonly group: string;
  /** The span around its work on one message (inside the message's consumer span). */
  readonly span: string;
  /** What it consumes: the previous stage's output (ingest's, for the first). Types are full proto names. */
  readonly input: { readonly topic: string; readonly type: string };
  /** What it publishes; the last stage publishes the final Analysis. */
  readonly output: { readonly topic: string; readonly type: string };
  /** Its gRPC port in distributed mode (its ops port is 9464 + grpcPort - 50051): fixed once published, so a new stage takes the next free one. */
  readonly grpcPort: number;
  /** Consumer groups its service runs beside the stage's, each with a dead-letter topic of its own. */
  readonly sideGroups: readonly string[];
}

export const PIPELINE = [
  {
    service: 'provenance',
    stage: Stage.PROVENANCE,
    group: ConsumerGroup.provenance,
    span: 'tampertrace.provenance.check',
    input: { topic: Topic.imageIngested, type: 'tampertrace.v1.ImageIngested' },
    output: { topic: Topic.provenanceChecked, type: 'tampertrace.v1.ProvenanceChecked' },
    grpcPort: 50056,
    sideGroups: [ConsumerGroup.provenanceVerdicts],
  },
  {
    service: 'face-detection',
    stage: Stage.FACE_DETECTION,
    group: ConsumerGroup.faceDetection,
    span: 'tampertrace.face_detection.detect',
    input: { topic: Topic.provenanceChecked, type: 'tampertrace.v1.ProvenanceChecked' },
    output: { topic: Topic.facesDetected, type: 'tampertrace.v1.FacesDetected' },
    grpcPort: 50052,
    sideGroups: [],
  },
  {
    service: 'forgery-localization',
    stage: Stage.FORGERY_LOCALIZATION,
    group: ConsumerGroup.forgeryLocalization,
    span: 'tampertrace.forgery_localization.localize',
    input: { topic: Topic.facesDetected, type: 'tampertrace.v1.FacesDetected' },
    output: { topic: Topic.forgeryLocalized, type: 'tampertrace.v1.ForgeryLocalized' },
    grpcPort: 50053,
    sideGroups: [],
  },
  {
    service: 'explanation-generation',
    stage: Stage.EXPLANATION,
    group: ConsumerGroup.explanationGeneration,
    span: 'tampertrace.explanation.explain',
    input: { topic: Topic.forgeryLocalized, type: 'tampertrace.v1.ForgeryLocalized' },
    output: { topic: Topic.analysisCompleted, type: 'tampertrace.v1.AnalysisCompleted' },
    grpcPort: 50054,
    sideGroups: [],
  },
] as const satisfies readonly PipelineStage[];

export type StageService = (typeof PIPELINE)[number]['service'];

/** What ingest publishes, i.e. the first stage's input. */
export const INGESTED = { topic: Topic.imageIngested, type: 'tampertrace.v1.ImageIngested', stage: Stage.INGEST } as const;

/** The services around the stages: ingest (the public API, first) and audit (records every event). */
export const EDGE_SERVICES = [
  { service: 'ingest', grpcPort: 50051 },
  { service: 'audit', grpcPort: 50055 },
] as const;

/** Every service process, in gRPC port order: what `tampertrace service`, make up, compose, Prometheus and the chart run. */
export const SERVICES: readonly string[] = [...EDGE_SERVICES, ...PIPELINE].sort((a, b) => a.grpcPort - b.grpcPort).map((s) => s.service);

/** A stage of the list by service name. */
export function pipelineStage(service: StageService): (typeof PIPELINE)[number] {
  return PIPELINE.find((s) => s.service === service)!;
}

/** The stage events before the final one, in order, as ingest's events stream reports them. */
export function intermediateEvents(): ReadonlyArray<{ topic: string; type: string; stage: Stage }> {
  return PIPELINE.filter((s) => s.output.topic !== Topic.analysisCompleted).map((s) => ({ ...s.output, stage: s.stage }));
}

/**
 * A stage's position in the pipeline: ingest 0, the list's stages 1 to n in order, anything else
 * (audit) after them. Stage values are not in pipeline order (a stage added later gets the next
 * free value), so "has the analysis got further" compares positions, never Stage values.
 */
export function stageOrder(stage: Stage): number {
  if (stage === Stage.INGEST) return 0;
  const i = PIPELINE.findIndex((s) => s.stage === stage);
  return i < 0 ? PIPELINE.length + 1 : i + 1;
}

/** The stage at a position (stageOrder's inverse for ingest and the list's stages). */
export function stageAtOrder(order: number): Stage {
  return order <= 0 ? Stage.INGEST : (PIPELINE[order - 1]?.stage ?? Stage.AUDIT);
}
