#!/usr/bin/env python3
"""Export a learned-localizer checkpoint to ONNX (opset 17, dynamic batch) and check it.

  python export.py CHECKPOINT.pt [OUT.onnx]

The exported graph has one input, `face` float32 [N,3,256,256] RGB in [0,1], and outputs
  forgery_prob       [N,1,256,256]  the learned per-pixel probability
  manipulation_prob  [N,6]          BLEND, INPAINT, SPLICE, RECOLOUR, SMOOTH, SHARPEN
  cue_noise, cue_colour, cue_boundary [N,1,256,256]
                                    the bundled forensic-inconsistency model's measured cue maps,
                                    its graph merged in unchanged (prefixed fi_), so the
                                    explanation stage keeps citing measured cues.
A checkpoint trained with --cues also reads that model's four maps as input channels, wired
inside the same graph. Checks: onnx.checker, size <= 16 MB, onnxruntime batch 1 vs 8 within 1e-4,
and agreement with PyTorch within 1e-4.
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
from onnx import helper

from net import Net

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
OLD = os.path.join(ROOT, "models", "forensic-inconsistency", "forensic-inconsistency-v1.onnx")
DEFAULT_OUT = os.path.join(HERE, "learned-localizer-v1.onnx")
MAX_BYTES = 16 * 1024 * 1024


class Wrap(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, face, *cues):
        c = torch.cat(cues, 1) if cues else None
        return self.net(face, c)


def merged(learned, cues):
    """One graph: the old model (prefixed fi_) on `face`, the learned model on `face` (and on the
    old model's maps when cues), outputs forgery_prob, manipulation_prob and the three cue maps."""
    old = onnx.compose.add_prefix(onnx.load(OLD), "fi_")
    g_old, g_new = old.graph, learned.graph

    def rename(nodes, mapping):
        for n in nodes:
            for i, x in enumerate(n.input):
                if x in mapping:
                    n.input[i] = mapping[x]

    rename(g_old.node, {"fi_face": "face"})
    if cues:
        rename(g_new.node, {"lc_prob": "fi_forgery_prob", "lc_noise": "fi_cue_noise",
                            "lc_colour": "fi_cue_colour", "lc_boundary": "fi_cue_boundary"})
    nodes = list(g_old.node) + list(g_new.node)
    for c in ("cue_noise", "cue_colour", "cue_boundary"):
        nodes.append(helper.make_node("Identity", ["fi_" + c], [c]))
    outs = [o for o in g_new.output]
    for c in ("cue_noise", "cue_colour", "cue_boundary"):
        vi = [o for o in g_old.output if o.name == "fi_" + c][0]
        v = onnx.ValueInfoProto()
        v.CopyFrom(vi)
        v.name = c
        outs.append(v)
    face = [i for i in g_new.input if i.name == "face"][0]
    graph = helper.make_graph(nodes, "learned_localizer_v1", [face], outs,
                              list(g_old.initializer) + list(g_new.initializer))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="learned-localizer")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def export(ckpt_path, out_path=DEFAULT_OUT):
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    net = Net(ck["width"], 4 if ck["cues"] else 0)
    net.load_state_dict(ck["model"])
    net.eval()
    w = Wrap(net).eval()
    face = torch.rand(2, 3, 256, 256)
    names = ["face"]
    args = [face]
    if ck["cues"]:
        names += ["lc_prob", "lc_noise", "lc_colour", "lc_boundary"]
        args += [torch.rand(2, 1, 256, 256) for _ in range(4)]
    tmp = out_path + ".tmp"
    torch.onnx.export(w, tuple(args), tmp, input_names=names, output_names=["forgery_prob", "manipulation_prob"],
                      dynamic_axes={n: {0: "N"} for n in names + ["forgery_prob", "manipulation_prob"]},
                      opset_version=17, do_constant_folding=True)
    m = merged(onnx.load(tmp), ck["cues"])
    os.remove(tmp)
    onnx.save(m, out_path)
    check(out_path, net, ck["cues"])
    return out_path


def check(path, net=None, cues=False):
    size = os.path.getsize(path)
    assert size <= MAX_BYTES, f"{path}: {size} bytes > 16 MB"
    try:
        import onnxruntime as ort
    except ImportError:  # the device machine may lack it: calibrate.py checks again here
        print(f"{path}: {size / 1e6:.2f} MB; onnxruntime not installed, runtime check skipped")
        return
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    x = rng.random((8, 3, 256, 256), dtype=np.float32)
    outs = [o.name for o in s.get_outputs()]
    r8 = s.run(None, {"face": x})
    worst = 0.0
    for i in range(8):
        r1 = s.run(None, {"face": x[i:i + 1]})
        for a, b in zip(r1, r8):
            worst = max(worst, float(np.abs(a[0] - b[i]).max()))
    assert worst < 1e-4, f"batch 1 vs 8 differ by {worst}"
    shapes = {n: list(v.shape) for n, v in zip(outs, r8)}
    assert shapes["forgery_prob"] == [8, 1, 256, 256] and shapes["manipulation_prob"] == [8, 6], shapes
    for n in ("forgery_prob", "manipulation_prob"):
        v = r8[outs.index(n)]
        assert np.isfinite(v).all() and v.min() >= 0 and v.max() <= 1, n
    if net is not None and not cues:
        with torch.no_grad():
            p, t = net(torch.from_numpy(x))
        d = max(float(np.abs(p.numpy() - r8[outs.index("forgery_prob")]).max()),
                float(np.abs(t.numpy() - r8[outs.index("manipulation_prob")]).max()))
        assert d < 1e-4, f"onnx vs torch differ by {d}"
    print(f"{path}: {size / 1e6:.2f} MB, outputs {shapes}, batch 1 vs 8 max diff {worst:.2e}")


if __name__ == "__main__":
    export(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT)
