// For tests: a tiny ONNX model that meets localizer contract v2 (models/README.md) with made-up
// weights, and a manifest that adds it to the repository's, so that the contract test always
// covers a v2 model of known shape besides the trained ones; what it outputs means nothing.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import protobuf from 'protobufjs';
import { REPO_ROOT, sha256Hex, type Manifest, type ManifestEntry } from '@tampertrace/shared';

const FLOAT = 1; // onnx.TensorProto.DataType.FLOAT
const KINDS = ['BLEND', 'INPAINT', 'SPLICE', 'RECOLOUR', 'SMOOTH', 'SHARPEN'];

function floatTensor(name: string, dims: number[], values: number[]) {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(new Float32Array(values).buffer) };
}

const io = (name: string, dims: Array<number | string>) => ({
  name,
  type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
});

/**
 * face [N,3,S,S] -> forgery_prob = sigmoid(3x3 high-pass of the luma) [N,1,S,S] and
 * manipulation_prob = sigmoid(mean colour x W + b) [N,6]: per-pixel and per-face, like a real one.
 */
export async function contractModelBytes(size = 256): Promise<Uint8Array> {
  const Model = (await protobuf.load(path.join(REPO_ROOT, 'scripts', 'onnx', 'onnx.proto'))).lookupType('onnx.ModelProto');
  const lap = [-1, -1, -1, -1, 8, -1, -1, -1, -1].map((v) => v * 4);
  const conv = [0.3, 0.59, 0.11].flatMap((w) => lap.map((v) => v * w));
  const w = Array.from({ length: 3 * KINDS.length }, (_, i) => Math.sin(i + 1) * 4);
  const b = KINDS.map((_, i) => -1 + i * 0.3);
  const m = {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'tampertrace-contract-test',
    graph: {
      name: 'contract_v2_stub',
      node: [
        { opType: 'Conv', input: ['face', 'conv_w', 'conv_b'], output: ['hp'], name: 'hp', attribute: [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] }] },
        { opType: 'Sigmoid', input: ['hp'], output: ['forgery_prob'], name: 'prob' },
        { opType: 'GlobalAveragePool', input: ['face'], output: ['gap'], name: 'gap' },
        { opType: 'Flatten', input: ['gap'], output: ['flat'], name: 'flat' },
        { opType: 'Gemm', input: ['flat', 'fc_w', 'fc_b'], output: ['logits'], name: 'fc' },
        { opType: 'Sigmoid', input: ['logits'], output: ['manipulation_prob'], name: 'types' },
      ],
      initializer: [floatTensor('conv_w', [1, 3, 3, 3], conv), floatTensor('conv_b', [1], [-0.5]), floatTensor('fc_w', [3, KINDS.length], w), floatTensor('fc_b', [KINDS.length], b)],
      input: [io('face', ['N', 3, size, size])],
      output: [io('forgery_prob', ['N', 1, size, size]), io('manipulation_prob', ['N', KINDS.length])],
    },
  };
  return Model.encode(Model.fromObject(m)).finish();
}

export const CONTRACT_MODEL = 'contract-v2-stub';

/**
 * Writes the stub model and a manifest (the repository's entries, paths made absolute, plus the
 * stub's) into dir; returns the manifest's path, for TAMPERTRACE_MODELS_MANIFEST.
 */
export async function writeContractManifest(dir: string): Promise<string> {
  const bytes = await contractModelBytes();
  await mkdir(path.join(dir, 'models'), { recursive: true });
  const file = path.join(dir, 'models', 'contract-v2-stub.onnx');
  await writeFile(file, bytes);
  const repo = JSON.parse(await readFile(path.join(REPO_ROOT, 'models', 'manifest.json'), 'utf8')) as Manifest;
  const entry: ManifestEntry = {
    name: CONTRACT_MODEL,
    version: '0.0.0',
    task: 'forgery-localization',
    path: file,
    sha256: sha256Hex(bytes),
    inputSize: 256,
    cropScale: 1.5,
    input: 'face',
    output: 'forgery_prob',
    pixelThreshold: 0.5,
    uncertainBand: [0.4, 0.6],
    typesOutput: 'manipulation_prob',
    manipulationTypes: KINDS,
    typeThreshold: 0.5,
    licence: 'Apache-2.0',
  };
  const models = [...repo.models.map((e) => ({ ...e, path: path.resolve(REPO_ROOT, e.path) })), entry];
  const manifest = path.join(dir, 'models', 'manifest.json');
  await writeFile(manifest, JSON.stringify({ models }, null, 2));
  return manifest;
}

/** The manifest's localizer with a type output (contract v2), for tests of the whole pipeline. */
export const TYPED_LOCALIZER = 'learned-localizer';
