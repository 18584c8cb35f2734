// ONNX inference off the event loop. onnxruntime-node runs a session synchronously on the
// calling thread (its run() is a setImmediate around the native call), so on the main thread
// every inference stalls Kafka heartbeats, gRPC and the other stage. An OnnxPool runs sessions in
// worker threads (piscina); inputs and outputs move between threads without copies.
import * as ort from 'onnxruntime-node';
import { Piscina } from 'piscina';

/** A float32 tensor as it crosses threads. */
export interface TensorData {
  data: Float32Array;
  dims: readonly number[];
}

export interface OnnxSessionOptions {
  executionProviders?: string[];
  intraOpNumThreads?: number;
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
}

/** What the model code needs of a session, in this thread or in a pool. */
export interface OnnxRunner {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: ReadonlyArray<{ name: string; isTensor: boolean; shape?: readonly (number | string)[] }>;
  /** Inputs are transferred to the worker: the caller must not reuse their buffers. */
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
  release(): Promise<void>;
}

interface Task {
  model: { path: string; sha256?: string; options: OnnxSessionOptions };
  feeds?: Record<string, TensorData>;
}

export class OnnxPool {
  private readonly pool: Piscina<Task, unknown>;

  constructor(readonly threads: number) {
    this.pool = new Piscina<Task, unknown>({
      filename: new URL('./onnx-worker.mjs', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      // Sessions live in the workers: an idle worker must not be stopped and lose them.
      idleTimeout: Number.POSITIVE_INFINITY,
    });
  }

  /**
   * A session of the model file in every worker (each loads it, sha256-checked, on its first
   * task). Resolves once one worker has loaded it, with its input and output names.
   */
  async open(model: { path: string; sha256?: string }, options: OnnxSessionOptions): Promise<OnnxRunner> {
    const m = { ...model, options };
    const meta = (await this.pool.run({ model: m })) as Pick<OnnxRunner, 'inputNames' | 'outputNames' | 'inputMetadata'>;
    return {
      ...meta,
      run: async (feeds) => {
        const transferList = Object.values(feeds).map((f) => f.data.buffer as ArrayBuffer);
        return (await this.pool.run({ model: m, feeds }, { transferList })) as Record<string, TensorData>;
      },
      // The pool owns the sessions; they go with it.
      release: async () => {},
    };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** A session on this thread (no pool): what every model ran on before the pool existed. */
export async function localOnnxRunner(model: Uint8Array, options: OnnxSessionOptions): Promise<OnnxRunner> {
  const session = await ort.InferenceSession.create(model, options);
  return {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    async run(feeds) {
      const tensors = Object.fromEntries(Object.entries(feeds).map(([name, f]) => [name, new ort.Tensor('float32', f.data, f.dims)]));
      const res = await session.run(tensors);
      return Object.fromEntries(Object.entries(res).map(([name, t]) => [name, { data: t.data as Float32Array, dims: t.dims }]));
    },
    release: () => session.release(),
  };
}
