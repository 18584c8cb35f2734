// Starts the OpenTelemetry Node SDK for one service process. Import and call this before
// anything that loads @grpc/grpc-js or node:http (services/tampertrace/bin/tampertrace.mjs does),
// or their auto-instrumentation has nothing to patch.
//
// Configured only by the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_TRACES_EXPORTER=console), OTEL_EXPORTER_OTLP_PROTOCOL
// (http/protobuf by default, grpc, http/json), OTEL_TRACES_SAMPLER (+ _ARG), OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED. With none of them set tracing is off.
import { register } from 'node:module';
import type { NodeSDK } from '@opentelemetry/sdk-node';

/** The modules the instrumentations below patch, as imported by our ES modules. */
const INSTRUMENTED_MODULES = ['@grpc/grpc-js', 'http', 'node:http'];

/** Paths of the ops endpoints: scraped every few seconds, never worth a trace. */
const UNTRACED_PATHS = new Set(['/metrics', '/livez', '/readyz', '/healthz']);

export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  if (exporters.length > 0) return !exporters.every((e) => e === 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

let sdk: NodeSDK | undefined;

/** Starts tracing for `service` when the environment asks for it; returns whether it did. */
export async function startTracing(service: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (sdk || !tracingRequested(env)) return false;
  // Metrics are served by each process on /metrics (prom-client) and logs go to stderr as JSON;
  // the SDK would otherwise default both to OTLP exporters.
  env.OTEL_METRICS_EXPORTER ??= 'none';
  env.OTEL_LOGS_EXPORTER ??= 'none';
  env.OTEL_SERVICE_NAME ??= service;
  // Our modules are ES modules (through tsx), whose imports require-hook instrumentation never
  // sees: import-in-the-middle patches them. Registered after tsx, so that it runs first and hands
  // TypeScript sources on to tsx. Only the instrumented modules: wrapping every module puts a
  // getter in front of each imported binding, and hot loops calling across modules pay for it.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: INSTRUMENTED_MODULES } });
  const [{ NodeSDK }, { HttpInstrumentation }, { GrpcInstrumentation }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-grpc'),
  ]);
  sdk = new NodeSDK({
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.has((req.url ?? '').split('?')[0]),
        // S3 calls get spans of their own (object_store.put/get) with the bucket and size; the
        // raw HTTP client spans under them add nothing but volume.
        ignoreOutgoingRequestHook: () => true,
      }),
      // Health probes arrive every few seconds from every prober.
      new GrpcInstrumentation({ ignoreGrpcMethods: ['Check', 'Watch'] }),
    ],
  });
  sdk.start();
  return true;
}

/** Flushes buffered spans and stops the SDK (no-op when tracing is off). */
export async function stopTracing(): Promise<void> {
  const s = sdk;
  sdk = undefined;
  await s?.shutdown().catch(() => {});
}
