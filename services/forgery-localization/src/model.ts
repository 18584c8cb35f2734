// Runs any forgery-localization model that meets the contract in models/README.md:
// input float32 [N,3,S,S] RGB in [0,1]; output `forgery_prob` [N,1,S,S] in [0,1]; optional
// cue maps `cue_noise`, `cue_colour`, `cue_boundary` of the same shape; contract v2 adds an
// optional [N,K] output of per-face probabilities, one per kind of edit (the manifest's
// `typesOutput`, its kinds in `manipulationTypes`).
import { createWithCpuFallback } from '@tampertrace/shared/execution-providers';
import { DynamicBatcher, checkLocalizerEntry, loadVerifiedModel, type BatcherOptions, type ManifestEntry } from '@tampertrace/shared';
import { ManipulationType } from '@tampertrace/shared/gen/tampertrace/v1/common_pb';
import { localOnnxRunner, type OnnxPool } from '@tampertrace/shared/onnx-pool';
import { observeInference } from '@tampertrace/shared/observe';

export interface LocalizerOutput {
  prob: Float32Array;
  noise?: Float32Array;
  colour?: Float32Array;
  boundary?: Float32Array;
  /** Contract v2: one probability per kind of edit, in the manifest's manipulationTypes order. */
  types?: Float32Array;
}

/** The kinds a manifest's manipulationTypes may name: ManipulationType's, without UNSPECIFIED. */
export const MANIPULATION_KINDS: readonly string[] = Object.keys(ManipulationType).filter((k) => Number.isNaN(Number(k)) && k !== 'UNSPECIFIED');

export interface ForgeryModel {
  readonly entry: ManifestEntry;
  readonly size: number;
  /** crops: N packed CHW float32 tensors of 3*size*size values each. */
  run(crops: Float32Array[]): Promise<LocalizerOutput[]>;
  close(): Promise<void>;
}

/** pool: run the session in these worker threads, off the event loop (else on this thread). */
export async function loadForgeryModel(
  root: string,
  entry: ManifestEntry,
  opts: { executionProviders?: string[]; intraOpNumThreads?: number; pool?: OnnxPool } = {},
): Promise<ForgeryModel> {
  checkLocalizerEntry(entry, MANIPULATION_KINDS);
  const { file, bytes } = await loadVerifiedModel(root, entry);
  // Asked for CUDA where it cannot load, the session runs on the CPU (logged at error level).
  const { session } = await createWithCpuFallback(entry.name, opts.executionProviders ?? ['cpu'], (executionProviders) => {
    const options = { executionProviders, ...(opts.intraOpNumThreads ? { intraOpNumThreads: opts.intraOpNumThreads } : {}), graphOptimizationLevel: 'all' as const };
    return opts.pool ? opts.pool.open({ path: file, sha256: entry.sha256 }, options) : localOnnxRunner(bytes, options);
  });
  const input = entry.input ?? 'face';
  const output = entry.output ?? 'forgery_prob';
  if (!session.inputNames.includes(input)) throw new Error(`${entry.name}: no input named "${input}" (has ${session.inputNames.join(', ')})`);
  if (!session.outputNames.includes(output)) throw new Error(`${entry.name}: no output named "${output}"`);
  const typesOutput = entry.typesOutput;
  if (typesOutput && !session.outputNames.includes(typesOutput)) throw new Error(`${entry.name}: no output named "${typesOutput}" (the manifest's typesOutput)`);
  const kinds = entry.manipulationTypes?.length ?? 0;
  const size = entry.inputSize;
  const plane = size * size;
  const has = (n: string) => session.outputNames.includes(n);
  return {
    entry,
    size,
    async run(crops) {
      if (crops.length === 0) return [];
      const batch = new Float32Array(crops.length * 3 * plane);
      crops.forEach((c, i) => batch.set(c, i * 3 * plane));
      const feeds = { [input]: { data: batch, dims: [crops.length, 3, size, size] } };
      const res = await observeInference(entry.name, crops.length, () => session.run(feeds));
      const slice = (name: string, i: number) => (has(name) ? res[name].data.slice(i * plane, (i + 1) * plane) : undefined);
      // A model whose type output disagrees with its manifest entry must not be read past its end or short of it.
      if (typesOutput && res[typesOutput].data.length !== crops.length * kinds) {
        throw new Error(`${entry.name}: ${typesOutput} has ${res[typesOutput].data.length} values for ${crops.length} faces; the manifest names ${kinds} kinds`);
      }
      return crops.map((_, i) => ({
        prob: slice(output, i)!,
        noise: slice('cue_noise', i),
        colour: slice('cue_colour', i),
        boundary: slice('cue_boundary', i),
        types: typesOutput ? res[typesOutput].data.slice(i * kinds, (i + 1) * kinds) : undefined,
      }));
    },
    close: () => session.release(),
  };
}

/**
 * The model behind a dynamic batcher: the crops of analyses worked on at once share ONNX runs
 * (the graph's batch dimension is dynamic). Each crop's outputs are bit-identical to a run of
 * that crop alone (model.test.ts), so batching never changes a result.
 */
export function batchedForgeryModel(model: ForgeryModel, opts: BatcherOptions): ForgeryModel & { readonly batcher: DynamicBatcher<Float32Array, LocalizerOutput> } {
  const batcher = new DynamicBatcher<Float32Array, LocalizerOutput>((crops) => model.run(crops), opts);
  return {
    entry: model.entry,
    size: model.size,
    batcher,
    run: (crops) => Promise.all(batcher.submitMany(crops)),
    async close() {
      await batcher.close();
      await model.close();
    },
  };
}
