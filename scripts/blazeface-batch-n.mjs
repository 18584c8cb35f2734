// BlazeFace with a dynamic batch dimension, derived from the pinned Barracuda conversions.
//
// Those graphs have batch 1 built in: the input is [1,S,S,3], four Reshape nodes target
// [1,896-split,k] and the channel padding is a Concat with a ConstantOfShape of [1,C,H,W] zeros.
// The copy written here has batch "N": the Reshapes take -1 and each Concat-with-zeros becomes a
// Pad of the same zeros on the channel axis. Nothing else changes, and every output of a batch
// equals the single runs' bit for bit (services/face-detection/src/batch.test.ts).
//
// The ONNX protobuf is read and written with protobufjs from the ONNX project's own schema
// (scripts/onnx/onnx.proto, Apache-2.0); protobufjs writes fields in schema order, so the same
// input gives the same bytes and the manifest can pin their sha256.
//
// Used by scripts/fetch-models.mjs for manifest entries with
// `source: { derivedFrom: "<entry>", transform: "batch-n" }`.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

const here = dirname(fileURLToPath(import.meta.url));
const INT64 = 7; // onnx.TensorProto.DataType.INT64

let modelProto;
async function schema() {
  modelProto ??= (await protobuf.load(join(here, "onnx", "onnx.proto"))).lookupType("onnx.ModelProto");
  return modelProto;
}

/** The int64 values of an initializer, from raw_data or int64_data. */
function int64s(t) {
  if (t.dataType !== INT64) throw new Error(`initializer ${t.name}: expected INT64, got data type ${t.dataType}`);
  if (t.rawData?.length) {
    const v = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength);
    return Array.from({ length: t.rawData.byteLength / 8 }, (_, i) => Number(v.getBigInt64(i * 8, true)));
  }
  return (t.int64Data ?? []).map((x) => Number(x));
}

function int64Tensor(name, values) {
  const raw = new Uint8Array(values.length * 8);
  const v = new DataView(raw.buffer);
  values.forEach((x, i) => v.setBigInt64(i * 8, BigInt(x), true));
  return { name, dims: [values.length], dataType: INT64, rawData: raw };
}

/** The batch-N copy of a batch-1 BlazeFace ONNX file, as bytes. */
export async function blazefaceBatchN(bytes) {
  const Model = await schema();
  const m = Model.decode(bytes);
  const g = m.graph;
  const inits = new Map(g.initializer.map((t) => [t.name, t]));
  for (const vi of [...g.input, ...g.output]) {
    const d = vi.type.tensorType.shape.dim[0];
    const batch = d.dimParam || Number(d.dimValue);
    if (batch !== 1) throw new Error(`${vi.name}: batch dimension is ${batch}, expected 1`);
    delete d.dimValue;
    d.dimParam = "N";
  }
  g.valueInfo = []; // shapes inferred for batch 1; onnxruntime infers them again
  const zeros = new Map(g.node.filter((n) => n.opType === "ConstantOfShape").map((n) => [n.output[0], n]));
  const nodes = [];
  let pads = 0;
  let reshapes = 0;
  for (const n of g.node) {
    if (n.opType === "ConstantOfShape") continue;
    if (n.opType === "Concat" && n.input.length === 2 && zeros.has(n.input[1])) {
      const shape = int64s(inits.get(zeros.get(n.input[1]).input[0]));
      const name = `batch_n_pads_${pads++}`;
      // Pad the channel axis (NCHW) at its end by as many channels as the zeros had.
      g.initializer.push(int64Tensor(name, [0, 0, 0, 0, 0, shape[1], 0, 0]));
      nodes.push({ input: [n.input[0], name], output: [...n.output], name: `batch_n_pad_${pads}`, opType: "Pad", attribute: [{ name: "mode", type: 3, s: new TextEncoder().encode("constant") }] });
      continue;
    }
    if (n.opType === "Reshape" && inits.has(n.input[1])) {
      const t = inits.get(n.input[1]);
      const target = int64s(t);
      target[0] = -1;
      Object.assign(t, int64Tensor(t.name, target), { int64Data: [] });
      reshapes++;
    }
    nodes.push(n);
  }
  if (pads === 0 || reshapes === 0) throw new Error(`not the expected BlazeFace graph: ${pads} channel paddings, ${reshapes} reshapes`);
  g.node = nodes;
  return Model.encode(m).finish();
}
