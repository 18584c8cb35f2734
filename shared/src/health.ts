// Readiness of a service process as the standard grpc.health.v1 Health service (the gRPC
// readiness probe of Kubernetes, grpc_health_probe, load balancers): NOT_SERVING until the
// process can do its work (models loaded, Kafka consumer joined), SERVING while it can, and
// NOT_SERVING again from the moment it starts to stop.
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import type { HealthImplementation, ServingStatus } from 'grpc-health-check';

export type { ServingStatus };

// Loaded on first use: grpc-health-check parses health.proto when it is imported (about 50 ms),
// which every process importing the shared package (the CLI's `analyze` too) would pay.
const requireCjs = createRequire(import.meta.url);
const healthCheck = (): typeof import('grpc-health-check') => requireCjs('grpc-health-check');

/** grpc.health.v1.Health's full name, for reflection and for tests. */
export const HEALTH_SERVICE_NAME = 'grpc.health.v1.Health';

/**
 * One status per served service name (e.g. "tampertrace.v1.FaceDetectionService") plus the
 * whole server (""). A process is ready or not as a whole, so all names move together.
 */
export class ServiceHealth {
  private readonly impl: HealthImplementation;
  private status: ServingStatus = 'NOT_SERVING';

  constructor(readonly serviceNames: readonly string[]) {
    this.impl = new (healthCheck().HealthImplementation)(Object.fromEntries(['', ...serviceNames].map((n) => [n, 'NOT_SERVING' as const])));
  }

  /** Everything the process needs is up: calls and probes may come. */
  serving(): void {
    this.set('SERVING');
  }

  /** Starting, stopping, or lost a dependency it cannot work without. */
  notServing(): void {
    this.set('NOT_SERVING');
  }

  addToServer(server: grpc.Server): void {
    this.impl.addToServer(server);
  }

  /** The status every name reports now. */
  get current(): ServingStatus {
    return this.status;
  }

  private set(status: ServingStatus): void {
    if (status === this.status) return; // Watch streams hear of changes only
    this.status = status;
    for (const n of ['', ...this.serviceNames]) this.impl.setStatus(n, status);
  }
}

/** The FileDescriptorProtos of health.proto (as grpc-health-check loaded it), for reflection. */
export function healthFileDescriptors(): Buffer[] {
  const check = healthCheck().service.Check as { requestType?: { fileDescriptorProtos?: Buffer[] } };
  return check.requestType?.fileDescriptorProtos ?? [];
}

/** Asks a server for a service's health status (Health.Check); `service` "" is the whole server. */
export async function checkHealth(address: string, service: string, timeoutMs = 5000): Promise<ServingStatus | 'SERVICE_UNKNOWN'> {
  const Client = grpc.makeGenericClientConstructor(healthCheck().service, 'Health');
  const client = new Client(address, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) =>
      (client as unknown as { check: Function }).check(
        { service },
        { deadline: Date.now() + timeoutMs },
        (err: grpc.ServiceError | null, res: { status: ServingStatus }) => (err ? reject(err) : resolve(res.status)),
      ),
    );
  } finally {
    client.close();
  }
}
