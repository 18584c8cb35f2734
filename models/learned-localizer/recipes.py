"""Forgery recipes with pixel-exact masks, laundering, and the localizer crop (issue #17).

No torch here: make_eval.py (requirements-eval.txt) builds the evaluation set with the same code.

A recipe takes an RGB uint8 image, the 468 face-mesh landmarks (image pixels, or None for
non-face photos, where regions are random blobs), a numpy Generator, and optionally a donor
image with its landmarks, and returns (edited RGB uint8, mask uint8 0/1 of the edited pixels,
types). Ground truth is exact: for hard edits (inpainting, Poisson splice) the mask is the
set of pixels the algorithm was allowed to change; for feathered blends it is blend weight
>= 0.5 (the weight is what decides whose pixels show).

TRAIN_RECIPES are what training samples; HELD_OUT_RECIPES never appear in training (the kit
does not even import their code paths for training), so the evaluation can show what the
model does with an editing method it has never seen.
"""
import io

import cv2
import numpy as np
from PIL import Image

TYPES = ["BLEND", "INPAINT", "SPLICE", "RECOLOUR", "SMOOTH", "SHARPEN"]

# MediaPipe face-mesh (468) index sets for region shapes.
LIPS = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185]
LEFT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246]
RIGHT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466]
LEFT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
RIGHT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
NOSE = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 129, 358, 64, 294, 48, 278, 49, 279]
OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152,
        148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
FOREHEAD = [10, 338, 297, 332, 284, 109, 67, 103, 54] + LEFT_BROW + RIGHT_BROW
LEFT_CHEEK = [50, 101, 118, 117, 123, 147, 187, 205, 36, 142]
RIGHT_CHEEK = [280, 330, 347, 346, 352, 376, 411, 425, 266, 371]
INNER = [234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454,
         356, 389, 251, 284, 332, 297, 338, 10, 109, 67, 103, 54, 21, 162, 127]
REGIONS = {
    "mouth": [LIPS], "left_eye": [LEFT_EYE], "right_eye": [RIGHT_EYE], "eyes": [LEFT_EYE, RIGHT_EYE],
    "nose": [NOSE], "left_cheek": [LEFT_CHEEK], "right_cheek": [RIGHT_CHEEK], "cheeks": [LEFT_CHEEK, RIGHT_CHEEK],
    "forehead": [FOREHEAD], "brows": [LEFT_BROW, RIGHT_BROW], "skin": [OVAL],
}
PART_REGIONS = ["mouth", "left_eye", "right_eye", "eyes", "nose", "left_cheek", "right_cheek", "brows", "forehead"]


# ----------------------------------------------------------------------------- region masks
def face_size(pts):
    return float(np.linalg.norm(pts[454] - pts[234]))


def region_mask(shape, pts, region, rng, grow=0.0):
    """uint8 0/1 mask of a facial region: convex hull of its landmarks, grown by `grow` x face width."""
    m = np.zeros(shape[:2], np.uint8)
    for idx in REGIONS[region]:
        hull = cv2.convexHull(pts[idx].astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(m, hull, 1)
    if region == "skin":  # the skin without eyes, brows and mouth
        for idx in (LEFT_EYE, RIGHT_EYE, LIPS, LEFT_BROW, RIGHT_BROW):
            cv2.fillConvexPoly(m, cv2.convexHull(pts[idx].astype(np.float32)).astype(np.int32), 0)
    r = int(round(grow * face_size(pts)))
    if r > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return m


def blob_mask(shape, rng, centre=None, size=None):
    """Random smooth blob (for non-face photos and free-form edits)."""
    H, W = shape[:2]
    size = size or rng.uniform(0.08, 0.3) * min(H, W)
    cx, cy = centre if centre is not None else (rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H)
    n = rng.integers(6, 12)
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = size * rng.uniform(0.4, 1.0, n)
    poly = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [poly], 1)
    k = int(size * 0.3) | 1
    m = (cv2.GaussianBlur(m.astype(np.float32), (k, k), 0) > 0.5).astype(np.uint8)
    return m


def pick_region(shape, pts, rng, choices=PART_REGIONS, grow=(0.0, 0.06)):
    if pts is None:
        return blob_mask(shape, rng), "blob"
    reg = choices[rng.integers(len(choices))]
    m = region_mask(shape, pts, reg, rng, rng.uniform(*grow))
    if m.sum() < 30:
        return blob_mask(shape, rng), "blob"
    return m, reg


def feather(mask, rng, frac=(0.02, 0.08)):
    """Soft blend weight from a 0/1 mask: Gaussian-blurred with sigma as a fraction of the mask's size."""
    ys, xs = np.nonzero(mask)
    ext = max(4, int(max(xs.ptp(), ys.ptp()))) if len(xs) else 4
    s = max(0.8, rng.uniform(*frac) * ext * 2)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), s)


def blend(a, b, w):
    out = a.astype(np.float32) * (1 - w[..., None]) + b.astype(np.float32) * w[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def truth_from_weight(orig, edited, w):
    """Ground truth of a soft blend: weight >= 0.5 where the pixels really changed, with pinholes
    closed (flat or dark areas where an edit happened to leave a pixel's value unchanged) but
    never outside the weight >= 0.5 region."""
    inside = w >= 0.5
    changed = np.abs(orig.astype(np.int16) - edited.astype(np.int16)).max(2) > 0
    m = (inside & changed).astype(np.uint8)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    return (m.astype(bool) & inside).astype(np.uint8)


# ----------------------------------------------------------------------------- pixel transforms
def colour_jitter(img, rng, strength=1.0):
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8) * strength) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.25) ** strength, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(0.88, 1.12) ** strength + rng.uniform(-6, 6), 0, 255)
    out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out += rng.uniform(-6, 6, 3) * strength
    return np.clip(out, 0, 255).astype(np.uint8)


def unsharp(img, rng, amount=None, sigma=None):
    sigma = sigma or rng.uniform(0.8, 2.5)
    amount = amount or rng.uniform(0.6, 2.0)
    bl = cv2.GaussianBlur(img.astype(np.float32), (0, 0), sigma)
    return np.clip(img + amount * (img - bl), 0, 255).astype(np.uint8)


def smooth_op(img, rng, size):
    kind = rng.choice(["bilateral", "freqsep", "guided", "gauss"], p=[0.4, 0.25, 0.2, 0.15])
    if kind == "bilateral":
        d = int(np.clip(size * rng.uniform(0.03, 0.08), 5, 25))
        out = img
        for _ in range(rng.integers(1, 3)):
            out = cv2.bilateralFilter(out, d, rng.uniform(25, 90), rng.uniform(5, 25))
        return out, kind
    if kind == "freqsep":  # frequency separation: blur the low band, keep a fraction of the high band
        s = max(2.0, size * rng.uniform(0.015, 0.04))
        f = img.astype(np.float32)
        low = cv2.GaussianBlur(f, (0, 0), s)
        high = f - low
        low2 = cv2.GaussianBlur(low, (0, 0), s * rng.uniform(0.6, 1.5))
        return np.clip(low2 + high * rng.uniform(0.0, 0.6), 0, 255).astype(np.uint8), kind
    if kind == "guided" and hasattr(cv2, "ximgproc"):
        r = int(np.clip(size * rng.uniform(0.02, 0.05), 3, 16))
        return cv2.ximgproc.guidedFilter(img, img, r, (rng.uniform(0.005, 0.04) * 255) ** 2), kind
    return cv2.GaussianBlur(img, (0, 0), max(1.0, size * rng.uniform(0.005, 0.015))), "gauss"


def recolour_op(img, rng):
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HLS).astype(np.float32)
    mode = rng.integers(3)
    if mode == 0:
        hsv[..., 0] = (hsv[..., 0] + rng.choice([-1, 1]) * rng.uniform(6, 30)) % 180
    elif mode == 1:
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1.3, 2.0) if rng.random() < 0.6 else hsv[..., 2] * rng.uniform(0.3, 0.7), 0, 255)
    else:
        hsv[..., 1] = np.clip(hsv[..., 1] + rng.choice([-1, 1]) * rng.uniform(12, 40), 0, 255)
    if rng.random() < 0.4:  # often a mix (lipstick: hue and saturation)
        hsv[..., 2] = np.clip(hsv[..., 2] * rng.uniform(1.1, 1.5), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HLS2RGB)


# ----------------------------------------------------------------------------- recipes
def r_sbi(img, pts, rng, donor=None):
    """Self-blended image: the face blended with a slightly transformed copy of itself."""
    H, W = img.shape[:2]
    src = img
    t = rng.integers(4)
    if t in (0, 3):
        src = colour_jitter(src, rng)
    if t in (1, 3):
        src = cv2.GaussianBlur(src, (0, 0), rng.uniform(0.6, 2.0)) if rng.random() < 0.5 else unsharp(src, rng)
    if t == 2 or rng.random() < 0.5:
        s = rng.uniform(0.96, 1.04)
        M = np.float32([[s, 0, rng.uniform(-0.02, 0.02) * W + (1 - s) * W / 2], [0, s, rng.uniform(-0.02, 0.02) * H + (1 - s) * H / 2]])
        src = cv2.warpAffine(src, M, (W, H), borderMode=cv2.BORDER_REFLECT)
    if pts is not None and rng.random() < 0.6:
        m = np.zeros((H, W), np.uint8)
        hull = cv2.convexHull(pts[OVAL if rng.random() < 0.6 else INNER].astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(m, hull, 1)
        e = int(face_size(pts) * rng.uniform(0.0, 0.12))
        if e > 0:
            m = cv2.erode(m, np.ones((e, e), np.uint8))
    else:
        m, _ = pick_region(img.shape, pts, rng)
    w = feather(m, rng, (0.01, 0.06)) * rng.uniform(0.7, 1.0)
    out = blend(img, src, w)
    return out, truth_from_weight(img, out, w), ["BLEND"]


def r_inpaint(img, pts, rng, donor=None, method=None):
    m, _ = pick_region(img.shape, pts, rng, grow=(0.01, 0.05))
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    method = method or rng.choice(["telea", "ns"])
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    r = int(rng.integers(3, 9))
    out = cv2.cvtColor(cv2.inpaint(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), m * 255, r, flag), cv2.COLOR_BGR2RGB)
    return out, m, ["INPAINT"]


def donor_part(img, pts, rng, donor, m):
    """Pixels to splice into mask m: the same region of a donor face aligned by landmarks
    (similarity fit), or a patch of a donor photo, as an image of img's size."""
    H, W = img.shape[:2]
    dimg, dpts = donor
    if pts is not None and dpts is not None and rng.random() < 0.8:
        M, _ = cv2.estimateAffinePartial2D(dpts.astype(np.float32), pts.astype(np.float32))
        if M is not None:
            return cv2.warpAffine(dimg, M, (W, H), borderMode=cv2.BORDER_REFLECT)
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean(), xs.mean()
    dh, dw = dimg.shape[:2]
    sx, sy = rng.uniform(0.25, 0.75) * dw, rng.uniform(0.25, 0.75) * dh
    M = np.float32([[1, 0, sx - cx], [0, 1, sy - cy]])
    return cv2.warpAffine(dimg, M, (W, H), flags=cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)


def r_splice_poisson(img, pts, rng, donor):
    m, _ = pick_region(img.shape, pts, rng, grow=(0.01, 0.05))
    src = donor_part(img, pts, rng, donor, m)
    if rng.random() < 0.3:
        src = colour_jitter(src, rng, 0.5)
    ys, xs = np.nonzero(m)
    H, W = img.shape[:2]
    if len(xs) < 20 or xs.min() < 2 or ys.min() < 2 or xs.max() > W - 3 or ys.max() > H - 3:
        return r_splice_alpha(img, pts, rng, donor, m)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    centre = (int((x0 + x1) // 2), int((y0 + y1) // 2))
    mode = cv2.NORMAL_CLONE if rng.random() < 0.75 else cv2.MIXED_CLONE
    patch = np.ascontiguousarray(src[y0:y1, x0:x1])
    pm = np.ascontiguousarray(m[y0:y1, x0:x1] * 255)
    try:
        out = cv2.seamlessClone(patch, img, pm, centre, mode)
    except cv2.error:
        return r_splice_alpha(img, pts, rng, donor, m)
    # Poisson cloning rewrites every pixel inside the mask (and nothing outside): truth = mask
    return out, m, ["SPLICE"]


def r_splice_alpha(img, pts, rng, donor, m=None):
    if m is None:
        m, _ = pick_region(img.shape, pts, rng, grow=(0.01, 0.05))
    src = donor_part(img, pts, rng, donor, m)
    if rng.random() < 0.5:  # match the mean colour, as a careful editor would
        mm = m.astype(bool)
        src = np.clip(src.astype(np.float32) - src[mm].mean(0) + img[mm].mean(0), 0, 255).astype(np.uint8)
    w = feather(m, rng, (0.005, 0.05))
    out = blend(img, src, w)
    return out, truth_from_weight(img, out, w), ["SPLICE"]


def r_recolour(img, pts, rng, donor=None):
    if pts is not None:
        reg = rng.choice(["mouth", "cheeks", "left_cheek", "right_cheek", "eyes", "skin", "brows", "forehead"],
                         p=[0.3, 0.15, 0.07, 0.07, 0.12, 0.14, 0.05, 0.1])
        m = region_mask(img.shape, pts, reg, rng, rng.uniform(0, 0.02))
    else:
        m = blob_mask(img.shape, rng)
    w = feather(m, rng, (0.01, 0.05))
    out = blend(img, recolour_op(img, rng), w)
    return out, truth_from_weight(img, out, w), ["RECOLOUR"]


def r_smooth(img, pts, rng, donor=None):
    if pts is not None:
        reg = rng.choice(["skin", "cheeks", "left_cheek", "right_cheek", "forehead", "nose"], p=[0.35, 0.25, 0.1, 0.1, 0.12, 0.08])
        m = region_mask(img.shape, pts, reg, rng, rng.uniform(0, 0.03))
        size = face_size(pts)
    else:
        m = blob_mask(img.shape, rng)
        size = min(img.shape[:2]) * 0.5
    sm, _ = smooth_op(img, rng, size)
    w = feather(m, rng, (0.01, 0.05))
    out = blend(img, sm, w)
    return out, truth_from_weight(img, out, w), ["SMOOTH"]


def r_sharpen(img, pts, rng, donor=None):
    m, _ = pick_region(img.shape, pts, rng, choices=PART_REGIONS + ["skin"], grow=(0.0, 0.04))
    w = feather(m, rng, (0.01, 0.05))
    out = blend(img, unsharp(img, rng), w)
    return out, truth_from_weight(img, out, w), ["SHARPEN"]


SINGLE = {"sbi": r_sbi, "inpaint": r_inpaint, "splice_poisson": r_splice_poisson, "splice_alpha": r_splice_alpha,
          "recolour": r_recolour, "smooth": r_smooth, "sharpen": r_sharpen}


def r_combo(img, pts, rng, donor):
    names = list(rng.choice(list(SINGLE), 2, replace=False))
    mask = np.zeros(img.shape[:2], np.uint8)
    types = []
    out = img
    for n in names:
        out, m, t = SINGLE[n](out, pts, rng, donor)
        mask |= m
        types += t
    return out, mask, sorted(set(types), key=TYPES.index)


# Trained recipes and their sampling weights (inpaint covers Telea and Navier-Stokes).
TRAIN_RECIPES = {"sbi": (r_sbi, 0.17), "inpaint": (r_inpaint, 0.17), "splice_poisson": (r_splice_poisson, 0.13),
                 "splice_alpha": (r_splice_alpha, 0.1), "recolour": (r_recolour, 0.13), "smooth": (r_smooth, 0.12),
                 "sharpen": (r_sharpen, 0.07), "combo": (r_combo, 0.11)}


# ----------------------------------------------------------------------------- held-out recipes
def h_inpaint_fsr(img, pts, rng, donor=None):
    """HELD OUT: cv2.xphoto FSR (frequency-selective reconstruction) inpainting."""
    m, _ = pick_region(img.shape, pts, rng, grow=(0.01, 0.04))
    m = cv2.dilate(m, np.ones((3, 3), np.uint8))
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    out = np.zeros_like(bgr)
    cv2.xphoto.inpaint(bgr, (1 - m) * 255, out, cv2.xphoto.INPAINT_FSR_FAST)
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB), m, ["INPAINT"]


def h_patch_fill(img, pts, rng, donor=None):
    """HELD OUT: exemplar fill, the region replaced by a displaced patch of the same photo
    (clone-stamp), edges feathered by 2 px."""
    m, _ = pick_region(img.shape, pts, rng, choices=["left_cheek", "right_cheek", "forehead", "mouth", "nose"], grow=(0.0, 0.03))
    ys, xs = np.nonzero(m)
    H, W = img.shape[:2]
    ext = max(xs.ptp(), ys.ptp()) + 1
    ang = rng.uniform(0, 2 * np.pi)
    dx, dy = int(np.cos(ang) * ext * 1.1), int(np.sin(ang) * ext * 0.6)
    M = np.float32([[1, 0, dx], [0, 1, dy]])
    src = cv2.warpAffine(img, M, (W, H), flags=cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
    w = cv2.GaussianBlur(m.astype(np.float32), (0, 0), 2.0)
    out = blend(img, src, w)
    return out, truth_from_weight(img, out, w), ["INPAINT"]


def h_splice_laplacian(img, pts, rng, donor):
    """HELD OUT: a part from another face blended by a Laplacian pyramid (multiband blending)."""
    m, _ = pick_region(img.shape, pts, rng, grow=(0.01, 0.05))
    src = donor_part(img, pts, rng, donor, m)
    levels = 5
    a, b = img.astype(np.float32), src.astype(np.float32)
    wm = m.astype(np.float32)
    ga, gb, gm = [a], [b], [wm]
    for _ in range(levels):
        ga.append(cv2.pyrDown(ga[-1])); gb.append(cv2.pyrDown(gb[-1])); gm.append(cv2.pyrDown(gm[-1]))
    out = ga[-1] * (1 - gm[-1][..., None]) + gb[-1] * gm[-1][..., None]
    for i in range(levels - 1, -1, -1):
        size = (ga[i].shape[1], ga[i].shape[0])
        la = ga[i] - cv2.pyrUp(ga[i + 1], dstsize=size)
        lb = gb[i] - cv2.pyrUp(gb[i + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + la * (1 - gm[i][..., None]) + lb * gm[i][..., None]
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    # truth: the donor dominates (the level-0 weight is the hard mask; low bands spread wider)
    return out, m.copy(), ["SPLICE"]


HELD_OUT_RECIPES = {"inpaint_fsr": h_inpaint_fsr, "patch_fill": h_patch_fill, "splice_laplacian": h_splice_laplacian}


# ----------------------------------------------------------------------------- laundering
def jpeg(img, q):
    b = io.BytesIO()
    Image.fromarray(img).save(b, "JPEG", quality=int(q))
    return np.array(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))


def webp(img, q):
    b = io.BytesIO()
    Image.fromarray(img).save(b, "WEBP", quality=int(q))
    return np.array(Image.open(io.BytesIO(b.getvalue())).convert("RGB"))


def resample(img, k, rng=None, back=True):
    H, W = img.shape[:2]
    w2, h2 = max(8, int(round(W * k))), max(8, int(round(H * k)))
    interp = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][rng.integers(3)] if rng is not None else cv2.INTER_AREA
    small = cv2.resize(img, (w2, h2), interpolation=interp)
    if not back:
        return small
    up = [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4][rng.integers(3)] if rng is not None else cv2.INTER_LINEAR
    return cv2.resize(small, (W, H), interpolation=up)


def rotate(img, mask, box, deg):
    """Rotate image and mask about the face centre; the detector box of the tilted face is the
    same centre, side grown as a detector's box of a tilted face grows."""
    x, y, w, h = box
    c = (x + w / 2, y + h / 2)
    M = cv2.getRotationMatrix2D(c, deg, 1.0)
    H, W = img.shape[:2]
    img = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = cv2.warpAffine(mask.astype(np.float32), M, (W, H), flags=cv2.INTER_LINEAR) >= 0.5
    g = 1 + 0.25 * abs(np.sin(np.radians(deg)))
    return img, mask.astype(np.uint8), (c[0] - w * g / 2, c[1] - h * g / 2, w * g, h * g)


def launder(img, mask, box, rng, strength=1.0):
    """Random social-network laundering. Geometry (rotation) moves the mask too; everything else
    acts on pixels only. Returns (img, mask, box, list of steps)."""
    steps = []
    if rng.random() < 0.25 * strength:
        deg = rng.uniform(-30, 30)
        img, mask, box = rotate(img, mask, box, deg)
        steps.append(f"rot{deg:.0f}")
    if rng.random() < 0.15:
        img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
        steps.append("grey")
    if rng.random() < 0.5 * strength:
        k = rng.uniform(0.3, 1.0)
        img = resample(img, k, rng)
        steps.append(f"scale{k:.2f}")
    if rng.random() < 0.15 * strength:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 1.0))
        steps.append("blur")
    if rng.random() < 0.15 * strength:
        img = np.clip(img + rng.normal(0, rng.uniform(1, 4), img.shape), 0, 255).astype(np.uint8)
        steps.append("noise")
    r = rng.random()
    if r < 0.45 * strength:
        q = rng.integers(50, 96)
        img = jpeg(img, q)
        steps.append(f"jpeg{q}")
        if rng.random() < 0.3:
            q2 = rng.integers(50, 96)
            img = jpeg(resample(img, rng.uniform(0.6, 1.0), rng) if rng.random() < 0.5 else img, q2)
            steps.append(f"jpeg{q2}")
    elif r < 0.55 * strength:
        q = rng.integers(50, 96)
        img = webp(img, q)
        steps.append(f"webp{q}")
    return img, mask, box, steps


# ----------------------------------------------------------------------------- crop convention
def crop_rect(box, scale=1.5):
    """As shared/src/face-crops.ts cropRectFor: side = round(max(w,h)*scale), centred, rounded."""
    x, y, w, h = box
    size = max(1, int(round(max(w, h) * scale)))
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - size / 2)), int(round(cy - size / 2)), size


def jitter_box(box, rng):
    """Detector variation the model must tolerate: scale +-15%, centre +-8% of the side."""
    x, y, w, h = box
    s = rng.uniform(0.85, 1.15)
    side = max(w, h)
    cx = x + w / 2 + rng.uniform(-0.08, 0.08) * side
    cy = y + h / 2 + rng.uniform(-0.08, 0.08) * side
    return (cx - w * s / 2, cy - h * s / 2, w * s, h * s)


def cut(img, rect, size=256, is_mask=False):
    """Crop with border pixels repeated where the square leaves the image, resized to size x size
    with Lanczos-3 (PIL LANCZOS = libvips lanczos3 kernel). Masks: area-resized weight >= 0.5."""
    x0, y0, s = rect
    H, W = img.shape[:2]
    pl, pt, pr, pb = max(0, -x0), max(0, -y0), max(0, x0 + s - W), max(0, y0 + s - H)
    if pl or pt or pr or pb:
        img = cv2.copyMakeBorder(img, pt, pb, pl, pr, cv2.BORDER_REPLICATE)
    c = img[y0 + pt: y0 + pt + s, x0 + pl: x0 + pl + s]
    if is_mask:
        return (cv2.resize(c.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA if s >= size else cv2.INTER_LINEAR) >= 0.5).astype(np.uint8)
    return np.array(Image.fromarray(np.ascontiguousarray(c)).resize((size, size), Image.LANCZOS))
