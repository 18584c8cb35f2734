// onnxruntime sessions on the execution providers of TAMPERTRACE_EXECUTION_PROVIDERS. A session
// asked for CUDA where the CUDA provider cannot load (no GPU or driver, the CPU-only image, missing
// CUDA/cuDNN libraries) is made on the CPU instead, loudly: one error-level log line naming the
// model, what was asked for and why it failed. A GPU node that silently ran on its CPU would only
// show up as a throughput mystery.
import { createLogger, type Logger } from './log.ts';

export interface ProviderSession<T> {
  session: T;
  /** The providers the session was made with. */
  providers: string[];
  /** True when CUDA was asked for and the CPU is used instead. */
  fellBack: boolean;
}

let defaultLog: Logger | undefined;

/**
 * Calls `create` with the requested providers; when that fails and CUDA was among them, logs the
 * failure at error level and calls it again with the CPU alone. Other failures are rethrown.
 */
export async function createWithCpuFallback<T>(
  model: string,
  requested: readonly string[],
  create: (providers: string[]) => Promise<T>,
  log: Logger = (defaultLog ??= createLogger('onnxruntime')),
): Promise<ProviderSession<T>> {
  const providers = requested.length > 0 ? [...requested] : ['cpu'];
  try {
    return { session: await create(providers), providers, fellBack: false };
  } catch (err) {
    if (!providers.includes('cuda')) throw err;
    const cpu = ['cpu'];
    log.error(
      { model, requested: providers, using: cpu, err: err instanceof Error ? err.message : String(err) },
      'CUDA execution provider unavailable: FALLING BACK TO CPU (expect far lower throughput; check the GPU request, the driver and the -gpu image)',
    );
    return { session: await create(cpu), providers: cpu, fellBack: true };
  }
}
