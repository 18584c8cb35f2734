#!/usr/bin/env python3
"""Build the TamperTrace default forgery-localization model as a fixed ONNX graph.

forensic-inconsistency-v1 is a HAND-DESIGNED forensic cue detector, not a trained
deepfake detector. Every kernel is a fixed Gaussian / colour matrix; the only fitted
numbers are the few combination weights in COMBINE below, which were calibrated with
`python sbi.py fit` on self-blended forgeries of ONE photo (astronaut.png) and are
reported on disjoint data with `python sbi.py eval` (see calibration.json).

Contract
  input  face          float32 [N,3,256,256], RGB in [0,1]; crop = face box expanded
                       1.5x around its centre, resized to 256x256.
  output forgery_prob  float32 [N,1,256,256] in [0,1]
         cue_noise     float32 [N,1,256,256] signed log-ratio (natural log) of the local
                       high-frequency energy (relative to the band below it) against
                       the face's own median level; <0 smoother/blurrier, >0 sharper.
         cue_colour    float32 [N,1,256,256] distance of the local mean chromaticity
                       from the face's median chromaticity, in percent points of
                       (R-G, R+G-2B)/(R+G+B) opponent chromaticity.
         cue_boundary  float32 [N,1,256,256] blending-boundary strength, in cue units
                       per 10 px (spatial gradient of the smoothed noise/colour cues).

Running this script writes forensic-inconsistency-v1.onnx byte-identically each time
and prints its sha256.
"""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
SIZE = 256
CROP_SCALE = 1.5
MODEL_NAME = "forensic-inconsistency-v1.onnx"

# ---------------------------------------------------------------------------
# Fixed design constants (not fitted).
# ---------------------------------------------------------------------------
FINE_SIGMA = 1.0      # fine band  = Y - G(1.0)
MID_SIGMA = 2.0       # mid band   = G(1.0) - G(2.0)
ENERGY_SIGMA = 4.0    # local energy window (Gaussian)
EPS_ENERGY = 2e-6     # ~ 8-bit quantisation noise variance (values in [0,1])
CHROMA_SIGMA = 4.0    # local chromaticity mean
SURROUND_SIGMA = 16.0 # surroundings for the local colour contrast
CUE_SMOOTH = 3.0      # smoothing of cue maps before gradients
OUT_SMOOTH = 3.0      # smoothing of the logit map
# Reference region: central ellipse of the crop (face box is the middle 1/1.5).
REF_RX, REF_RY, REF_CY = 0.30, 0.33, 0.52   # fractions of the crop size
POOL = 4                                     # reference computed on a 64x64 grid

# ---------------------------------------------------------------------------
# Fitted combination weights (from `python sbi.py fit`, astronaut seeds 0..).
# logit = bias + sum_i w_i * feature_i ; prob = sigmoid(G(OUT_SMOOTH) * logit)
# ---------------------------------------------------------------------------
COMBINE = {
    "dead_zone_noise": 0.35,
    "dead_zone_colour": 2.0,
    "w_blur": 3.0,
    "w_sharp": 2.0,
    "w_colour": 0.5,
    "w_boundary": 0.0,
    "w_prior": 4.0,
    "bias": -4.0,
}


def gauss_kernel(sigma):
    r = int(np.ceil(3.0 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def face_prior_maps():
    """Constant maps: the reference-region index list and a soft face prior."""
    g = SIZE // POOL
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float64)
    cx, cy = (g - 1) / 2.0, REF_CY * g - 0.5
    d = ((xx - cx) / (REF_RX * g)) ** 2 + ((yy - cy) / (REF_RY * g)) ** 2
    ref_idx = np.nonzero(d.reshape(-1) <= 1.0)[0].astype(np.int64)
    # Prior feature at full resolution: 0 inside the face box ellipse, falling
    # quadratically outside (face box = middle 1/1.5 of the crop).
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5
    rx = 0.5 * SIZE / CROP_SCALE * 0.95
    ry = 0.5 * SIZE / CROP_SCALE * 1.15
    cx, cy = SIZE / 2.0, SIZE * 0.50
    r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    prior = -np.clip(r - 0.75, 0.0, None) ** 2  # <= 0
    return ref_idx, prior.astype(np.float32)[None, None]


class G:
    """Tiny deterministic graph builder."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, p):
        self.n += 1
        return "%s_%d" % (p, self.n)

    def const(self, arr, p="c"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, op_type, inputs, p=None, outputs=None, **attrs):
        out = outputs or [self.name(p or op_type.lower())]
        self.nodes.append(helper.make_node(op_type, inputs, out, name=self.name("n_" + op_type), **attrs))
        return out[0] if len(out) == 1 else out

    # helpers --------------------------------------------------------------
    def f(self, v):
        return self.const(np.array(v, dtype=np.float32), "s")

    def add(self, a, b): return self.op("Add", [a, b])
    def sub(self, a, b): return self.op("Sub", [a, b])
    def mul(self, a, b): return self.op("Mul", [a, b])
    def div(self, a, b): return self.op("Div", [a, b])

    def gauss(self, x, sigma, ch=1):
        """Separable Gaussian blur with reflect padding (keeps HxW)."""
        k = gauss_kernel(sigma)
        r = len(k) // 2
        pads = self.const(np.array([0, 0, r, r, 0, 0, r, r], dtype=np.int64), "pads")
        xp = self.op("Pad", [x, pads], mode="reflect")
        kh = self.const(np.tile(k.reshape(1, 1, 1, -1), (ch, 1, 1, 1)), "kh")
        kv = self.const(np.tile(k.reshape(1, 1, -1, 1), (ch, 1, 1, 1)), "kv")
        y = self.op("Conv", [xp, kh], group=ch)
        return self.op("Conv", [y, kv], group=ch)

    def gauss_big(self, x, sigma, ch=1):
        """Large-sigma blur on a 4x-downsampled grid, then bilinear upsample."""
        d = self.op("AveragePool", [x], kernel_shape=[4, 4], strides=[4, 4])
        b = self.gauss(d, sigma / 4.0, ch)
        scales = self.const(np.array([1, 1, 4, 4], dtype=np.float32), "scales")
        return self.op("Resize", [b, "", scales], mode="linear",
                       coordinate_transformation_mode="half_pixel")

    def ref_median(self, x, ref_idx):
        """Median of x (one channel) over the central face ellipse -> [N,1,1,1]."""
        p = self.op("AveragePool", [x], kernel_shape=[POOL, POOL], strides=[POOL, POOL])
        flat = self.op("Reshape", [p, self.const(np.array([0, -1], dtype=np.int64), "shape")])
        sel = self.op("Gather", [flat, self.const(ref_idx, "refidx")], axis=1)
        k = self.const(np.array([(len(ref_idx) + 1) // 2], dtype=np.int64), "k")
        vals, _ = self.op("TopK", [sel, k], outputs=[self.name("topv"), self.name("topi")], axis=1)
        med = self.op("ReduceMin", [vals], axes=[1], keepdims=1)
        return self.op("Reshape", [med, self.const(np.array([-1, 1, 1, 1], dtype=np.int64), "shape")])

    def grad_mag(self, x, ch=1):
        """Central-difference gradient magnitude (summed over channels), per 10 px."""
        pads = self.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=np.int64), "pads")
        xp = self.op("Pad", [x, pads], mode="edge")
        k = np.zeros((2 * ch, 1, 3, 3), dtype=np.float32)
        k[0::2, 0, 1, 0], k[0::2, 0, 1, 2] = -5.0, 5.0   # d/dx * 10
        k[1::2, 0, 0, 1], k[1::2, 0, 2, 1] = -5.0, 5.0   # d/dy * 10
        g = self.op("Conv", [xp, self.const(k, "kgrad")], group=ch)
        g2 = self.op("ReduceSum", [self.mul(g, g), self.const(np.array([1], dtype=np.int64), "ax")], keepdims=1)
        return self.op("Sqrt", [g2])


def build(combine=None, debug=False):
    c = dict(COMBINE)
    if combine:
        c.update(combine)
    g = G()
    ref_idx, prior = face_prior_maps()
    x = "face"

    x = g.op("Clip", [x, g.f(0.0), g.f(1.0)])
    # Luma and opponent chromaticity (1x1 conv).
    m = np.array([[0.299, 0.587, 0.114],      # Y
                  [1.0, -1.0, 0.0],           # R-G
                  [1.0, 1.0, -2.0],           # R+G-2B
                  [1.0, 1.0, 1.0]],           # R+G+B
                 dtype=np.float32).reshape(4, 3, 1, 1)
    yc = g.op("Conv", [x, g.const(m, "kcolour")])
    split = g.const(np.array([1, 2, 1], dtype=np.int64), "split")
    Y, opp, S = g.op("Split", [yc, split], outputs=[g.name("Y"), g.name("opp"), g.name("S")], axis=1)

    # ---- (1) noise / sharpness cue: local spectral slope --------------------
    g1 = g.gauss(Y, FINE_SIGMA)
    g2 = g.gauss(Y, MID_SIGMA)
    hf = g.sub(Y, g1)
    mf = g.sub(g1, g2)
    ef = g.add(g.gauss(g.mul(hf, hf), ENERGY_SIGMA), g.f(EPS_ENERGY))
    em = g.add(g.gauss(g.mul(mf, mf), ENERGY_SIGMA), g.f(EPS_ENERGY))
    slope = g.sub(g.op("Log", [ef]), g.op("Log", [em]))        # log(E_fine/E_mid)
    cue_noise = g.sub(slope, g.ref_median(slope, ref_idx), )
    g.op("Identity", [cue_noise], outputs=["cue_noise"])

    # ---- (2) colour cue: local chromaticity vs face median ------------------
    chrom = g.mul(g.div(opp, g.add(S, g.f(0.03))), g.f(100.0))  # percent points
    lc = g.gauss(chrom, CHROMA_SIGMA, ch=2)
    split2 = g.const(np.array([1, 1], dtype=np.int64), "split")
    c1, c2 = g.op("Split", [lc, split2], outputs=[g.name("c1"), g.name("c2")], axis=1)
    ref = g.op("Concat", [g.ref_median(c1, ref_idx), g.ref_median(c2, ref_idx)], axis=1)
    dcol = g.sub(lc, ref)
    ax1 = g.const(np.array([1], dtype=np.int64), "ax")
    cue_colour = g.op("Sqrt", [g.op("ReduceSum", [g.mul(dcol, dcol), ax1], keepdims=1)])
    g.op("Identity", [cue_colour], outputs=["cue_colour"])
    # local colour contrast vs surroundings (DoG)
    dog = g.sub(lc, g.gauss_big(lc, SURROUND_SIGMA, ch=2))
    colour_contrast = g.op("Sqrt", [g.op("ReduceSum", [g.mul(dog, dog), ax1], keepdims=1)])

    # ---- (3) boundary cue ----------------------------------------------------
    sn = g.gauss(cue_noise, CUE_SMOOTH)
    cue_boundary = g.add(g.grad_mag(sn), g.mul(g.grad_mag(lc, ch=2), g.f(0.25)))
    g.op("Identity", [cue_boundary], outputs=["cue_boundary"])

    # ---- combination ---------------------------------------------------------
    blur_f = g.op("Relu", [g.sub(g.op("Neg", [sn]), g.f(c["dead_zone_noise"]))])
    sharp_f = g.op("Relu", [g.sub(sn, g.f(c["dead_zone_noise"]))])
    col_f = g.op("Relu", [g.sub(colour_contrast, g.f(c["dead_zone_colour"]))])
    prior_c = g.const(prior, "prior")
    feats = {"blur": blur_f, "sharp": sharp_f, "colour": col_f, "boundary": cue_boundary,
             "prior": prior_c}
    logit = g.add(g.mul(blur_f, g.f(c["w_blur"])), g.mul(sharp_f, g.f(c["w_sharp"])))
    logit = g.add(logit, g.mul(col_f, g.f(c["w_colour"])))
    logit = g.add(logit, g.mul(cue_boundary, g.f(c["w_boundary"])))
    logit = g.add(logit, g.mul(prior_c, g.f(c["w_prior"])))
    logit = g.add(logit, g.f(c["bias"]))
    logit = g.gauss(logit, OUT_SMOOTH)
    g.op("Sigmoid", [logit], outputs=["forgery_prob"])

    def vi(n, ch=1):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", ch, SIZE, SIZE])

    outputs = [vi("forgery_prob"), vi("cue_noise"), vi("cue_colour"), vi("cue_boundary")]
    if debug:
        for k, v in feats.items():
            if k == "prior":
                continue
            nm = "feat_" + k
            g.op("Identity", [v], outputs=[nm])
            outputs.append(vi(nm))
        for nm, v in [("dbg_slope", slope), ("dbg_colour_contrast", colour_contrast),
                      ("dbg_logE", g.op("Log", [ef]))]:
            g.op("Identity", [v], outputs=[nm])
            outputs.append(vi(nm))
    graph = helper.make_graph(g.nodes, "forensic_inconsistency_v1", [vi("face", 3)], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tampertrace-build_model.py", producer_version="1.0.0")
    model.ir_version = 8
    model.doc_string = ("Hand-designed forensic inconsistency detector (fixed kernels, not trained on "
                        "deepfake data). See MODEL_CARD.md.")
    onnx.checker.check_model(model, full_check=True)
    return model


def prior_map():
    return face_prior_maps()[1][0, 0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, MODEL_NAME)
    data = build().SerializeToString(deterministic=True)
    with open(out, "wb") as fh:
        fh.write(data)
    print("wrote %s (%d bytes)" % (out, len(data)))
    print("sha256 %s" % hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
    sys.exit(main())
