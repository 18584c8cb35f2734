// The one typed configuration. Keys are the environment variable names; read once at start,
// validated, and handed to whatever needs it. Defaults run the embedded mode on one machine.
import os from 'node:os';
import path from 'node:path';

export interface Config {
  /** Where embedded mode keeps objects and the database. */
  TAMPERTRACE_HOME: string;
  /** Repository root holding models/manifest.json. */
  TAMPERTRACE_MODELS_MANIFEST: string;
  /** Manifest name of the forgery-localization model to run. */
  TAMPERTRACE_LOCALIZER_MODEL: string;
  /** Tenant used by the CLI and the embedded HTTP endpoint. */
  TAMPERTRACE_TENANT: string;
  /** Largest accepted input file, bytes. */
  TAMPERTRACE_MAX_INPUT_BYTES: number;
  /** Largest accepted width x height, checked from the header before decoding. */
  TAMPERTRACE_MAX_PIXELS: number;
  /** Smallest accepted width or height, pixels. */
  TAMPERTRACE_MIN_SIDE: number;
  /**
   * Overlays (rendered on first request) of larger images are rendered scaled down to this many
   * pixels, so one render holds about 7 bytes per pixel of it at most, whatever the input.
   */
  TAMPERTRACE_OVERLAY_MAX_PIXELS: number;
  /** Overlay renders at once per gateway; more wait (up to 8 per render slot), then are refused (RESOURCE_EXHAUSTED, retry-after). */
  TAMPERTRACE_OVERLAY_RENDERS: number;
  /** Minimum detector confidence for a face. */
  TAMPERTRACE_MIN_FACE_SCORE: number;
  /** How many analyses each stage works on at once. */
  TAMPERTRACE_STAGE_CONCURRENCY: number;
  /** onnxruntime execution providers, comma separated (cpu, cuda). */
  TAMPERTRACE_EXECUTION_PROVIDERS: string[];
  /** onnxruntime intra-op threads per session; 0 lets onnxruntime decide. */
  TAMPERTRACE_ORT_THREADS: number;
  /** Dynamic batching of the localizer: most faces in one ONNX run. */
  TAMPERTRACE_BATCH_MAX_SIZE: number;
  /**
   * Face detection: most BlazeFace tiles (of one image, or of images detected at once) in one
   * session run. On this project's CPU, runs of up to 4 cost what as many single runs cost
   * (0.86-1.02x), 8 cost 1.03-1.13x; on a GPU raise it.
   */
  TAMPERTRACE_DETECTOR_BATCH_MAX_SIZE: number;
  /** How long a partial batch waits for more inputs when the model is free, ms (0: never waits). */
  TAMPERTRACE_BATCH_MAX_WAIT_MS: number;
  /** Most inputs waiting for a model run; beyond it work is retried later (bounded memory). */
  TAMPERTRACE_BATCH_MAX_QUEUE: number;
  /**
   * Worker threads that run the localizer's ONNX sessions off the event loop (the detector gets
   * one more of its own); 0 runs them on the main thread, as before the pool existed.
   */
  TAMPERTRACE_ORT_WORKERS: number;
  /** Embedded HTTP endpoint. */
  TAMPERTRACE_HTTP_HOST: string;
  TAMPERTRACE_HTTP_PORT: number;
  /** gRPC API of the ingest service (IngestService). */
  TAMPERTRACE_GRPC_HOST: string;
  TAMPERTRACE_GRPC_PORT: number;
  /**
   * Operations endpoint of every service process: GET /metrics (Prometheus), /livez, /readyz.
   * Port 0 picks a free one (logged at start).
   */
  TAMPERTRACE_OPS_HOST: string;
  TAMPERTRACE_OPS_PORT: number;
  /** How often readiness re-checks the dependencies (Kafka, S3, PostgreSQL), ms. */
  TAMPERTRACE_READINESS_INTERVAL_MS: number;
  /**
   * Optional TLS for every gRPC server: certificate chain and key files (PEM). With a client CA
   * as well, clients must present a certificate it signed (mTLS between services).
   */
  TAMPERTRACE_GRPC_TLS_CERT: string;
  TAMPERTRACE_GRPC_TLS_KEY: string;
  TAMPERTRACE_GRPC_TLS_CLIENT_CA: string;
  /** Lifetime of the presigned artefact URLs in results (distributed mode), seconds. */
  TAMPERTRACE_PRESIGN_TTL_S: number;
  /** Retries of a retriable failure before the message is dead-lettered. */
  TAMPERTRACE_MAX_ATTEMPTS: number;
  /** Distributed mode: Kafka bootstrap servers (comma separated in the variable). */
  TAMPERTRACE_KAFKA_BROKERS: string[];
  /** Distributed mode: prefix of every topic name (lets several deployments share a cluster). */
  TAMPERTRACE_TOPIC_PREFIX: string;
  /** Distributed mode: partitions of topics the services create. */
  TAMPERTRACE_TOPIC_PARTITIONS: number;
  /** Distributed mode: replication factor of topics the services and `tampertrace topics create` create. */
  TAMPERTRACE_TOPIC_REPLICATION: number;
  /** Distributed mode: S3 endpoint URL, region, credentials, bucket name prefix. Never logged. */
  TAMPERTRACE_S3_ENDPOINT: string;
  TAMPERTRACE_S3_REGION: string;
  TAMPERTRACE_S3_ACCESS_KEY: string;
  TAMPERTRACE_S3_SECRET_KEY: string;
  TAMPERTRACE_S3_BUCKET_PREFIX: string;
  /** Distributed mode: PostgreSQL URL of the audit store. Never logged. */
  TAMPERTRACE_DATABASE_URL: string;
  /** How long a service may take to finish in-flight work after SIGTERM, ms. */
  TAMPERTRACE_SHUTDOWN_TIMEOUT_MS: number;
  /**
   * Secret mixed into every stored API-key hash and the key that encrypts tenants' signing
   * secrets. Required by the distributed ingest service; embedded mode keeps one under
   * $TAMPERTRACE_HOME when unset. Never logged.
   */
  TAMPERTRACE_API_KEY_PEPPER: string;
  /** URL submissions and webhooks: also allow http:// (development only). */
  TAMPERTRACE_URL_ALLOW_HTTP: boolean;
  /** URL submissions and webhooks: non-public CIDRs that may still be reached (comma separated). */
  TAMPERTRACE_URL_ALLOW_PRIVATE: string[];
  /** URL submissions: total download time limit, ms. */
  TAMPERTRACE_URL_TIMEOUT_MS: number;
  /** Webhooks: attempts per delivery (network errors, 5xx and 429 are retried with backoff). */
  TAMPERTRACE_WEBHOOK_MAX_ATTEMPTS: number;
  /**
   * Audit: messages the audit consumer works on at once (Kafka partitions consumed concurrently);
   * records that arrive while a transaction runs share the next one.
   */
  TAMPERTRACE_AUDIT_CONCURRENCY: number;
  /** Audit: how long an append transaction waits for more records while the database is free, ms. */
  TAMPERTRACE_AUDIT_BATCH_WAIT_MS: number;
  /** Audit: checkpoint a tenant's chain whenever its sequence reaches a multiple of this, records (0: never). */
  TAMPERTRACE_AUDIT_CHECKPOINT_EVERY: number;
  /** Audit: also checkpoint every tenant appended to since the last time this often, ms (0: never). */
  TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS: number;
  /**
   * Explanations: "template" (rules, the default) or "openai" (a vision-language model behind any
   * OpenAI-compatible chat-completions endpoint: vLLM, llama.cpp server, Ollama), whose claims
   * are checked against the measured facts; the template writes whatever it cannot.
   */
  TAMPERTRACE_EXPLAINER: 'template' | 'openai';
  /** "openai" explainer: base URL up to /v1 (POST {url}/chat/completions), e.g. http://vllm:8000/v1. */
  TAMPERTRACE_EXPLAINER_URL: string;
  /** "openai" explainer: the model id the endpoint serves, e.g. Qwen/Qwen2.5-VL-7B-Instruct. */
  TAMPERTRACE_EXPLAINER_MODEL: string;
  /** "openai" explainer: bearer key of the endpoint (optional; from a Secret in the chart). Never logged. */
  TAMPERTRACE_EXPLAINER_API_KEY: string;
  /** "openai" explainer: whole-request time limit, ms; past it the template's text is used. */
  TAMPERTRACE_EXPLAINER_TIMEOUT_MS: number;
  /** "openai" explainer: most requests in flight per process; analyses beyond it get the template's text at once. */
  TAMPERTRACE_EXPLAINER_MAX_CONCURRENCY: number;
  /** "openai" explainer: consecutive failures (timeouts, 5xx, network) that open the circuit breaker. */
  TAMPERTRACE_EXPLAINER_BREAKER_FAILURES: number;
  /** "openai" explainer: how long an open breaker sends no request before one trial, ms. */
  TAMPERTRACE_EXPLAINER_BREAKER_RESET_MS: number;
  /** "openai" explainer: response_format sent: json_schema (vLLM, llama.cpp, Ollama >= 0.5), json_object, or none. */
  TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT: 'json_schema' | 'json_object' | 'none';
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function int(env: Env, key: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${key} must be an integer in [${min}, ${max}], got "${raw}"`);
  return v;
}

function num(env: Env, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) throw new ConfigError(`${key} must be a number in [${min}, ${max}], got "${raw}"`);
  return v;
}

function bool(env: Env, key: string, def: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  if (['1', 'true', 'yes'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${key} must be true or false, got "${raw}"`);
}

function str(env: Env, key: string, def: string): string {
  const raw = env[key];
  return raw === undefined || raw === '' ? def : raw;
}

/** Repository root: two levels above shared/src. */
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export function loadConfig(env: Env = process.env): Config {
  if (Boolean(env.TAMPERTRACE_GRPC_TLS_CERT) !== Boolean(env.TAMPERTRACE_GRPC_TLS_KEY)) {
    throw new ConfigError('TAMPERTRACE_GRPC_TLS_CERT and TAMPERTRACE_GRPC_TLS_KEY go together');
  }
  if (env.TAMPERTRACE_GRPC_TLS_CLIENT_CA && !env.TAMPERTRACE_GRPC_TLS_CERT) {
    throw new ConfigError('TAMPERTRACE_GRPC_TLS_CLIENT_CA needs TAMPERTRACE_GRPC_TLS_CERT and _KEY (mTLS is TLS first)');
  }
  const providers = str(env, 'TAMPERTRACE_EXECUTION_PROVIDERS', 'cpu')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of providers) {
    if (!['cpu', 'cuda'].includes(p)) throw new ConfigError(`TAMPERTRACE_EXECUTION_PROVIDERS: unknown provider "${p}" (cpu, cuda)`);
  }
  const cfg: Config = {
    TAMPERTRACE_HOME: path.resolve(str(env, 'TAMPERTRACE_HOME', '.tampertrace')),
    TAMPERTRACE_MODELS_MANIFEST: path.resolve(str(env, 'TAMPERTRACE_MODELS_MANIFEST', path.join(REPO_ROOT, 'models', 'manifest.json'))),
    TAMPERTRACE_LOCALIZER_MODEL: str(env, 'TAMPERTRACE_LOCALIZER_MODEL', 'forensic-inconsistency'),
    TAMPERTRACE_TENANT: str(env, 'TAMPERTRACE_TENANT', 'default'),
    TAMPERTRACE_MAX_INPUT_BYTES: int(env, 'TAMPERTRACE_MAX_INPUT_BYTES', 50 * 1024 * 1024, 1),
    TAMPERTRACE_MAX_PIXELS: int(env, 'TAMPERTRACE_MAX_PIXELS', 50_000_000, 1),
    TAMPERTRACE_MIN_SIDE: int(env, 'TAMPERTRACE_MIN_SIDE', 32, 1),
    // 4096 x 4096: sharper than any screen shows an overlay; about 120 MB to render.
    TAMPERTRACE_OVERLAY_MAX_PIXELS: int(env, 'TAMPERTRACE_OVERLAY_MAX_PIXELS', 4096 * 4096, 1024),
    TAMPERTRACE_OVERLAY_RENDERS: int(env, 'TAMPERTRACE_OVERLAY_RENDERS', 2, 1, 64),
    TAMPERTRACE_MIN_FACE_SCORE: num(env, 'TAMPERTRACE_MIN_FACE_SCORE', 0.6, 0, 1),
    TAMPERTRACE_STAGE_CONCURRENCY: int(env, 'TAMPERTRACE_STAGE_CONCURRENCY', 2, 1, 64),
    TAMPERTRACE_EXECUTION_PROVIDERS: providers,
    TAMPERTRACE_ORT_THREADS: int(env, 'TAMPERTRACE_ORT_THREADS', 0, 0, 64),
    TAMPERTRACE_BATCH_MAX_SIZE: int(env, 'TAMPERTRACE_BATCH_MAX_SIZE', 8, 1, 1024),
    TAMPERTRACE_DETECTOR_BATCH_MAX_SIZE: int(env, 'TAMPERTRACE_DETECTOR_BATCH_MAX_SIZE', 4, 1, 256),
    // 0: an idle model runs at once; batches form from what queued while it was busy.
    TAMPERTRACE_BATCH_MAX_WAIT_MS: int(env, 'TAMPERTRACE_BATCH_MAX_WAIT_MS', 0, 0, 10_000),
    TAMPERTRACE_BATCH_MAX_QUEUE: int(env, 'TAMPERTRACE_BATCH_MAX_QUEUE', 256, 1, 100_000),
    // One per core: each worker's session runs on its own core.
    TAMPERTRACE_ORT_WORKERS: int(env, 'TAMPERTRACE_ORT_WORKERS', os.availableParallelism(), 0, 64),
    TAMPERTRACE_HTTP_HOST: str(env, 'TAMPERTRACE_HTTP_HOST', '127.0.0.1'),
    TAMPERTRACE_HTTP_PORT: int(env, 'TAMPERTRACE_HTTP_PORT', 8080, 0, 65535),
    TAMPERTRACE_GRPC_HOST: str(env, 'TAMPERTRACE_GRPC_HOST', '127.0.0.1'),
    TAMPERTRACE_GRPC_PORT: int(env, 'TAMPERTRACE_GRPC_PORT', 50051, 0, 65535),
    TAMPERTRACE_OPS_HOST: str(env, 'TAMPERTRACE_OPS_HOST', '127.0.0.1'),
    TAMPERTRACE_OPS_PORT: int(env, 'TAMPERTRACE_OPS_PORT', 9464, 0, 65535),
    TAMPERTRACE_READINESS_INTERVAL_MS: int(env, 'TAMPERTRACE_READINESS_INTERVAL_MS', 5000, 100, 600_000),
    TAMPERTRACE_GRPC_TLS_CERT: str(env, 'TAMPERTRACE_GRPC_TLS_CERT', ''),
    TAMPERTRACE_GRPC_TLS_KEY: str(env, 'TAMPERTRACE_GRPC_TLS_KEY', ''),
    TAMPERTRACE_GRPC_TLS_CLIENT_CA: str(env, 'TAMPERTRACE_GRPC_TLS_CLIENT_CA', ''),
    // S3 caps presigned URLs at 7 days.
    TAMPERTRACE_PRESIGN_TTL_S: int(env, 'TAMPERTRACE_PRESIGN_TTL_S', 3600, 1, 7 * 24 * 3600),
    TAMPERTRACE_MAX_ATTEMPTS: int(env, 'TAMPERTRACE_MAX_ATTEMPTS', 5, 1, 100),
    TAMPERTRACE_KAFKA_BROKERS: str(env, 'TAMPERTRACE_KAFKA_BROKERS', '').split(',').map((s) => s.trim()).filter(Boolean),
    TAMPERTRACE_TOPIC_PREFIX: str(env, 'TAMPERTRACE_TOPIC_PREFIX', ''),
    TAMPERTRACE_TOPIC_PARTITIONS: int(env, 'TAMPERTRACE_TOPIC_PARTITIONS', 4, 1, 1000),
    // 1 suits the single local broker; a production cluster wants 3.
    TAMPERTRACE_TOPIC_REPLICATION: int(env, 'TAMPERTRACE_TOPIC_REPLICATION', 1, 1, 32),
    TAMPERTRACE_S3_ENDPOINT: str(env, 'TAMPERTRACE_S3_ENDPOINT', ''),
    TAMPERTRACE_S3_REGION: str(env, 'TAMPERTRACE_S3_REGION', 'us-east-1'),
    TAMPERTRACE_S3_ACCESS_KEY: str(env, 'TAMPERTRACE_S3_ACCESS_KEY', ''),
    TAMPERTRACE_S3_SECRET_KEY: str(env, 'TAMPERTRACE_S3_SECRET_KEY', ''),
    TAMPERTRACE_S3_BUCKET_PREFIX: str(env, 'TAMPERTRACE_S3_BUCKET_PREFIX', ''),
    TAMPERTRACE_DATABASE_URL: str(env, 'TAMPERTRACE_DATABASE_URL', ''),
    TAMPERTRACE_SHUTDOWN_TIMEOUT_MS: int(env, 'TAMPERTRACE_SHUTDOWN_TIMEOUT_MS', 15_000, 100, 600_000),
    TAMPERTRACE_API_KEY_PEPPER: str(env, 'TAMPERTRACE_API_KEY_PEPPER', ''),
    TAMPERTRACE_URL_ALLOW_HTTP: bool(env, 'TAMPERTRACE_URL_ALLOW_HTTP', false),
    TAMPERTRACE_URL_ALLOW_PRIVATE: str(env, 'TAMPERTRACE_URL_ALLOW_PRIVATE', '').split(',').map((s) => s.trim()).filter(Boolean),
    TAMPERTRACE_URL_TIMEOUT_MS: int(env, 'TAMPERTRACE_URL_TIMEOUT_MS', 10_000, 100, 600_000),
    TAMPERTRACE_WEBHOOK_MAX_ATTEMPTS: int(env, 'TAMPERTRACE_WEBHOOK_MAX_ATTEMPTS', 6, 1, 50),
    TAMPERTRACE_AUDIT_CONCURRENCY: int(env, 'TAMPERTRACE_AUDIT_CONCURRENCY', 8, 1, 256),
    TAMPERTRACE_AUDIT_BATCH_WAIT_MS: int(env, 'TAMPERTRACE_AUDIT_BATCH_WAIT_MS', 20, 0, 10_000),
    TAMPERTRACE_AUDIT_CHECKPOINT_EVERY: int(env, 'TAMPERTRACE_AUDIT_CHECKPOINT_EVERY', 1000, 0),
    TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS: int(env, 'TAMPERTRACE_AUDIT_CHECKPOINT_INTERVAL_MS', 60_000, 0),
    TAMPERTRACE_EXPLAINER: oneOf(env, 'TAMPERTRACE_EXPLAINER', ['template', 'openai'] as const),
    TAMPERTRACE_EXPLAINER_URL: str(env, 'TAMPERTRACE_EXPLAINER_URL', ''),
    TAMPERTRACE_EXPLAINER_MODEL: str(env, 'TAMPERTRACE_EXPLAINER_MODEL', ''),
    TAMPERTRACE_EXPLAINER_API_KEY: str(env, 'TAMPERTRACE_EXPLAINER_API_KEY', ''),
    TAMPERTRACE_EXPLAINER_TIMEOUT_MS: int(env, 'TAMPERTRACE_EXPLAINER_TIMEOUT_MS', 20_000, 100, 600_000),
    TAMPERTRACE_EXPLAINER_MAX_CONCURRENCY: int(env, 'TAMPERTRACE_EXPLAINER_MAX_CONCURRENCY', 4, 1, 1024),
    TAMPERTRACE_EXPLAINER_BREAKER_FAILURES: int(env, 'TAMPERTRACE_EXPLAINER_BREAKER_FAILURES', 5, 1, 1000),
    TAMPERTRACE_EXPLAINER_BREAKER_RESET_MS: int(env, 'TAMPERTRACE_EXPLAINER_BREAKER_RESET_MS', 30_000, 100, 3_600_000),
    TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT: oneOf(env, 'TAMPERTRACE_EXPLAINER_RESPONSE_FORMAT', ['json_schema', 'json_object', 'none'] as const),
  };
  if (cfg.TAMPERTRACE_EXPLAINER === 'openai') {
    if (!/^https?:\/\/[^/]/.test(cfg.TAMPERTRACE_EXPLAINER_URL)) throw new ConfigError('TAMPERTRACE_EXPLAINER=openai needs TAMPERTRACE_EXPLAINER_URL (http(s)://host:port/v1)');
    if (!cfg.TAMPERTRACE_EXPLAINER_MODEL) throw new ConfigError('TAMPERTRACE_EXPLAINER=openai needs TAMPERTRACE_EXPLAINER_MODEL');
  }
  return cfg;
}

/** One of a fixed set of words; the first is the default. */
function oneOf<const T extends readonly string[]>(env: Env, key: string, values: T): T[number] {
  const v = str(env, key, values[0]);
  if (!values.includes(v)) throw new ConfigError(`${key} must be one of ${values.join(', ')}, got "${v}"`);
  return v;
}

/** The image limits as the image functions take them. */
export function limitsOf(cfg: Config): { maxInputBytes: number; maxPixels: number; minSide: number } {
  return { maxInputBytes: cfg.TAMPERTRACE_MAX_INPUT_BYTES, maxPixels: cfg.TAMPERTRACE_MAX_PIXELS, minSide: cfg.TAMPERTRACE_MIN_SIDE };
}

/** Fails fast, naming every missing variable, when a distributed-mode service lacks its servers. */
export function requireDistributed(cfg: Config, needs: { kafka?: boolean; s3?: boolean; database?: boolean; pepper?: boolean }): void {
  const missing = [
    ...(needs.kafka && cfg.TAMPERTRACE_KAFKA_BROKERS.length === 0 ? ['TAMPERTRACE_KAFKA_BROKERS'] : []),
    ...(needs.s3 ? (['TAMPERTRACE_S3_ENDPOINT', 'TAMPERTRACE_S3_ACCESS_KEY', 'TAMPERTRACE_S3_SECRET_KEY'] as const).filter((k) => !cfg[k]) : []),
    ...(needs.database && !cfg.TAMPERTRACE_DATABASE_URL ? ['TAMPERTRACE_DATABASE_URL'] : []),
    ...(needs.pepper && cfg.TAMPERTRACE_API_KEY_PEPPER.length < 16 ? ['TAMPERTRACE_API_KEY_PEPPER (16+ characters)'] : []),
  ];
  if (missing.length) throw new ConfigError(`distributed mode needs ${missing.join(', ')} (see README, "Configuration")`);
}
