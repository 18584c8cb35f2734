"""BlazeFace with a dynamic batch dimension, for measuring (not shipped).

The Barracuda conversions in models/blazeface have batch 1 baked in: the input is [1,S,S,3],
four Reshape nodes target [1,896-split,k] and the channel padding is a Concat with a
ConstantOfShape of [1,C,H,W] zeros. This writes copies where the batch is "N": the Reshapes
take -1 and each Concat-with-zeros becomes a Pad on the channel axis (the same zeros).

Measured with it on the 2-core CPU machine (2026-11-27, ORT 1.30, one intra-op thread): every
output of a batch of 4 equals the 4 single runs bit for bit, and one run of 4 back-256 tiles
took 28.1 ms against 26.4 ms for 4 runs of 1 (front-128: 5.2 against 5.4 ms). On CPU, batching
BlazeFace buys nothing, so the detector keeps the original files; on a GPU it would (not
measured: no GPU was lent). Shipping it would mean a manifest entry with its own sha256.

Usage: python3 bench/blazeface_batch_n.py OUT_DIR   (needs the onnx package)
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

MODELS = {
    "face_detection_front_128x128_barracuda.onnx": "blazeface-front-128-batch-n.onnx",
    "face_detection_back_256x256_barracuda.onnx": "blazeface-back-256-batch-n.onnx",
}


def batch_n(src: str, dst: str) -> None:
    m = onnx.load(src)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    for vi in list(g.input) + list(g.output):
        d = vi.type.tensor_type.shape.dim[0]
        d.ClearField("dim_value")
        d.dim_param = "N"
    del g.value_info[:]  # stale shapes; onnxruntime infers them again
    zeros = {n.output[0]: n for n in g.node if n.op_type == "ConstantOfShape"}
    nodes, pads = [], []
    for n in g.node:
        if n.op_type == "ConstantOfShape":
            continue
        if n.op_type == "Concat" and len(n.input) == 2 and n.input[1] in zeros:
            shape = numpy_helper.to_array(inits[zeros[n.input[1]].input[0]]).tolist()
            name = f"batch_n_pads_{len(pads)}"
            pads.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, shape[1], 0, 0], dtype=np.int64), name))
            nodes.append(helper.make_node("Pad", [n.input[0], name], list(n.output), name=f"batch_n_pad_{len(pads)}", mode="constant"))
            continue
        if n.op_type == "Reshape" and n.input[1] in inits:
            target = numpy_helper.to_array(inits[n.input[1]]).copy()
            target[0] = -1
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(target.astype(np.int64), n.input[1]))
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(pads)
    onnx.checker.check_model(m)
    onnx.save(m, dst)


if __name__ == "__main__":
    import os

    out = sys.argv[1] if len(sys.argv) > 1 else "."
    for src, dst in MODELS.items():
        batch_n(os.path.join("models", "blazeface", src), os.path.join(out, dst))
        print("wrote", os.path.join(out, dst))
