// Every topic name in one place. Distributed mode prefixes them (TAMPERTRACE_TOPIC_PREFIX);
// each consuming service has its own dead-letter topic (several services read one topic, and
// each must own its failures).

export const Topic = {
  /** ImageIngested: validated bytes are stored and ready for detection. Key: analysis id. */
  imageIngested: 'tampertrace.image.ingested.v1',
  /** ProvenanceChecked: the ingested image with its near duplicates among the tenant's earlier analyses and its header facts. */
  provenanceChecked: 'tampertrace.provenance.checked.v1',
  /** FacesDetected: faces (possibly none) found in an image. */
  facesDetected: 'tampertrace.faces.detected.v1',
  /** ForgeryLocalized: per-face maps, masks, region scores and the verdict. */
  forgeryLocalized: 'tampertrace.forgery.localized.v1',
  /** AnalysisCompleted: the final result of every analysis, including rejections. */
  analysisCompleted: 'tampertrace.analysis.completed.v1',
  /**
   * SubmitRequest from a platform's own stream, consumed by ingest (no API call needed). Headers:
   * tt-tenant, and tt-signature = hex HMAC-SHA256 of "<tenant>.<sha256 of the value>" keyed with
   * the tenant's signing secret. Key: the producer's choice (a post id keeps a post's images in order).
   */
  submissions: 'tampertrace.submissions.v1',
} as const;

export type TopicName = (typeof Topic)[keyof typeof Topic];

/**
 * The topics only the pipeline's own services write: there a message's tt-tenant is a fact. On
 * any other (the submissions topic, which platforms produce to) it is only a claim until a
 * consumer has checked the signature, so a dead letter from there is recorded under a tenant
 * only when its consumer vouched for one (Header.dlqTenant).
 */
export const PIPELINE_TOPICS: ReadonlySet<string> = new Set<string>([Topic.imageIngested, Topic.facesDetected, Topic.forgeryLocalized, Topic.analysisCompleted]);

/** Dead letters of one consuming service (its consumer group); the source topic is in a header. */
export function deadLetterTopic(consumer: string): string {
  return `tampertrace.dlq.${consumer}.v1`;
}

/**
 * Every consumer group, i.e. every owner of a dead-letter topic: the stages (their group is their
 * service name; shared/src/pipeline.ts lists them in order), the audit service, the ingest
 * service's results view and submissions reader, and the provenance service's verdict recorder.
 * Names must match the groups the services subscribe with.
 */
export const ConsumerGroup = {
  provenance: 'provenance',
  /** The provenance service's recorder of each analysis's final verdict (beside its stage). */
  provenanceVerdicts: 'provenance-verdicts',
  faceDetection: 'face-detection',
  forgeryLocalization: 'forgery-localization',
  explanationGeneration: 'explanation-generation',
  audit: 'audit',
  /** The ingest service's results view (shared by its replicas). */
  ingestResults: 'ingest-results',
  /** The ingest service's reader of the submissions topic. */
  ingestSubmissions: 'ingest-submissions',
} as const;

/** Every topic the pipeline uses, dead-letter topics included: what provisioning creates. */
export function allTopics(): string[] {
  return [...Object.values(Topic), ...Object.values(ConsumerGroup).map(deadLetterTopic)];
}

export function withPrefix(prefix: string, topic: string): string {
  return prefix ? `${prefix}.${topic}` : topic;
}

/** Header names carried on every message (values are UTF-8 strings). */
export const Header = {
  eventType: 'tt-event-type',
  tenant: 'tt-tenant',
  contentSha256: 'tt-content-sha256',
  schemaVersion: 'tt-schema-version',
  traceparent: 'traceparent',
  // Dead-letter provenance.
  dlqReason: 'tt-dlq-reason',
  dlqCode: 'tt-dlq-code',
  dlqStage: 'tt-dlq-stage',
  dlqTime: 'tt-dlq-time',
  dlqOriginalTopic: 'tt-dlq-original-topic',
  /** The tenant the dead-lettering consumer authenticated, when it did (see PIPELINE_TOPICS). */
  dlqTenant: 'tt-dlq-tenant',
  /** Submissions topic: proof that the tenant sent it (see Topic.submissions). */
  submissionSignature: 'tt-signature',
} as const;

/** Bumped when an event's encoding changes incompatibly. */
export const SCHEMA_VERSION = '1';
