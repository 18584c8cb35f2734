#!/usr/bin/env python3
"""Build the localizer evaluation set from the two evaluation faces ONLY (issue #17).

  python make_eval.py [OUT_DIR] [--seed 1000000000] [--per-recipe 3]

OUT_DIR defaults to .cache/eval-localizer/. Needs requirements-eval.txt only (no torch).
For each identity (astronaut, camera), each recipe (every training recipe, plus the HELD-OUT
recipes the training kit never used: cv2.xphoto FSR inpainting, clone-stamp patch fill, Laplacian
pyramid splicing) and each seed: the forgery clean (PNG), laundered as social networks do (half
size + JPEG q80, a .jpg) and greyscale (PNG), each with a full-size mask PNG (255 = edited); and
>= 20 real variants (recompressed, resized, upscaled, mirrored, ...) with mask null.
Splices take their donor part from the other evaluation face (nothing else is used).
index.jsonl, one line per image:
  {"file", "mask", "recipe", "laundering", "types", "real", "heldOut", "identity", "seed"}
Seeds start at 10**9; training data uses seeds below 10**6. Deterministic for a given --seed.
"""
import argparse
import hashlib
import json
import os

import cv2
import numpy as np
from PIL import Image

import recipes as R

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FACES = {"astronaut": os.path.join(ROOT, "testdata", "faces", "astronaut.png"),
         "camera": os.path.join(ROOT, "testdata", "faces", "camera.png")}


def inpaint_method(m):
    return lambda img, pts, rng, donor=None: R.r_inpaint(img, pts, rng, donor, method=m)


EVAL_RECIPES = {  # name -> (function, held out?)
    "sbi": (R.r_sbi, False),
    "inpaint_telea": (inpaint_method("telea"), False),
    "inpaint_ns": (inpaint_method("ns"), False),
    "splice_poisson": (R.r_splice_poisson, False),
    "splice_alpha": (R.r_splice_alpha, False),
    "recolour": (R.r_recolour, False),
    "smooth": (R.r_smooth, False),
    "sharpen": (R.r_sharpen, False),
    "combo": (R.r_combo, False),
    "inpaint_fsr": (R.h_inpaint_fsr, True),
    "patch_fill": (R.h_patch_fill, True),
    "splice_laplacian": (R.h_splice_laplacian, True),
}


def face_data():
    from sources import FaceTools
    tools = FaceTools()
    out = {}
    for name, path in FACES.items():
        pil = Image.open(path)
        rgb = np.array(pil.convert("RGB"))
        dets = sorted(tools.detect(rgb), key=lambda d: -d[4])
        if not dets:
            raise SystemExit(f"no face found in {path}")
        pts = tools.landmarks(rgb, dets[0])
        if pts is None:
            raise SystemExit(f"no face mesh for {path}")
        out[name] = dict(img=rgb, pts=pts, grey=pil.mode == "L")
    return out


def save_img(path, img, grey, jpeg_q=None):
    pil = Image.fromarray(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)) if grey else Image.fromarray(img)
    if jpeg_q:
        pil.save(path, "JPEG", quality=jpeg_q)
    else:
        pil.save(path, "PNG")


def laundered(img, mask, kind):
    """(image, mask, grey?, jpeg quality) of one laundering."""
    if kind == "clean":
        return img, mask, False, None
    if kind == "half_jpeg80":
        h, w = img.shape[:2]
        small = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        m = None if mask is None else (cv2.resize(mask.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA) >= 0.5).astype(np.uint8)
        return small, m, False, 80
    if kind == "grey":
        return img, mask, True, None
    raise ValueError(kind)


REAL_VARIANTS = ["original", "jpeg95", "jpeg85", "jpeg70", "jpeg50", "double_jpeg", "webp80", "half", "half_jpeg80",
                 "quarter_up", "up2x", "up1_5x_jpeg90", "mirror", "mirror_jpeg80", "grey", "blur", "noise",
                 "rot5", "crop_pad"]


def real_variant(img, kind, rng):
    """(image, jpeg quality or None, webp?) of one real variant."""
    h, w = img.shape[:2]
    if kind == "original":
        return img, None
    if kind.startswith("jpeg"):
        return img, int(kind[4:])
    if kind == "double_jpeg":
        return R.jpeg(cv2.resize(R.jpeg(img, 90), (int(w * 0.8), int(h * 0.8)), interpolation=cv2.INTER_AREA), 85), 85
    if kind == "webp80":
        return R.webp(img, 80), None
    if kind == "half":
        return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), None
    if kind == "half_jpeg80":
        return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), 80
    if kind == "quarter_up":  # an upscaled small frame (the kind of real photo the old model called forged)
        small = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), None
    if kind == "up2x":
        return cv2.resize(img, (w * 2, h * 2), interpolation=cv2.INTER_CUBIC), None
    if kind == "up1_5x_jpeg90":
        return cv2.resize(img, (int(w * 1.5), int(h * 1.5)), interpolation=cv2.INTER_LINEAR), 90
    if kind == "mirror":
        return img[:, ::-1].copy(), None
    if kind == "mirror_jpeg80":
        return img[:, ::-1].copy(), 80
    if kind == "grey":
        return np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, 2), None
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), 0.8), None
    if kind == "noise":
        return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8), None
    if kind == "rot5":
        M = cv2.getRotationMatrix2D((w / 2, h / 2), 5, 1.0)
        return cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), None
    if kind == "crop_pad":
        return cv2.copyMakeBorder(img[h // 10:, w // 12:], 0, h // 10, 0, w // 12, cv2.BORDER_REFLECT), None
    raise ValueError(kind)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=os.path.join(ROOT, ".cache", "eval-localizer"))
    ap.add_argument("--seed", type=int, default=10 ** 9)
    ap.add_argument("--per-recipe", type=int, default=3)
    a = ap.parse_args()
    assert a.seed >= 10 ** 9, "evaluation seeds start at 10**9 (training uses seeds below 10**6)"
    faces = face_data()
    os.makedirs(a.out, exist_ok=True)
    lines = []
    names = list(faces)
    for ident in names:
        f = faces[ident]
        other = faces[[n for n in names if n != ident][0]]
        donor = (other["img"], other["pts"])
        for recipe, (fn, held) in EVAL_RECIPES.items():
            for k in range(a.per_recipe):
                seed = a.seed + int(hashlib.sha256(f"{ident}/{recipe}/{k}".encode()).hexdigest()[:6], 16)
                rng = np.random.default_rng(seed)
                for _ in range(8):  # an edit that changed (almost) nothing is drawn again, same rng stream
                    img, mask, types = fn(f["img"], f["pts"], rng, donor)
                    if mask.sum() >= 50:
                        break
                for lau in ("clean", "half_jpeg80", "grey"):
                    li, lm, grey, q = laundered(img, mask, lau)
                    grey = grey or f["grey"]  # the greyscale photo stays greyscale
                    d = os.path.join(ident, recipe, lau)
                    os.makedirs(os.path.join(a.out, d), exist_ok=True)
                    fn_img = os.path.join(d, f"s{k}.{'jpg' if q else 'png'}")
                    fn_mask = os.path.join(d, f"s{k}.mask.png")
                    save_img(os.path.join(a.out, fn_img), li, grey, q)
                    Image.fromarray(lm * 255).save(os.path.join(a.out, fn_mask))
                    lines.append(dict(file=fn_img, mask=fn_mask, recipe=recipe, laundering=lau, types=types, real=False,
                                      heldOut=held, identity=ident, seed=seed))
        for kind in REAL_VARIANTS:
            seed = a.seed + int(hashlib.sha256(f"{ident}/real/{kind}".encode()).hexdigest()[:6], 16)
            rng = np.random.default_rng(seed)
            img, q = real_variant(f["img"], kind, rng)
            d = os.path.join(ident, "real")
            os.makedirs(os.path.join(a.out, d), exist_ok=True)
            fn_img = os.path.join(d, f"{kind}.{'jpg' if q else 'png'}")
            save_img(os.path.join(a.out, fn_img), img, f["grey"] or kind == "grey", q)
            lau = "clean" if kind == "original" else kind
            lines.append(dict(file=fn_img, mask=None, recipe="real", laundering=lau, types=[], real=True, heldOut=False,
                              identity=ident, seed=seed))
    with open(os.path.join(a.out, "index.jsonl"), "w") as fh:
        for l in lines:
            fh.write(json.dumps(l) + "\n")
    n_real = sum(l["real"] for l in lines)
    print(f"{len(lines)} images ({len(lines) - n_real} forged, {n_real} real) in {a.out}")


if __name__ == "__main__":
    main()
