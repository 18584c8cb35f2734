// gRPC with @grpc/grpc-js on the protobuf-es types: the service definition (paths, streaming
// kinds, serializers) is derived from the generated descriptor, so the protos stay the only
// contract and nothing is hand-listed per method.
import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type DescService } from '@bufbuild/protobuf';
import { ErrorCode } from './gen/tampertrace/v1/common_pb.ts';
import { classOf, classify, codeName } from './errors.ts';

/** grpc-js' service definition for a protobuf-es service descriptor; method keys are the rpc's localName (`submit`). */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    const codec = <D extends DescMessage>(schema: D) => ({
      // `any`: the message type is only known at run time, from the descriptor.
      serialize: (msg: any) => Buffer.from(toBinary(schema, msg)),
      deserialize: (buf: Buffer) => fromBinary(schema, buf),
    });
    const req = codec(m.input);
    const res = codec(m.output);
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === 'client_streaming' || m.methodKind === 'bidi_streaming',
      responseStream: m.methodKind === 'server_streaming' || m.methodKind === 'bidi_streaming',
      requestSerialize: req.serialize,
      requestDeserialize: req.deserialize,
      responseSerialize: res.serialize,
      responseDeserialize: res.deserialize,
      originalName: m.name,
    };
  }
  return def;
}

/** A client for `service` at host:port (plaintext; TLS terminates at the ingress in a cluster). */
export function serviceClient(service: DescService, address: string, options: grpc.ClientOptions = {}): grpc.Client {
  const Ctor = grpc.makeGenericClientConstructor(serviceDefinition(service), service.name);
  return new Ctor(address, grpc.credentials.createInsecure(), options);
}

/** The one mapping from our error codes to gRPC status codes. */
export function grpcStatusOf(code: ErrorCode): grpc.status {
  switch (code) {
    case ErrorCode.TOO_LARGE:
    case ErrorCode.TOO_MANY_PIXELS:
      return grpc.status.RESOURCE_EXHAUSTED;
    case ErrorCode.TIMEOUT:
      return grpc.status.DEADLINE_EXCEEDED;
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

/** Any thrown error as a gRPC status error; internal details stay in the log, not on the wire. */
export function toGrpcError(err: unknown): Partial<grpc.StatusObject> {
  if (isStatusError(err)) return err;
  const e = classify(err);
  const internal = e.errorClass === 'internal';
  const metadata = new grpc.Metadata();
  metadata.set('tt-error-code', codeName(e.code));
  return { code: grpcStatusOf(e.code), details: internal ? 'internal error' : e.message, metadata };
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

/** Calls a unary method of a generic client as a promise. */
export function unary<Res>(client: grpc.Client, method: string, req: unknown, options: grpc.CallOptions = {}): Promise<Res> {
  const fn = (client as unknown as Record<string, Function>)[method];
  if (typeof fn !== 'function') throw new Error(`no method ${method} on this client`);
  return new Promise((resolve, reject) => fn.call(client, req, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res))));
}

export { grpc };
