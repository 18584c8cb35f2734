#!/usr/bin/env python3
"""Training and validation crops for learned-localizer, made from the compact source cache.

  python data.py [--cache .cache/localizer/faces.npz] [--train 6000] [--val 900] [--seed 1]

Reads faces.npz (sources.py: face working regions, boxes, 468 landmarks, identity groups, non-face
photos), splits by identity group (a photo and every face cut from it, or every photo of one
person, stay on one side), and writes .cache/localizer/{train,val}.npz: uint8 crops [N,256,256,3],
masks [N,256,256], types [N,6], plus recipe / laundering / real labels for per-recipe metrics.
Every crop follows the crop convention (recipes.crop_rect + cut) with detector jitter.
Seeds: training data uses seeds < 10**6; make_eval.py uses seeds >= 10**9 (never overlapping).
"""
import argparse
import hashlib
import io
import os
import time

import cv2
import numpy as np
from PIL import Image

import recipes as R

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(ROOT, ".cache", "localizer")
VAL_SHARE = 0.2


def load(path):
    z = np.load(path, allow_pickle=True)
    dec = lambda b: np.array(Image.open(io.BytesIO(b.tobytes())).convert("RGB"))
    faces = [dict(img=dec(j), box=tuple(map(float, b)), pts=p, group=str(g), src=str(s))
             for j, b, p, g, s in zip(z["face_jpg"], z["face_box"], z["face_pts"], z["face_group"], z["face_src"])]
    photos = [dict(img=dec(j), group=str(g), src=str(s)) for j, g, s in zip(z["photo_jpg"], z["photo_group"], z["photo_src"])]
    return faces, photos


def val_groups(items):
    """Deterministic identity split: groups ordered by the sha256 of their name, the first
    VAL_SHARE of them (at least one) are validation."""
    groups = sorted({x["group"] for x in items}, key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    return set(groups[: max(1, int(round(len(groups) * VAL_SHARE)))])


def split(faces, photos):
    vf, vp = val_groups(faces), val_groups(photos)
    fv, ft = [f for f in faces if f["group"] in vf], [f for f in faces if f["group"] not in vf]
    pv, pt = [p for p in photos if p["group"] in vp], [p for p in photos if p["group"] not in vp]
    return (ft, pt), (fv, pv)


def photo_view(photo, rng):
    """A random square of a non-face photo posing as a face crop's surroundings: image, fake box."""
    img = photo["img"]
    H, W = img.shape[:2]
    s = int(min(H, W, rng.uniform(220, 700)))
    x0, y0 = rng.integers(0, W - s + 1), rng.integers(0, H - s + 1)
    reg = img[y0:y0 + s, x0:x0 + s]
    side = s / 1.5 / 1.1
    return reg, ((s - side) / 2, (s - side) / 2, side, side)


def face_view(face, rng):
    """The face's working region at a random resolution (a face is photographed at many sizes)."""
    img, box, pts = face["img"], face["box"], face["pts"]
    k = rng.uniform(0.45, 1.0) if rng.random() < 0.6 else 1.0
    if max(box[2], box[3]) * k < 60:
        k = 60 / max(box[2], box[3])
    if k < 1:
        img = cv2.resize(img, (int(round(img.shape[1] * k)), int(round(img.shape[0] * k))), interpolation=cv2.INTER_AREA)
        k2 = img.shape[1] / face["img"].shape[1]
        box = tuple(v * k2 for v in box)
        pts = pts * k2
    if rng.random() < 0.5:  # mirror (the mesh indices are not mirrored: region shapes stay valid as point sets)
        img = img[:, ::-1].copy()
        W = img.shape[1]
        box = (W - box[0] - box[2], box[1], box[2], box[3])
        pts = pts.copy()
        pts[:, 0] = W - pts[:, 0]
    return img, box, pts


def make_sample(rng, pool, recipe=None, laundering=None, real=None, p_real=0.28, p_photo=0.3):
    """One training crop. recipe: a TRAIN_RECIPES name or None (random); laundering: None (random
    50/50 clean or random laundering), 'clean', 'half_jpeg80' or 'random'."""
    faces, photos = pool
    use_photo = photos and rng.random() < p_photo
    if use_photo:
        img, box = photo_view(photos[rng.integers(len(photos))], rng)
        pts = None
    else:
        img, box, pts = face_view(faces[rng.integers(len(faces))], rng)
    real = (rng.random() < p_real) if real is None else real
    types = np.zeros(6, np.uint8)
    name = "real"
    if real:
        out, mask = img, np.zeros(img.shape[:2], np.uint8)
    else:
        name = recipe or rng.choice(list(R.TRAIN_RECIPES), p=np.array([w for _, w in R.TRAIN_RECIPES.values()]) / sum(w for _, w in R.TRAIN_RECIPES.values()))
        if rng.random() < 0.5 and photos:
            d = photos[rng.integers(len(photos))]
            donor = (photo_view(d, rng)[0], None)
        else:
            f = faces[rng.integers(len(faces))]
            donor = (f["img"], f["pts"])
        try:
            fn = R.TRAIN_RECIPES[name][0] if name in R.TRAIN_RECIPES else R.HELD_OUT_RECIPES[name]
            out, mask, t = fn(img, pts, rng, donor)
        except Exception as e:  # a degenerate region (tiny mask) just yields a real sample
            out, mask, t = img, np.zeros(img.shape[:2], np.uint8), []
            name = "real"
        for x in t:
            types[R.TYPES.index(x)] = 1
    laundering = laundering or ("clean" if rng.random() < 0.35 else "random")
    steps = []
    if laundering == "random":
        out, mask, box, steps = R.launder(out, mask, box, rng)
    elif laundering == "half_jpeg80":
        out = R.jpeg(R.resample(out, 0.5, None, back=False), 80)
        mask = (cv2.resize(mask.astype(np.float32), (out.shape[1], out.shape[0]), interpolation=cv2.INTER_AREA) >= 0.5).astype(np.uint8)
        box = tuple(v * out.shape[1] / img.shape[1] for v in box)
    elif laundering == "grey":
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None], 3, 2)
    rect = R.crop_rect(R.jitter_box(box, rng))
    crop = R.cut(out, rect)
    m = R.cut(mask, rect, is_mask=True)
    if not real and m.sum() == 0:
        types[:] = 0
        name = "real"
    return crop, m, types, name, laundering, use_photo


def build(pool, n, seed, fixed=False, recipe_list=None):
    crops = np.zeros((n, 256, 256, 3), np.uint8)
    masks = np.zeros((n, 256, 256), np.uint8)
    types = np.zeros((n, 6), np.uint8)
    names, laund, photo = [], [], []
    rl = (recipe_list or list(R.TRAIN_RECIPES)) + ["real"]
    t0 = time.time()
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        if fixed:  # validation: every recipe x {clean, half_jpeg80, random, grey} in turn, faces only
            rec = rl[i % len(rl)]
            lau = ["clean", "half_jpeg80", "random", "grey"][(i // len(rl)) % 4]
            c, m, t, nm, la, ph = make_sample(rng, (pool[0], []), None if rec == "real" else rec, lau, real=rec == "real")
        else:
            c, m, t, nm, la, ph = make_sample(rng, pool)
        crops[i], masks[i], types[i] = c, m, t
        names.append(nm); laund.append(la); photo.append(ph)
        if i % 500 == 0:
            print(f"  {i}/{n} {time.time() - t0:.0f}s", flush=True)
    return dict(crops=crops, masks=masks, types=types, recipe=np.array(names), laundering=np.array(laund), photo=np.array(photo))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.path.join(CACHE, "faces.npz"))
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=900)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=CACHE)
    ap.add_argument("--part", default="", help="write only train-<part>.npz (parallel generation) or 'val'")
    a = ap.parse_args()
    faces, photos = load(a.cache)
    tr, va = split(faces, photos)
    print(f"train: {len(tr[0])} faces ({len({f['group'] for f in tr[0]})} identities), {len(tr[1])} photos; "
          f"val: {len(va[0])} faces ({len({f['group'] for f in va[0]})} identities), {len(va[1])} photos")
    if a.part in ("", "val"):
        v = build(va, a.val, 999_000 + 7, fixed=True)
        np.savez(os.path.join(a.out, "val.npz"), **v, groups=np.array(sorted({f["group"] for f in va[0]})))
    if a.part == "valheld":  # held-out recipes on the validation faces: reported, never used for selection
        v = build(va, a.val, 999_100 + 7, fixed=True, recipe_list=list(R.HELD_OUT_RECIPES))
        np.savez(os.path.join(a.out, "val-heldout.npz"), **v)
        return
    if a.part != "val":
        t = build(tr, a.train, a.seed)
        np.savez(os.path.join(a.out, f"train-{a.part or a.seed}.npz"), **t, groups=np.array(sorted({f["group"] for f in tr[0]})))
    print("done")


if __name__ == "__main__":
    main()
