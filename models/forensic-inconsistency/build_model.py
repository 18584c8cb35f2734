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
         cue_noise     float32 [N,1,256,256] signed natural-log ratio of the local
                       high-frequency noise floor to the face's median floor;
                       <0 smoother/blurrier than the rest of the face, >0 sharper/noisier
                       (-0.7 = about half the high-frequency energy).
         cue_colour    float32 [N,1,256,256] distance of the local mean chromaticity
                       from the face's median chromaticity, in percent points of the
                       opponent chromaticity 100*(R-G, R+G-2B)/(R+G+B+0.03).
         cue_boundary  float32 [N,1,256,256] blending-boundary strength: gradient
                       magnitude per 10 px of cue_noise (log units) plus 0.25x that of
                       the hue-deviation map (percent points).

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
FINE_SIGMA = 1.0      # fine band = Y - G(1.0)
ENERGY_SIGMA = 1.5    # local fine-band energy window (Gaussian)
EPS_ENERGY = 2e-6     # ~ 8-bit quantisation noise variance (values in [0,1])
FLOOR_K = 21          # noise floor = min of the local log-energy over 21x21 px
FLOOR_SMOOTH = 7.0    # smoothing of the noise-floor map
SHARP_SIGMA, SHARP_K = 0.7, 31  # band / window of the floor used for sharpening evidence
BLUR_REF_Q = 0.35     # blur evidence: floor below the 35th percentile of the face
CHROMA_SIGMA = 4.0    # local chromaticity mean
CUE_SMOOTH = 3.0      # smoothing of the hue map before its gradient
BOUNDARY_COLOUR_SCALE = 0.25  # hue-gradient (percent points / 10 px) -> boundary units
OPEN_K = 9            # morphological opening of the evidence map (drops blobs < ~9 px)
OUT_SMOOTH = 3.0      # smoothing of the logit map
# Reference region: central ellipse of the crop (face box is the middle 1/1.5).
REF_RX, REF_RY, REF_CY = 0.27, 0.30, 0.52   # fractions of the crop size
POOL = 4                                     # reference computed on a 64x64 grid
# Face gate: ellipse with semi-axes GATE_RX/GATE_RY x half the face box.
GATE_RX, GATE_RY, GATE_R0, GATE_R1 = 0.85, 0.95, 0.8, 1.0

# ---------------------------------------------------------------------------
# Fitted combination (from `python sbi.py fit`: calibration split = astronaut.png,
# seeds 0..119, plus its 24 real variants; see fit_output.json).
#   feature_i = relu(cue_i - dz_i)       dz_i = 95th percentile of cue_i on the real
#                                        calibration faces (natural variation)
#   evidence  = gate * sum_i w_i * feature_i, then a 9x9 morphological opening
#   prob      = sigmoid(G(OUT_SMOOTH) * (evidence + bias))
# w_i: class-balanced logistic regression (non-negative), rescaled so that prob = 0.5
# at the F1-optimal evidence level and bias = logit(0.05) (no evidence -> 0.05).
# ---------------------------------------------------------------------------
COMBINE = {
    "scale_blur": 0.335, "scale_sharp": 0.0536,
    "dz_blur": 0.2013, "dz_sharp": 1.995, "dz_hue": 2.3409, "dz_chroma": 9.4112, "dz_boundary": 0.8033,
    "w_blur": 24.4294, "w_sharp": 4.5204, "w_hue": 7.9932, "w_chroma": 0.3623, "w_boundary": 7.6242,
    "bias": -2.9444,
}


def gauss_kernel(sigma):
    r = int(np.ceil(3.0 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def ref_indices():
    """Flat indices (64x64 grid) of the central face ellipse used for reference levels."""
    g = SIZE // POOL
    yy, xx = np.mgrid[0:g, 0:g].astype(np.float64)
    cx, cy = (g - 1) / 2.0, REF_CY * g - 0.5
    d = ((xx - cx) / (REF_RX * g)) ** 2 + ((yy - cy) / (REF_RY * g)) ** 2
    return np.nonzero(d.reshape(-1) <= 1.0)[0].astype(np.int64)


def gate_axes():
    """Squared normalised coordinates along x and y for the face gate: 1 inside the
    ellipse inscribed in the face box (r < GATE_R0), falling linearly to 0 at
    r = GATE_R1. The face box is the middle 1/1.5 of the crop by contract."""
    half = 0.5 * SIZE / CROP_SCALE
    t = np.arange(SIZE, dtype=np.float64) + 0.5 - SIZE / 2.0
    return (t / (GATE_RX * half)) ** 2, (t / (GATE_RY * half)) ** 2


def prior_map():
    """The face gate as a 256x256 float64 map (used by sbi.py for fitting)."""
    gx, gy = gate_axes()
    r = np.sqrt(gx[None, :] + gy[:, None])
    return np.clip((GATE_R1 - r) / (GATE_R1 - GATE_R0), 0.0, 1.0)


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

    def ref_quantiles(self, x, ref_idx, qs):
        """Several quantiles of x (one channel) over the central face ellipse, each
        [N,1,1,1] (one TopK; descending order, so quantile q sits at index (1-q)*n)."""
        p = self.op("AveragePool", [x], kernel_shape=[POOL, POOL], strides=[POOL, POOL])
        flat = self.op("Reshape", [p, self.const(np.array([0, -1], dtype=np.int64), "shape")])
        sel = self.op("Gather", [flat, self.const(ref_idx, "refidx")], axis=1)
        n = len(ref_idx)
        k = self.const(np.array([n], dtype=np.int64), "k")
        vals, _ = self.op("TopK", [sel, k], outputs=[self.name("topv"), self.name("topi")], axis=1)
        out = []
        for q in qs:
            i = min(n - 1, int(np.ceil((1.0 - q) * n)) - 1)
            v = self.op("Gather", [vals, self.const(np.array([i], dtype=np.int64), "qi")], axis=1)
            out.append(self.op("Reshape", [v, self.const(np.array([-1, 1, 1, 1], dtype=np.int64), "shape")]))
        return out

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
    ref_idx = ref_indices()

    x = g.op("Clip", ["face", g.f(0.0), g.f(1.0)])
    # Luma and opponent colour (1x1 conv).
    m = np.array([[0.299, 0.587, 0.114],      # Y
                  [1.0, -1.0, 0.0],           # R-G
                  [1.0, 1.0, -2.0],           # R+G-2B
                  [1.0, 1.0, 1.0]],           # R+G+B
                 dtype=np.float32).reshape(4, 3, 1, 1)
    yc = g.op("Conv", [x, g.const(m, "kcolour")])
    split = g.const(np.array([1, 2, 1], dtype=np.int64), "split")
    Y, opp, S = g.op("Split", [yc, split], outputs=[g.name("Y"), g.name("opp"), g.name("S")], axis=1)

    # ---- (1) noise / sharpness cue: local noise floor of the fine band -------
    # variance-stabilised luma (shot noise grows with intensity): 0.5*sqrt(Y+0.01)
    sy = g.mul(g.op("Sqrt", [g.add(Y, g.f(0.01))]), g.f(0.5))

    def noise_floor(band_sigma, k):
        hf = g.sub(sy, g.gauss(sy, band_sigma))                 # fine band
        loge = g.op("Log", [g.add(g.gauss(g.mul(hf, hf), ENERGY_SIGMA), g.f(EPS_ENERGY))])
        floor = g.op("Neg", [g.op("MaxPool", [g.op("Neg", [loge])], kernel_shape=[k, k],
                                    pads=[k // 2] * 4, strides=[1, 1])])
        return g.gauss(floor, FLOOR_SMOOTH)

    floor = noise_floor(FINE_SIGMA, FLOOR_K)
    q25, q35, q50, q75 = g.ref_quantiles(floor, ref_idx, [0.25, BLUR_REF_Q, 0.5, 0.75])
    cue_noise = g.sub(floor, q50)
    g.op("Identity", [cue_noise], outputs=["cue_noise"])
    # Evidence is self-normalised: in units of max(this face's inter-quartile range of
    # the floor, the calibration face's IQR), so a face with more natural variation
    # (grain, hair, beard, wrinkles, JPEG blocks) than the calibration face needs a
    # proportionally larger deviation. "Too smooth" is judged against the smooth-skin
    # level of this face (a low quantile of the floor), not against the median, which
    # hair/eyes pull up.
    smooth_raw = g.sub(floor, q35)
    iqr = g.mul(g.sub(q75, q50), g.f(2.0))   # upper-half spread: robust to a blurred patch
    smooth_rel = g.div(smooth_raw, g.op("Max", [iqr, g.f(c["scale_blur"])]))
    # finer band, wider window: used only for the sharpening evidence
    fs = noise_floor(SHARP_SIGMA, SHARP_K)
    s25, s50, s75 = g.ref_quantiles(fs, ref_idx, [0.25, 0.5, 0.75])
    sharp_raw = g.sub(fs, s50)
    sharp_iqr = g.sub(s75, s25)
    noise_sharp = g.div(sharp_raw, g.op("Max", [sharp_iqr, g.f(c["scale_sharp"])]))

    # ---- (2) colour cue: local chromaticity vs the face's median -------------
    chrom = g.mul(g.div(opp, g.add(S, g.f(0.03))), g.f(100.0))  # percent points
    lc = g.gauss(chrom, CHROMA_SIGMA, ch=2)
    split2 = g.const(np.array([1, 1], dtype=np.int64), "split")
    c1, c2 = g.op("Split", [lc, split2], outputs=[g.name("c1"), g.name("c2")], axis=1)
    r1, = g.ref_quantiles(c1, ref_idx, [0.5])
    r2, = g.ref_quantiles(c2, ref_idx, [0.5])
    d1, d2 = g.sub(c1, r1), g.sub(c2, r2)
    cue_colour = g.op("Sqrt", [g.add(g.mul(d1, d1), g.mul(d2, d2))])
    g.op("Identity", [cue_colour], outputs=["cue_colour"])
    # hue deviation: component of the local chromaticity orthogonal to the face's
    # own skin-tone direction (lips/eyes/hair/background mostly lie on or near it)
    rn = g.op("Sqrt", [g.add(g.add(g.mul(r1, r1), g.mul(r2, r2)), g.f(1e-2))])
    perp = g.op("Abs", [g.div(g.sub(g.mul(c1, r2), g.mul(c2, r1)), rn)])

    # ---- (3) blending-boundary cue ------------------------------------------
    cue_boundary = g.add(g.grad_mag(cue_noise),
                         g.mul(g.grad_mag(g.gauss(perp, CUE_SMOOTH)), g.f(BOUNDARY_COLOUR_SCALE)))
    g.op("Identity", [cue_boundary], outputs=["cue_boundary"])

    # ---- combination ---------------------------------------------------------
    feats = {
        "blur": g.op("Relu", [g.sub(g.op("Neg", [smooth_rel]), g.f(c["dz_blur"]))]),
        "sharp": g.op("Relu", [g.sub(noise_sharp, g.f(c["dz_sharp"]))]),
        "hue": g.op("Relu", [g.sub(perp, g.f(c["dz_hue"]))]),
        "chroma": g.op("Relu", [g.sub(cue_colour, g.f(c["dz_chroma"]))]),
        "boundary": g.op("Relu", [g.sub(cue_boundary, g.f(c["dz_boundary"]))]),
    }
    ev = g.mul(feats["blur"], g.f(c["w_blur"]))
    for k in ["sharp", "hue", "chroma", "boundary"]:
        ev = g.add(ev, g.mul(feats[k], g.f(c["w_" + k])))
    gx, gy = gate_axes()
    r = g.op("Sqrt", [g.add(g.const(gx.astype(np.float32).reshape(1, 1, 1, SIZE), "gx"),
                            g.const(gy.astype(np.float32).reshape(1, 1, SIZE, 1), "gy"))])
    gate = g.op("Clip", [g.mul(g.sub(g.f(GATE_R1), r), g.f(1.0 / (GATE_R1 - GATE_R0))), g.f(0.0), g.f(1.0)])
    ev = g.mul(ev, gate)
    if OPEN_K > 1:  # opening = erosion (min-pool) then dilation (max-pool)
        pk = dict(kernel_shape=[OPEN_K, OPEN_K], pads=[OPEN_K // 2] * 4, strides=[1, 1])
        ev = g.op("Neg", [g.op("MaxPool", [g.op("Neg", [ev])], **pk)])
        ev = g.op("MaxPool", [ev], **pk)
    logit = g.add(ev, g.f(c["bias"]))
    logit = g.gauss(logit, OUT_SMOOTH)
    g.op("Sigmoid", [logit], outputs=["forgery_prob"])

    def vi(n, ch=1):
        return helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", ch, SIZE, SIZE])

    outputs = [vi("forgery_prob"), vi("cue_noise"), vi("cue_colour"), vi("cue_boundary")]
    if debug:
        for nm, v in [("dbg_perp", perp), ("dbg_smooth_raw", smooth_raw), ("dbg_sharp_raw", sharp_raw)]:
            g.op("Identity", [v], outputs=[nm])
            outputs.append(vi(nm))
        for nm, v in [("dbg_iqr", iqr), ("dbg_sharp_iqr", sharp_iqr)]:
            g.op("Identity", [v], outputs=[nm])
            outputs.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, ["N", 1, 1, 1]))
    graph = helper.make_graph(g.nodes, "forensic_inconsistency_v1", [vi("face", 3)], outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tampertrace-build_model.py", producer_version="1.0.0")
    model.ir_version = 8
    model.doc_string = ("Hand-designed forensic inconsistency detector (fixed kernels, not trained on "
                        "deepfake data). See MODEL_CARD.md.")
    onnx.checker.check_model(model, full_check=True)
    return model


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
