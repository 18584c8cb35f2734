// gRPC with @grpc/grpc-js on the protobuf-es types: the service definition (paths, streaming
// kinds, serializers) is derived from the generated descriptor, so the protos stay the only
// contract and nothing is hand-listed per method.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import type { ReflectionService } from '@grpc/reflection';
import { fromBinary, toBinary, type DescFile, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import type { Config } from './config.ts';
import { HEALTH_SERVICE_NAME, ServiceHealth, healthFileDescriptors } from './health.ts';
import type { Logger } from './log.ts';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { CallerError, InvalidInputError, classOf, classify, codeName, safeMessage } from './errors.ts';

/**
 * A request the server could not decode. grpc-js answers a throwing deserializer with INTERNAL,
 * which is wrong for the caller's bad bytes, so the server's deserializer returns this instead and
 * rejectUndecodable (an interceptor of every server) answers INVALID_ARGUMENT before any handler
 * sees it.
 */
export class UndecodableRequest {
  constructor(readonly typeName: string) {}
}

/**
 * grpc-js' service definition for a protobuf-es service descriptor; method keys are the rpc's
 * localName (`submit`). `forServer`: requests that do not decode become UndecodableRequest.
 */
export function serviceDefinition(service: DescService, forServer = false): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    const codec = <D extends DescMessage>(schema: D) => ({
      // `any`: the message type is only known at run time, from the descriptor.
      serialize: (msg: any) => Buffer.from(toBinary(schema, msg)),
      deserialize: (buf: Buffer) => fromBinary(schema, buf),
    });
    const req = codec(m.input);
    const res = codec(m.output);
    const lenient = (buf: Buffer) => {
      try {
        return req.deserialize(buf);
      } catch {
        return new UndecodableRequest(m.input.typeName);
      }
    };
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: req.serialize,
      requestDeserialize: forServer ? lenient : req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: m.name,
    };
  }
  return def;
}

/** Client keepalive: finds a dead connection (peer gone without a FIN) in well under a minute, only while calls are open. */
export const CLIENT_KEEPALIVE: grpc.ClientOptions = { 'grpc.keepalive_time_ms': 60_000, 'grpc.keepalive_timeout_ms': 20_000 };

/** A client's TLS material (PEM): the CA that signed the server, and for mTLS its own certificate and key. */
export interface ClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * A client for `service` at host:port: plaintext, or TLS/mTLS with `tls`. With `apiKey`, every
 * call carries `authorization: Bearer <key>`.
 */
export function serviceClient(service: DescService, address: string, options: grpc.ClientOptions & { apiKey?: string; tls?: ClientTls } = {}): grpc.Client {
  const { apiKey, tls, ...rest } = options;
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.name);
  const auth: grpc.Interceptor = (opts, next) =>
    new grpc.InterceptingCall(next(opts), {
      start(metadata, listener, nextStart) {
        if (apiKey) metadata.set('authorization', `Bearer ${apiKey}`);
        nextStart(metadata, listener);
      },
    });
  const credentials = tls ? grpc.credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null) : grpc.credentials.createInsecure();
  return new Ctor(address, credentials, { ...CLIENT_KEEPALIVE, ...rest, interceptors: [...(rest.interceptors ?? []), auth] });
}

/** The one mapping from our error codes to gRPC status codes. */
export function grpcStatusOf(code: ErrorCode): grpc.status {
  switch (code) {
    case ErrorCode.TOO_LARGE:
    case ErrorCode.TOO_MANY_PIXELS:
    case ErrorCode.QUOTA_EXCEEDED:
      return grpc.status.RESOURCE_EXHAUSTED;
    case ErrorCode.TIMEOUT:
      return grpc.status.DEADLINE_EXCEEDED;
    case ErrorCode.UNAUTHENTICATED:
      return grpc.status.UNAUTHENTICATED;
    case ErrorCode.NOT_FOUND:
      return grpc.status.NOT_FOUND;
    case ErrorCode.PERMISSION_DENIED:
      return grpc.status.PERMISSION_DENIED;
    default:
      break;
  }
  switch (classOf(code)) {
    case 'invalid-input':
      return grpc.status.INVALID_ARGUMENT;
    case 'retriable':
      return grpc.status.UNAVAILABLE;
    default:
      return grpc.status.INTERNAL;
  }
}

/**
 * Trailing metadata key of every error status: the ErrorCode name ("TRUNCATED_IMAGE",
 * "INVALID_MESSAGE"), the machine-readable reason in the manner of google.rpc.ErrorInfo.reason.
 */
export const ERROR_CODE_TRAILER = 'tt-error-code';

/** The ErrorCode name a failed call carries in its trailers (ERROR_CODE_TRAILER), if any. */
export function errorCodeOf(err: unknown): string | undefined {
  const v = (err as Partial<grpc.ServiceError> | undefined)?.metadata?.get(ERROR_CODE_TRAILER)[0];
  return typeof v === 'string' ? v : undefined;
}

/** Any thrown error as a gRPC status error; internal details stay in the log, not on the wire. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  if (isStatusError(err)) return err;
  const e = classify(err);
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_TRAILER, codeName(e.code));
  if (e instanceof CallerError && e.retryAfterMs !== undefined) metadata.set('retry-after-ms', String(Math.ceil(e.retryAfterMs)));
  if (e.analysisId) metadata.set('tt-analysis-id', e.analysisId);
  return { code: grpcStatusOf(e.code), details: safeMessage(e), metadata };
}

/**
 * toGrpcError, logging what the caller is not told once, here: an internal error (with its
 * stack), or a dependency's own words behind a retriable one.
 */
export function callFailure(log: Logger, method: string, err: unknown): grpc.ServiceError {
  const status = toGrpcError(err);
  const e = isStatusError(err) ? undefined : classify(err);
  if (status.code === grpc.status.INTERNAL) log.error({ err: String(err), stack: (err as Error)?.stack, method }, 'call failed');
  else if (e && !e.forCaller) log.warn({ err: e.message, code: codeName(e.code), method }, 'call failed');
  return status as grpc.ServiceError;
}

/** Aborted (reason: CANCELLED) when the client cancels or its deadline passes, so work on its behalf stops. */
export function callSignal(call: { cancelled: boolean; once(event: 'cancelled', cb: () => void): unknown }): AbortSignal {
  const abort = new AbortController();
  const onCancel = () => abort.abort(new GrpcStatusError(grpc.status.CANCELLED, 'the call was cancelled or passed its deadline'));
  if (call.cancelled) onCancel();
  else call.once('cancelled', onCancel);
  return abort.signal;
}

/** Ends a server stream with the error's status: grpc-js sends it on 'error' (destroy() would send none and leave the client waiting). */
export function failStream(log: Logger, call: grpc.ServerWritableStream<unknown, unknown>, err: unknown): void {
  const status = callFailure(log, call.getPath(), err);
  call.emit('error', Object.assign(new Error(status.details), status));
}

/** An error that already says which gRPC status it is (e.g. NOT_FOUND from a handler). */
export class GrpcStatusError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}

function isStatusError(err: unknown): err is GrpcStatusError {
  return err instanceof GrpcStatusError;
}

/** Deadline of a unary call when the caller names none: a call never waits forever on a server that stopped answering. */
export const DEFAULT_DEADLINE_MS = 60_000;

/** Calls a unary method of a generic client as a promise, with a deadline (DEFAULT_DEADLINE_MS unless `options.deadline`). */
export function unary<Res>(client: grpc.Client, method: string, req: unknown, options: grpc.CallOptions = {}): Promise<Res> {
  const fn = (client as unknown as Record<string, Function>)[method];
  if (typeof fn !== 'function') throw new Error(`no method ${method} on this client`);
  const opts: grpc.CallOptions = { ...options, deadline: options.deadline ?? Date.now() + DEFAULT_DEADLINE_MS };
  return new Promise((resolve, reject) => fn.call(client, req, new grpc.Metadata(), opts, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

export { grpc };

// ---------------------------------------------------------------------------------------------
// Servers: every service process serves gRPC the same way (limits, keepalive, health, reflection).

/** gRPC messages carry whole images; the limit is the input limit plus room for the envelope. */
export function maxMessageBytes(cfg: Config): number {
  return cfg.TAMPERTRACE_MAX_INPUT_BYTES + 1024 * 1024;
}

/** Server options of every TamperTrace gRPC server. */
export function grpcServerOptions(cfg: Config): grpc.ServerOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes(cfg),
    'grpc.max_send_message_length': maxMessageBytes(cfg),
    // Pings find clients that vanished without closing (a node lost, a NAT entry dropped).
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    // Idle connections are closed, and every connection is recycled after a while so that clients
    // re-resolve and spread over new replicas; the grace lets the calls in flight finish.
    'grpc.max_connection_idle_ms': 5 * 60_000,
    'grpc.max_connection_age_ms': 30 * 60_000,
    'grpc.max_connection_age_grace_ms': 60_000,
  };
}

/** A protobuf-es service and its grpc-js implementation (method keys are the rpcs' localNames). */
export interface GrpcServiceImpl {
  service: DescService;
  impl: grpc.UntypedServiceImplementation;
}

/** A service process's gRPC server and the health statuses it reports. */
export interface GrpcApi {
  server: grpc.Server;
  /** NOT_SERVING until the process says `health.serving()`. */
  health: ServiceHealth;
}

/**
 * A server with the project's options, the given services, grpc.health.v1.Health (a status per
 * service name, NOT_SERVING until `health.serving()`) and server reflection (v1 and v1alpha) over
 * the services' proto files and health.proto. Not yet listening: see startGrpcServer. Every call
 * is inside one error boundary (rejectUndecodable, guardedImpl): a call can fail, the process
 * cannot; `log` receives the internal errors that boundary catches.
 */
export function createGrpcServer(cfg: Config, services: readonly GrpcServiceImpl[], log?: Logger): GrpcApi {
  const server = new grpc.Server({ ...grpcServerOptions(cfg), interceptors: [rejectUndecodable] });
  for (const s of services) server.addService(serviceDefinition(s.service, true), guardedImpl(s.service, s.impl, log));
  const health = new ServiceHealth(services.map((s) => s.service.typeName));
  health.addToServer(server);
  // Loaded here, not at import: it parses its own protos when loaded (about 35 ms), which every
  // process importing this package would otherwise pay.
  const { ReflectionService: Reflection } = createRequire(import.meta.url)('@grpc/reflection') as typeof import('@grpc/reflection');
  new Reflection(reflectionPackage(services.map((s) => s.service))).addToServer(server);
  return { server, health };
}

/**
 * Answers a request that did not decode (UndecodableRequest) with INVALID_ARGUMENT and the
 * INVALID_MESSAGE code, and keeps the rest of that call (its half-close) from the handler.
 */
const rejectUndecodable: grpc.ServerInterceptor = (_method, call) => {
  let rejected = false;
  const intercepted: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message, nextMessage) => {
          if (rejected) return;
          if (!(message instanceof UndecodableRequest)) return nextMessage(message);
          rejected = true;
          intercepted.sendStatus(toGrpcError(new InvalidInputError(ErrorCode.INVALID_MESSAGE, `the request is not a valid ${message.typeName}`)) as grpc.StatusObject);
        },
        onReceiveHalfClose: (nextHalfClose) => {
          if (!rejected) nextHalfClose();
        },
      }),
  });
  return intercepted;
};

/**
 * The error boundary of every handler: one that throws synchronously (before its own promise
 * chain catches) fails its call with the mapped status instead of taking the process down.
 */
function guardedImpl(service: DescService, impl: grpc.UntypedServiceImplementation, log: Logger | undefined): grpc.UntypedServiceImplementation {
  const guarded: grpc.UntypedServiceImplementation = {};
  for (const m of service.methods) {
    const handler = impl[m.localName] as ((call: any, callback?: any) => void) | undefined;
    if (!handler) continue;
    guarded[m.localName] = ((call: any, callback?: grpc.sendUnaryData<unknown>) => {
      try {
        handler(call, callback);
      } catch (err) {
        const status = log ? callFailure(log, call.getPath?.() ?? m.name, err) : (toGrpcError(err) as grpc.ServiceError);
        if (callback) callback(status);
        else call.emit('error', Object.assign(new Error(status.details), status));
      }
    }) as grpc.UntypedHandleCall;
  }
  return guarded;
}

/**
 * @grpc/reflection takes a proto-loader package definition but reads only the serialized
 * FileDescriptorProtos of its entries; protobuf-es keeps every generated file's descriptor, so
 * the protos we serve are described by the same bytes that define their codecs.
 */
function reflectionPackage(services: readonly DescService[]): ConstructorParameters<typeof ReflectionService>[0] {
  const files = new Map<string, Buffer>();
  const add = (f: DescFile): void => {
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)));
    f.dependencies.forEach(add);
  };
  services.forEach((s) => add(s.file));
  const fileDescriptorProtos = [...files.values(), ...healthFileDescriptors()];
  const entry = { format: 'Protocol Buffer 3 FileDescriptorProto', type: {}, fileDescriptorProtos };
  return Object.fromEntries([...services.map((s) => s.typeName), HEALTH_SERVICE_NAME].map((name) => [name, entry])) as unknown as ConstructorParameters<typeof ReflectionService>[0];
}

/** Listens on TAMPERTRACE_GRPC_HOST:TAMPERTRACE_GRPC_PORT (0 picks a free port); resolves with the bound port. */
/** Plaintext by default (TLS ends at the ingress); TLS, or mTLS with a client CA, when configured. */
export function serverCredentials(cfg: Config): grpc.ServerCredentials {
  if (!cfg.TAMPERTRACE_GRPC_TLS_CERT) return grpc.ServerCredentials.createInsecure();
  const clientCa = cfg.TAMPERTRACE_GRPC_TLS_CLIENT_CA ? readFileSync(cfg.TAMPERTRACE_GRPC_TLS_CLIENT_CA) : null;
  return grpc.ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: readFileSync(cfg.TAMPERTRACE_GRPC_TLS_CERT), private_key: readFileSync(cfg.TAMPERTRACE_GRPC_TLS_KEY) }],
    clientCa !== null,
  );
}

export async function startGrpcServer(api: GrpcApi, cfg: Config, log: Logger): Promise<number> {
  const address = `${cfg.TAMPERTRACE_GRPC_HOST}:${cfg.TAMPERTRACE_GRPC_PORT}`;
  const port = await new Promise<number>((resolve, reject) =>
    api.server.bindAsync(address, serverCredentials(cfg), (err, p) => (err ? reject(err) : resolve(p))),
  );
  log.info({ host: cfg.TAMPERTRACE_GRPC_HOST, port }, 'gRPC listening');
  return port;
}

/** Reports NOT_SERVING, stops taking calls, lets running ones finish for up to `graceMs`, then cuts them. */
export async function stopGrpcServer(api: GrpcApi, graceMs = 5000): Promise<void> {
  api.health.notServing();
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      api.server.forceShutdown();
      resolve();
    }, graceMs);
    api.server.tryShutdown(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * A unary handler around `fn`: errors are mapped once (toGrpcError), and `signal` fires when the
 * call is cancelled or its deadline passes. From then on the handler stops waiting and sends
 * nothing (grpc-js has already ended the call); `fn` should check `signal` before costly steps.
 */
export function unaryHandler<Req, Res>(log: Logger, fn: (req: Req, signal: AbortSignal, metadata: grpc.Metadata) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const signal = callSignal(call);
    const stopped = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    Promise.race([fn(call.request, signal, call.metadata), stopped]).then(
      (res) => callback(null, res),
      (err) => {
        if (signal.aborted) {
          log.debug({ method: call.getPath() }, 'call cancelled; no longer waiting for it');
          return;
        }
        callback(callFailure(log, call.getPath(), err));
      },
    );
  };
}

/**
 * At most `max` calls at work at once, so that synchronous calls cannot swamp the models the
 * stream also needs; a call waiting for its turn leaves the queue as soon as its signal fires.
 * With `maxQueued`, a call that would wait behind that many others is refused at once
 * (QUOTA_EXCEEDED: RESOURCE_EXHAUSTED / 429 with a retry hint) instead of queueing without bound.
 */
export class CallLimit {
  private readonly queue: Array<() => void> = [];
  private active = 0;
  constructor(
    private readonly max: number,
    private readonly maxQueued = Infinity,
  ) {}

  async run<T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    if (this.active < this.max) this.active++;
    else if (this.queue.length >= this.maxQueued) throw new CallerError(ErrorCode.QUOTA_EXCEEDED, 'the server is busy with this kind of work; try again shortly', 1000);
    else await this.turn(signal); // the releasing call hands its place over
    try {
      signal.throwIfAborted();
      return await work();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.active--;
    }
  }

  private turn(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        const i = this.queue.indexOf(go);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal.reason);
      };
      this.queue.push(go);
      signal.addEventListener('abort', leave, { once: true });
    });
  }
}
