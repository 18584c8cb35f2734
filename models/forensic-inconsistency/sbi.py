#!/usr/bin/env python3
"""Self-blended forgeries (SBI-style) from the two real test photos, plus calibration
and honest evaluation of forensic-inconsistency-v1.

  python sbi.py fit     # fit the few combination constants on the CALIBRATION split only
                        # (astronaut.png, seeds 0..CAL_N-1 + its real variants); writes
                        # fit_output.json. Its "chosen.combine" is pasted into
                        # build_model.py COMBINE and its "thresholds" into THRESHOLDS below
                        # (eval refuses to run if they differ).
  python sbi.py eval    # run the built .onnx on the calibration split and on the disjoint
                        # report splits; write calibration.json
  python sbi.py samples DIR  # write example strips (crop | truth | forgery_prob | cues)

Forgery recipe (done at the photo's own resolution, then cropped like the service does):
  mask  = union of 1..3 soft elliptical facial regions (eyes, nose, mouth, cheeks,
          forehead), positions from an approximate facial layout inside the face box,
          randomly jittered, Gaussian-blurred (soft edge).
  T(x)  = colour jitter (hue / saturation / brightness / RGB shift), Gaussian blur
          (sigma 1..3 px), unsharp-mask sharpening, or combinations.
  y     = mask * T(x) + (1 - mask) * x, quantised to 8 bits.
Ground truth per pixel: blended mask >= 0.5 after the same crop/resize.
Negatives: the untouched photo, global JPEG recompression, global resize, and both,
each with a small random jitter of the face box (as a detector would give).
"""
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FACES = os.path.join(ROOT, "testdata", "faces")
BOXES = {"astronaut": (178, 81, 94, 94), "camera": (171, 116, 90, 90)}
GREY = {"astronaut": False, "camera": True}
SIZE, CROP_SCALE = 256, 1.5
CROP_RESAMPLE = Image.LANCZOS   # sharp's default kernel (lanczos3)

TRANSFORMS = ["colour", "blur", "sharpen", "blur+colour", "sharpen+colour"]
# Facial layout inside the face box: (cx, cy, rx, ry) as fractions of w, h.
REGIONS = {
    "left_eye": [(0.30, 0.38, 0.13, 0.08)],
    "right_eye": [(0.70, 0.38, 0.13, 0.08)],
    "nose": [(0.50, 0.57, 0.09, 0.14)],
    "mouth": [(0.50, 0.76, 0.18, 0.08)],
    "left_cheek": [(0.24, 0.60, 0.12, 0.12)],
    "right_cheek": [(0.76, 0.60, 0.12, 0.12)],
    "forehead": [(0.50, 0.15, 0.30, 0.10)],
}

# Splits. CAL = what `fit` sees. The report splits are disjoint in seeds, and
# REPORT_CAMERA is a different photo altogether.
# name -> (photo, first seed, number of forgeries, post-processing of the whole
# forged/real image before cropping: None or ("jpeg", quality))
CAL_N = 120
SPLITS = {
    "calibration_astronaut": ("astronaut", 0, CAL_N, None),
    "report_astronaut_new_seeds": ("astronaut", 12000, 100, None),
    "report_camera": ("camera", 22000, 100, None),
    "report_astronaut_new_seeds_jpeg90": ("astronaut", 32000, 100, ("jpeg", 90)),
}
NEG_VARIANTS = [("original", None, None), ("jpeg95", 95, None), ("jpeg85", 85, None),
                ("jpeg75", 75, None), ("resize0.75", None, 0.75), ("resize0.6", None, 0.6),
                ("resize1.33", None, 1.33), ("resize0.75+jpeg85", 85, 0.75)]
NEG_REPEATS = 3   # box-jitter repeats per variant


# ---------------------------------------------------------------------------
# image helpers
# ---------------------------------------------------------------------------
def load(name):
    im = Image.open(os.path.join(FACES, name + ".png"))
    if GREY[name]:
        im = im.convert("L").convert("RGB")
    return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0


def gauss1d(sigma):
    r = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def blur(img, sigma):
    """Separable Gaussian blur, reflect padding; img HxW or HxWxC."""
    k = gauss1d(sigma)
    r = len(k) // 2
    a = img if img.ndim == 3 else img[:, :, None]
    p = np.pad(a, ((r, r), (r, r), (0, 0)), mode="reflect")
    h = sum(k[i] * p[:, i:i + a.shape[1]] for i in range(len(k)))
    v = sum(k[i] * h[i:i + a.shape[0]] for i in range(len(k)))
    return v if img.ndim == 3 else v[:, :, 0]


def rgb2hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(-1), rgb.min(-1)
    d = mx - mn
    h = np.zeros_like(mx)
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, h)
    h = np.where(mx == g, (b - r) / safe + 2, h)
    h = np.where(mx == b, (r - g) / safe + 4, h)
    h = np.where(d > 0, h / 6.0, 0.0) % 1.0
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1), 0)
    return np.stack([h, s, mx], -1)


def hsv2rgb(hsv):
    h, s, v = hsv[..., 0] * 6, hsv[..., 1], hsv[..., 2]
    i = np.floor(h) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sel = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape)
    for k, (a, b, c) in enumerate(sel):
        m = i == k
        out[..., 0] = np.where(m, a, out[..., 0])
        out[..., 1] = np.where(m, b, out[..., 1])
        out[..., 2] = np.where(m, c, out[..., 2])
    return out


def to_u8(img):
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def jpeg(u8, q):
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(q))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def resize_global(u8, f):
    h, w = u8.shape[:2]
    return np.asarray(Image.fromarray(u8).resize((int(round(w * f)), int(round(h * f))), Image.LANCZOS))


def crop(u8, box, mask=None):
    """Face box expanded 1.5x around its centre (square), resized to 256x256."""
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    s = max(w, h) * CROP_SCALE
    bb = (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)
    im = Image.fromarray(u8).resize((SIZE, SIZE), CROP_RESAMPLE, box=bb)
    out = np.asarray(im, dtype=np.float32) / 255.0
    if mask is None:
        return out
    m = Image.fromarray(mask.astype(np.float32), mode="F").resize((SIZE, SIZE), Image.BILINEAR, box=bb)
    return out, np.asarray(m, dtype=np.float32)


def jitter_box(box, rng, frac=0.04):
    x, y, w, h = box
    s = 1.0 + rng.uniform(-frac, frac)
    dx, dy = rng.uniform(-frac, frac, 2) * w
    nw, nh = w * s, h * s
    return (x + w / 2 + dx - nw / 2, y + h / 2 + dy - nh / 2, nw, nh)


# ---------------------------------------------------------------------------
# forgeries
# ---------------------------------------------------------------------------
def region_mask(shape, box, names, rng):
    H, W = shape
    x, y, w, h = box
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    m = np.zeros((H, W))
    for n in names:
        for (cx, cy, rx, ry) in REGIONS[n]:
            cx, cy = cx + rng.uniform(-0.04, 0.04), cy + rng.uniform(-0.04, 0.04)
            sc = rng.uniform(0.85, 1.25)
            ex, ey = x + cx * w, y + cy * h
            d = ((xx - ex) / (rx * w * sc)) ** 2 + ((yy - ey) / (ry * h * sc)) ** 2
            m = np.maximum(m, (d <= 1.0).astype(np.float64))
    sig = rng.uniform(0.025, 0.05) * w
    m = blur(m, sig)
    return np.clip(m / max(m.max(), 1e-6), 0, 1)


def colour_jitter(img, rng):
    hsv = rgb2hsv(np.clip(img, 0, 1))
    hue = rng.choice([-1, 1]) * rng.uniform(3, 12) / 360.0
    sat = rng.choice([rng.uniform(0.65, 0.9), rng.uniform(1.12, 1.4)])
    val = rng.uniform(0.9, 1.1)
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 1)
    hsv[..., 2] = np.clip(hsv[..., 2] * val, 0, 1)
    out = hsv2rgb(hsv) + rng.uniform(-10, 10, 3) / 255.0
    return np.clip(out, 0, 1), dict(hue_deg=round(hue * 360, 2), sat=round(sat, 3), val=round(val, 3))


def apply_transform(img, kind, rng):
    out, info = img, {}
    if "blur" in kind:
        s = rng.uniform(1.0, 3.0)
        out = blur(out, s)
        info["blur_sigma"] = round(s, 3)
    if "sharpen" in kind:
        s, a = rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.5)
        out = np.clip(out + a * (out - blur(out, s)), 0, 1)
        info.update(sharpen_sigma=round(s, 3), sharpen_amount=round(a, 3))
    if "colour" in kind:
        out, ci = colour_jitter(out, rng)
        info.update(ci)
    return out, info


def make_forgery(name, seed, post=None):
    rng = np.random.default_rng(seed)
    img = load(name)
    kind = TRANSFORMS[seed % len(TRANSFORMS)]
    names = list(rng.choice(list(REGIONS), size=rng.integers(1, 4), replace=False))
    box = BOXES[name]
    m = region_mask(img.shape[:2], box, names, rng)
    t, info = apply_transform(img, kind, rng)
    y = m[..., None] * t + (1 - m[..., None]) * img
    if GREY[name]:  # a greyscale photo stays greyscale after forging
        y = (y @ np.array([0.299, 0.587, 0.114]))[..., None].repeat(3, -1)
    u8 = to_u8(y)
    if post is not None and post[0] == "jpeg":
        u8 = jpeg(u8, post[1])
    c, gt = crop(u8, jitter_box(box, rng), m)
    info.update(regions=names)
    return c, gt >= 0.5, kind, info


def make_negatives(name, seed0, post=None):
    out = []
    img = to_u8(load(name))
    for r in range(NEG_REPEATS):
        for vi, (vname, q, f) in enumerate(NEG_VARIANTS):
            rng = np.random.default_rng(seed0 + 100 * r + vi)
            u8, box = img, BOXES[name]
            if f is not None:
                u8 = resize_global(u8, f)
                box = tuple(v * f for v in box)
            if q is not None:
                u8 = jpeg(u8, q)
            if post is not None and post[0] == "jpeg":
                u8 = jpeg(u8, post[1])
            c = crop(u8, jitter_box(box, rng) if r > 0 or vname != "original" else box)
            out.append((c, vname))
    return out


def load_split(split):
    name, s0, n, post = SPLITS[split]
    X, M, kinds, infos = [], [], [], []
    for s in range(s0, s0 + n):
        c, gt, kind, info = make_forgery(name, s, post)
        X.append(c), M.append(gt), kinds.append(kind), infos.append(info)
    for c, vname in make_negatives(name, s0 + 5000, post):
        X.append(c), M.append(np.zeros((SIZE, SIZE), bool)), kinds.append("real:" + vname), infos.append({})
    X = np.stack(X).transpose(0, 3, 1, 2).astype(np.float32)
    return X, np.stack(M), kinds, infos


# ---------------------------------------------------------------------------
# running the graph
# ---------------------------------------------------------------------------
def session(model_bytes):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def run(sess, X, batch=8):
    names = [o.name for o in sess.get_outputs()]
    outs = {n: [] for n in names}
    for i in range(0, len(X), batch):
        for n, o in zip(names, sess.run(None, {"face": X[i:i + batch]})):
            outs[n].append(o[:, 0] if o.shape[-1] > 1 else o[:, 0, 0])
    return {n: np.concatenate(v) for n, v in outs.items()}


def gblur_maps(a, sigma):
    """Same Gaussian as the graph (reflect padding), on [N,H,W]."""
    import build_model as bm
    k = bm.gauss_kernel(sigma).astype(np.float64)
    r = len(k) // 2
    p = np.pad(a, ((0, 0), (r, r), (r, r)), mode="reflect")
    H, W = a.shape[1:]
    h = sum(k[i] * p[:, :, i:i + W] for i in range(len(k)))
    return sum(k[i] * h[:, i:i + H] for i in range(len(k)))


def face_region():
    import build_model as bm
    return bm.prior_map() >= 0.5  # the face-box ellipse of the gate


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def auc(score, lab):
    s = np.asarray(score, np.float64).ravel()
    l = np.asarray(lab, bool).ravel()
    npos, nneg = int(l.sum()), int((~l).sum())
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s))
    # average ranks for ties
    _, first, counts = np.unique(ss, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[l].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def face_score(prob, frac):
    """Mean of the top `frac` of forgery_prob over the crop, per image."""
    flat = prob.reshape(len(prob), -1)
    k = max(1, int(round(frac * flat.shape[1])))
    return np.sort(flat, 1)[:, -k:].mean(1)


def seg_stats(prob, gt, thr):
    pred = prob >= thr
    tp = float((pred & gt).sum()); fp = float((pred & ~gt).sum()); fn = float((~pred & gt).sum())
    return tp, fp, fn


def r4(v):
    return None if v is None else round(float(v), 4)


# ---------------------------------------------------------------------------
# fit (calibration split only)
# ---------------------------------------------------------------------------
FACE_FRAC_CHOICES = [0.005, 0.01, 0.02, 0.05]
DESIGN_HISTORY = [
    "Cue design (bands, windows, dead-zone rule, opening, face gate, face-score choice) was "
    "iterated while looking only at the calibration split (astronaut.png seeds 0-119 + its real "
    "variants).",
    "The first full evaluation (report seeds 10000/20000/30000) showed false alarms on real "
    "camera.png crops after JPEG recompression (face scores 0.74-0.96) with a blur cue referenced "
    "to the face's MEDIAN noise floor. Two changes followed, motivated by that report photo: "
    "(1) blur evidence referenced to the 35th percentile of the face's floor (0.35 chosen among "
    "0.15/0.25/0.35 by the calibration objective); (2) noise evidence divided by max(this face's "
    "floor spread, the calibration face's spread). With (1) only, on fresh seeds "
    "11000/21000/31000: 62% of real camera crops above the face threshold, camera forgeries 75% "
    "detected (image AUC 0.70). Adding (2) trades that for far fewer false alarms and many more "
    "misses on camera.png (numbers below).",
    "For (2), the spread estimator (inter-quartile range vs 2x upper-half spread) was chosen by "
    "the calibration objective; both were run once on seeds 12000/22000/32000, which are the "
    "final report seeds below.",
    "Therefore report_camera is NOT a fully blind test (the photo shaped choices (1) and (2)); "
    "the astronaut report splits use unseen seeds but the calibration photo.",
]

# Chosen with `python sbi.py fit` on the calibration split (see calibration.json).
THRESHOLDS = {"pixel": 0.5, "face": 0.445, "band": [0.437, 0.628], "face_top_frac": 0.05}


def raw_cues(o, scale):
    """The five evidence cues, before dead zones (mirrors build_model.build)."""
    return {"blur": -o["dbg_smooth_raw"] / np.maximum(o["dbg_iqr"].reshape(-1, 1, 1), scale["blur"]),
            "sharp": o["dbg_sharp_raw"] / np.maximum(o["dbg_sharp_iqr"].reshape(-1, 1, 1), scale["sharp"]),
            "hue": o["dbg_perp"], "chroma": o["cue_colour"], "boundary": o["cue_boundary"]}


def features(o, dz, gate, smooth=True, scale=None):
    raw = raw_cues(o, scale)
    f = {k: gate * np.maximum(v - dz[k], 0.0) for k, v in raw.items()}
    return {k: gblur_maps(v, 3.0) for k, v in f.items()} if smooth else f


def pool_maps(a, k, fn):
    """Same-size k x k max/min pooling on [N,H,W] (borders ignore the outside)."""
    r = k // 2
    fill = -np.inf if fn is np.maximum else np.inf
    p = np.pad(a, ((0, 0), (r, r), (r, r)), constant_values=fill)
    H, W = a.shape[1:]
    h = p[:, :, 0:W].copy()
    for i in range(1, k):
        h = fn(h, p[:, :, i:i + W])
    v = h[:, 0:H].copy()
    for i in range(1, k):
        v = fn(v, h[:, i:i + H])
    return v


def opening(a, k):
    return pool_maps(pool_maps(a, k, np.minimum), k, np.maximum)


P_NO_EVIDENCE = 0.05   # forgery_prob of a face pixel with no evidence at all
DZ_PERCENTILES = [95.0, 97.0, 99.0]


def logistic(F, y, l2=1e-4, iters=100):
    """Class-balanced logistic regression (Newton-Raphson); F [n,d], returns (w, b).
    Positive pixels get the same total weight as negative ones."""
    A = np.concatenate([F, np.ones((len(F), 1))], 1)
    sw = np.where(y > 0, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    w = np.zeros(A.shape[1])
    reg = l2 * np.diag(np.r_[np.ones(A.shape[1] - 1), 0.0])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(A @ w, -30, 30)))
        g = A.T @ (sw * (p - y)) / len(y) + reg @ w
        H = (A * (sw * p * (1 - p))[:, None]).T @ A / len(y) + reg
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w[:-1], w[-1]


def best_f1_threshold(score, M, cands):
    best = (-1.0, None)
    for t in cands:
        tp, fp, fn = seg_stats(score, M, t)
        best = max(best, (2 * tp / max(2 * tp + fp + fn, 1), float(t)))
    return best


def fit_one(o, M, real, gate, dz_pct, scale):
    """Dead zones at dz_pct of the real calibration faces; relative weights by balanced
    logistic regression (non-negative); then the evidence is rescaled so that
    prob = 0.5 at the F1-optimal evidence level and prob = P_NO_EVIDENCE at zero."""
    face = gate >= 0.5
    raw0 = raw_cues(o, scale)
    dz = {k: float(np.percentile(v[real][:, face], dz_pct)) for k, v in raw0.items()}
    F = features(o, dz, gate, scale=scale)
    names = ["blur", "sharp", "hue", "chroma", "boundary"]
    sub = (slice(None), slice(1, None, 4), slice(1, None, 4))
    A = np.stack([F[k][sub].ravel() for k in names], 1)
    y = M[sub].ravel().astype(np.float64)
    active = list(range(len(names)))
    while True:  # non-negative weights: drop features that come out negative, refit
        w, _ = logistic(A[:, active], y)
        if (w >= 0).all():
            break
        active = [a for a, wi in zip(active, w) if wi >= 0]
    weights = np.zeros(len(names))
    weights[active] = w
    import build_model as bm
    F0 = features(o, dz, gate, smooth=False, scale=scale)
    E = gblur_maps(opening(sum(weights[i] * F0[n] for i, n in enumerate(names)), bm.OPEN_K), bm.OUT_SMOOTH)
    qs = np.unique(np.quantile(E[E > 0], np.linspace(0.0, 0.999, 400)))
    f1, e_thr = best_f1_threshold(E, M, qs)
    a = np.log((1 - P_NO_EVIDENCE) / P_NO_EVIDENCE) / e_thr
    combine = {"scale_" + k: v for k, v in scale.items()}
    combine.update({"dz_" + k: round(v, 4) for k, v in dz.items()})
    combine.update({"w_" + n: round(float(a * weights[i]), 4) for i, n in enumerate(names)})
    combine["bias"] = round(float(-a * e_thr), 4)
    return combine, f1


def fit():
    import build_model as bm
    t0 = time.time()
    X, M, kinds, _ = load_split("calibration_astronaut")
    o = run(session(bm.build(debug=True).SerializeToString()), X)
    real = np.array([k.startswith("real") for k in kinds])
    gate = bm.prior_map().astype(np.float64)
    # noise-evidence scale: the 90th percentile over the real calibration faces of the
    # floor's inter-quartile range (faces with a larger IQR are normalised by their own)
    scale = {"blur": round(float(np.percentile(o["dbg_iqr"][real], 90)), 4),
             "sharp": round(float(np.percentile(o["dbg_sharp_iqr"][real], 90)), 4)}
    cands = []
    for pct in DZ_PERCENTILES:
        combine, _ = fit_one(o, M, real, gate, pct, scale)
        prob = run(session(bm.build(combine).SerializeToString()), X)["forgery_prob"]
        f1, thr = best_f1_threshold(prob, M, np.round(np.arange(0.05, 0.951, 0.01), 2))
        fs = {frac: auc(face_score(prob, frac), ~real) for frac in FACE_FRAC_CHOICES}
        frac = max(FACE_FRAC_CHOICES, key=lambda f: (fs[f], -f))
        cands.append({"dz_percentile": pct, "combine": combine, "pixel_f1": round(f1, 4),
                      "pixel_f1_threshold": thr, "face_auc_by_top_frac": {str(k): r4(v) for k, v in fs.items()},
                      "face_top_frac": frac, "objective": round(f1 + fs[frac], 4), "prob": prob})
        print("dz_pct %.1f: pixel F1 %.4f @ %.2f, face AUC %s" % (pct, f1, thr, cands[-1]["face_auc_by_top_frac"]))
    best = max(cands, key=lambda c: c["objective"])
    prob, frac = best["prob"], best["face_top_frac"]
    for c in cands:
        c.pop("prob")
    s = face_score(prob, frac)
    # face threshold: Youden-optimal cut on the calibration faces (midpoint between the
    # two neighbouring scores); UNCERTAIN band: from the 90th percentile of the real
    # calibration faces to 1.25x the highest real calibration face.
    ts = np.unique(s)
    t_best = max(ts, key=lambda t: ((s[~real] >= t).mean() - (s[real] >= t).mean(), -t))
    below = s[s < t_best]
    face_thr = float((t_best + below.max()) / 2) if len(below) else float(t_best)
    band = [float(np.percentile(s[real], 90)), float(1.25 * s[real].max())]
    band = [min(band[0], face_thr), max(band[1], face_thr)]
    thresholds = {"pixel": 0.5, "face": round(face_thr, 3), "band": [round(band[0], 3), round(band[1], 3)],
                  "face_top_frac": frac}
    out = {"chosen": best, "thresholds": thresholds, "candidates": cands,
           "calibration_face_scores": {"real_max": r4(s[real].max()), "real_p90": r4(np.percentile(s[real], 90)),
                                       "real_median": r4(np.median(s[real])),
                                       "forged_p10_p25_p50": [r4(v) for v in np.percentile(s[~real], [10, 25, 50])]}}
    print("fit took %.1f s" % (time.time() - t0))
    print(json.dumps(out, indent=1))
    with open(os.path.join(HERE, "fit_output.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")


# ---------------------------------------------------------------------------
# evaluation of the built model
# ---------------------------------------------------------------------------
def split_metrics(prob, M, kinds, pixel_thr, face_thr, band, frac, cues=None):
    real = np.array([k.startswith("real") for k in kinds])
    scores = face_score(prob, frac)
    face = face_region()
    out = {}
    groups = [(t, np.array([k == t for k in kinds])) for t in TRANSFORMS]
    groups.append(("all_forged", ~real))
    for name, sel in groups:
        if not sel.any():
            continue
        p, m = prob[sel], M[sel]
        tp, fp, fn = seg_stats(p, m, pixel_thr)
        per_iou, per_f1, per_auc = [], [], []
        for pi, mi in zip(p, m):
            a, b, c = seg_stats(pi, mi, pixel_thr)
            per_iou.append(a / max(a + b + c, 1))
            per_f1.append(2 * a / max(2 * a + b + c, 1))
            per_auc.append(auc(pi, mi))
        s = scores[sel]
        out[name] = {
            "n_images": int(sel.sum()),
            "pixel_auc_pooled_crop": r4(auc(p, m)),
            "pixel_auc_pooled_face_region": r4(auc(p[:, face], m[:, face])),
            "pixel_auc_mean_per_image": r4(np.mean(per_auc)),
            "iou_pooled": r4(tp / max(tp + fp + fn, 1)),
            "f1_pooled": r4(2 * tp / max(2 * tp + fp + fn, 1)),
            "iou_mean_per_image": r4(np.mean(per_iou)),
            "f1_mean_per_image": r4(np.mean(per_f1)),
            "face_score_median": r4(np.median(s)),
            "face_score_p10_p90": [r4(np.percentile(s, 10)), r4(np.percentile(s, 90))],
            "image_auc_vs_real": r4(auc(np.r_[s, scores[real]], np.r_[np.ones(len(s), bool), np.zeros(real.sum(), bool)])) if real.any() else None,
            "detected_at_face_threshold": r4((s >= face_thr).mean()),
            "uncertain_band_fraction": r4(((s >= band[0]) & (s < band[1])).mean()),
            "detected_above_band": r4((s >= band[1]).mean()),
        }
    if real.any():
        p = prob[real]
        s = scores[real]
        per_variant = {}
        for k in sorted(set(kinds[i] for i in np.nonzero(real)[0])):
            sk = scores[np.array([kk == k for kk in kinds])]
            per_variant[k[5:]] = [r4(v) for v in sk]
        out["real"] = {
            "n_images": int(real.sum()),
            "pixel_false_positive_rate_crop": r4((p >= pixel_thr).mean()),
            "pixel_false_positive_rate_face_region": r4((p[:, face] >= pixel_thr).mean()),
            "face_score_max": r4(s.max()), "face_score_median": r4(np.median(s)),
            "false_alarms_at_face_threshold": r4((s >= face_thr).mean()),
            "in_uncertain_band": r4(((s >= band[0]) & (s < band[1])).mean()),
            "above_band": r4((s >= band[1]).mean()),
            "face_scores_by_variant": per_variant,
        }
    if cues is not None:
        out["cue_means_in_vs_out_of_mask_face_region"] = {}
        for t, sel in groups[:-1]:
            if not sel.any():
                continue
            row = {}
            for cn, cv in cues.items():
                v = cv[sel][:, face]
                m = M[sel][:, face]
                row[cn] = [r4(v[m].mean()) if m.any() else None, r4(v[~m].mean())]
            out["cue_means_in_vs_out_of_mask_face_region"][t] = row
        rv = {cn: r4(cv[real][:, face].mean()) for cn, cv in cues.items()}
        out["cue_means_in_vs_out_of_mask_face_region"]["real"] = rv
        # does cue_boundary peak on the blend edge? edge band = 9x9 dilation minus erosion
        # of the truth mask; AUC of cue_boundary (band vs everything else, face region)
        fg = ~real
        mf = M[fg].astype(np.float64)
        band = (pool_maps(mf, 9, np.maximum) > 0) & ~(pool_maps(mf, 9, np.minimum) > 0)
        out["cue_boundary_auc_edge_band_vs_rest_face_region"] = r4(auc(cues["cue_boundary"][fg][:, face], band[:, face]))
    return out


def evaluate(model_path=None, splits=None, write=True):
    import build_model as bm
    import hashlib
    import platform
    model_path = model_path or os.path.join(HERE, bm.MODEL_NAME)
    data = open(model_path, "rb").read()
    sess = session(data)
    th = THRESHOLDS
    fo = os.path.join(HERE, "fit_output.json")
    if os.path.exists(fo):  # the pasted constants must be the fitted ones
        fit_out = json.load(open(fo))
        if fit_out["chosen"]["combine"] != bm.COMBINE or fit_out["thresholds"] != th:
            raise SystemExit("build_model.COMBINE / sbi.THRESHOLDS differ from fit_output.json")
    res = {}
    cue_thresholds = None
    for split in (splits or SPLITS):
        t0 = time.time()
        X, M, kinds, _ = load_split(split)
        o = run(sess, X)
        cues = {k: o[k] for k in ("cue_noise", "cue_colour", "cue_boundary")}
        res[split] = split_metrics(o["forgery_prob"], M, kinds, th["pixel"], th["face"], th["band"],
                                   th["face_top_frac"], cues)
        if split == "calibration_astronaut":
            # levels that justify a claim in an explanation: 2.5th / 97.5th percentile of
            # each cue over the face region of the REAL calibration crops
            real = np.array([k.startswith("real") for k in kinds])
            face = face_region()
            pc = {k: np.percentile(v[real][:, face], [2.5, 97.5]) for k, v in cues.items()}
            cue_thresholds = {"blurBelow": round(float(pc["cue_noise"][0]), 2),
                              "sharpenAbove": round(float(pc["cue_noise"][1]), 2),
                              "colourAbove": round(float(pc["cue_colour"][1]), 1),
                              "boundaryAbove": round(float(pc["cue_boundary"][1]), 2)}
        print(split, "%.1f s" % (time.time() - t0), json.dumps({k: v for k, v in res[split].items() if k in ("all_forged", "real")}, indent=0))
    if write:
        out = {
            "model": os.path.basename(model_path),
            "sha256": hashlib.sha256(data).hexdigest(),
            "command": "cd models/forensic-inconsistency && python build_model.py && python sbi.py eval",
            "machine": "%s, %d CPU cores, %s, Python %s, onnxruntime %s (CPU)" % (
                platform.machine(), os.cpu_count(), platform.system(), platform.python_version(),
                __import__("onnxruntime").__version__),
            "thresholds": th,
            "cue_thresholds": cue_thresholds,
            "cue_thresholds_rule": "2.5th (blurBelow, on cue_noise) / 97.5th percentile of each cue over the "
                                   "face region of the real calibration crops (astronaut.png variants)",
            "combine_weights": bm.COMBINE,
            "protocol": {
                "calibration": "weights, dead zones, pixel threshold, face-score definition and face "
                               "threshold fitted ONLY on split 'calibration_astronaut' (sbi.py fit)",
                "report": "all other splits are disjoint: different seeds, different box jitter, "
                          "and report_camera is a different (greyscale) photo",
                "splits": {k: {"photo": v[0], "seeds": [v[1], v[1] + v[2] - 1], "n_forged": v[2],
                               "post_processing": v[3],
                               "n_real": len(NEG_VARIANTS) * NEG_REPEATS} for k, v in SPLITS.items()},
                "ground_truth": "pixel is forged iff the soft blend mask >= 0.5 after crop/resize",
                "face_score": "mean of the top %.1f%% of forgery_prob over the 256x256 crop" % (100 * th["face_top_frac"]),
                "forgery_transforms": {
                    "colour": "HSV hue shift +-3..12 deg, saturation x0.65..0.9 or x1.12..1.4, value x0.9..1.1, RGB shift +-10/255",
                    "blur": "Gaussian sigma 1..3 px at the photo's resolution",
                    "sharpen": "unsharp mask sigma 0.8..2 px, amount 0.5..1.5",
                    "blur+colour": "both", "sharpen+colour": "both"},
                "regions": "1..3 of %s; ellipses jittered +-4%% of the box, scaled 0.85..1.25, edge blur sigma 2.5..5%% of box width" % sorted(REGIONS),
                "real_variants": [v[0] for v in NEG_VARIANTS],
                "crop": "face box expanded 1.5x (square, around its centre), resized to 256 with Lanczos; box jittered +-4%",
            },
            "design_history_disclosure": DESIGN_HISTORY,
            "results": res,
        }
        with open(os.path.join(HERE, "calibration.json"), "w") as fh:
            json.dump(out, fh, indent=1)
            fh.write("\n")
    return res


def samples(out_dir, per_split=6):
    """PNG strips: crop | ground truth | forgery_prob | cue_noise | cue_colour | cue_boundary."""
    import build_model as bm
    os.makedirs(out_dir, exist_ok=True)
    sess = session(open(os.path.join(HERE, bm.MODEL_NAME), "rb").read())

    def grey(a, lo, hi):
        return np.repeat((np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)[..., None], 3, -1)

    for split in SPLITS:
        X, M, kinds, _ = load_split(split)
        idx = list(range(per_split)) + [len(X) - NEG_REPEATS * len(NEG_VARIANTS)]
        o = run(sess, X[idx])
        rows = []
        for j, i in enumerate(idx):
            rows.append(np.concatenate([
                (X[i].transpose(1, 2, 0) * 255).astype(np.uint8), grey(M[i].astype(np.float32), 0, 1),
                grey(o["forgery_prob"][j], 0, 1), grey(o["cue_noise"][j], -1, 1),
                grey(o["cue_colour"][j], 0, 20), grey(o["cue_boundary"][j], 0, 3)], 1))
        path = os.path.join(out_dir, split + ".png")
        Image.fromarray(np.concatenate(rows, 0)).save(path)
        print(path, [kinds[i] for i in idx])


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "eval"
    sys.path.insert(0, HERE)
    if cmd == "fit":
        fit()
    elif cmd == "eval":
        evaluate()
    elif cmd == "samples":
        samples(sys.argv[2])
    else:
        sys.exit(__doc__)
