#!/usr/bin/env python3
"""Self-blended forgeries (SBI-style) from the two real test photos, plus calibration
and honest evaluation of forensic-inconsistency-v1.

  python sbi.py fit     # fit the few combination weights on the CALIBRATION split only
                        # (astronaut.png, seeds 0..CAL_N-1) and print them; they are
                        # then pasted into build_model.py COMBINE
  python sbi.py eval    # run the built .onnx on the calibration split and on the disjoint
                        # report splits; write calibration.json
  python sbi.py samples DIR  # write a few example crops / masks / maps as PNGs

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
    "eyes": [(0.30, 0.38, 0.13, 0.08), (0.70, 0.38, 0.13, 0.08)],
    "nose": [(0.50, 0.57, 0.09, 0.14)],
    "mouth": [(0.50, 0.76, 0.18, 0.08)],
    "left_cheek": [(0.24, 0.60, 0.12, 0.12)],
    "right_cheek": [(0.76, 0.60, 0.12, 0.12)],
    "forehead": [(0.50, 0.15, 0.30, 0.10)],
}

# Splits. CAL = what `fit` sees. The report splits are disjoint in seeds, and
# REPORT_CAMERA is a different photo altogether.
CAL_N = 120
SPLITS = {
    "calibration_astronaut": ("astronaut", 0, CAL_N),
    "report_astronaut_new_seeds": ("astronaut", 10000, 100),
    "report_camera": ("camera", 20000, 120),
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


def make_forgery(name, seed):
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
    c, gt = crop(u8, jitter_box(box, rng), m)
    info.update(regions=names)
    return c, gt >= 0.5, kind, info


def make_negatives(name, seed0):
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
            c = crop(u8, jitter_box(box, rng) if r > 0 or vname != "original" else box)
            out.append((c, vname))
    return out


def load_split(split):
    name, s0, n = SPLITS[split]
    X, M, kinds, infos = [], [], [], []
    for s in range(s0, s0 + n):
        c, gt, kind, info = make_forgery(name, s)
        X.append(c), M.append(gt), kinds.append(kind), infos.append(info)
    for c, vname in make_negatives(name, s0 + 5000):
        X.append(c), M.append(np.zeros((SIZE, SIZE), bool)), kinds.append("real:" + vname), infos.append({})
    X = np.stack(X).transpose(0, 3, 1, 2).astype(np.float32)
    return X, np.stack(M), kinds, infos
