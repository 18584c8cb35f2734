#!/usr/bin/env python3
"""Calibrate learned-localizer's thresholds on the VALIDATION split only and write its manifest entry.

  python calibrate.py [--onnx learned-localizer-v1.onnx] [--run A]

Runs the exported ONNX (exactly the shipped artefact) with onnxruntime on .cache/localizer/val.npz
(identity-disjoint from training, never the evaluation faces) and chooses:
  pixelThreshold   the map level with the highest mean IoU over validation forgeries
  faceTopFraction  of {0.02, 0.05, 0.1}, the one with the highest image-level AUC
  faceThreshold    the face score with the highest balanced accuracy, forged vs real
  uncertainBand    lo = 90th percentile of real faces' scores (so at most ~10% of real faces
                   leave LIKELY_AUTHENTIC), hi = the larger of faceThreshold and the 98th percentile
                   of real scores (at most ~2% of real faces called LIKELY_FORGED); lo <= hi
  typeThreshold    one level for all six type probabilities, best exact-set accuracy
  typeThresholds   per type, best balanced accuracy of that label (reported; the contract reads one)
Writes manifest-entry.json and calibration.json (thresholds, validation metrics at them, per
recipe and laundering) next to this file.
"""
import argparse
import hashlib
import json
import os

import numpy as np

from metrics import TYPES, auc, face_scores, iou, summarise

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(ROOT, ".cache", "localizer")
OLD_ENTRY = os.path.join(ROOT, "models", "forensic-inconsistency", "manifest-entry.json")


def run_onnx(path, crops, bs=16):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    P, T = [], []
    for i in range(0, len(crops), bs):
        x = crops[i:i + bs].transpose(0, 3, 1, 2).astype(np.float32) / 255
        p, t = s.run(["forgery_prob", "manipulation_prob"], {"face": x})
        P.append(p[:, 0])
        T.append(t)
    return np.concatenate(P), np.concatenate(T)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onnx", default=os.path.join(HERE, "learned-localizer-v1.onnx"))
    ap.add_argument("--val", default=os.path.join(CACHE, "val.npz"))
    ap.add_argument("--run", default="")
    ap.add_argument("--heldout", default=os.path.join(CACHE, "val-heldout.npz"),
                    help="held-out recipes on the validation faces: reported at the chosen thresholds, not used to choose them")
    a = ap.parse_args()
    v = np.load(a.val)
    recipe, lau = list(v["recipe"]), list(v["laundering"])
    real = np.array([r == "real" for r in recipe])
    prob, types = run_onnx(a.onnx, v["crops"])
    masks, tt = v["masks"], v["types"]
    forged = ~real

    thr = np.round(np.arange(0.1, 0.91, 0.05), 2)
    mious = [float(iou(prob[forged], masks[forged], t).mean()) for t in thr]
    pixel_thr = float(thr[int(np.argmax(mious))])

    tops = {f: auc(face_scores(prob[forged], f), face_scores(prob[real], f)) for f in (0.02, 0.05, 0.1)}
    top = max(tops, key=tops.get)
    fs = face_scores(prob, top)
    cand = np.unique(np.round(fs, 3))
    bal = [0.5 * ((fs[forged] >= c).mean() + (fs[real] < c).mean()) for c in cand]
    face_thr = float(cand[int(np.argmax(bal))])
    lo = float(np.quantile(fs[real], 0.90))
    hi = float(max(face_thr, np.quantile(fs[real], 0.98)))
    lo = min(lo, hi)

    tcand = np.round(np.arange(0.1, 0.91, 0.05), 2)
    exact = [float(np.mean([((types[i] >= c) == (tt[i] > 0)).all() for i in range(len(tt))])) for c in tcand]
    type_thr = float(tcand[int(np.argmax(exact))])
    per_type = {}
    for j, n in enumerate(TYPES):
        pos, neg = types[tt[:, j] > 0, j], types[tt[:, j] == 0, j]
        if len(pos) and len(neg):
            b = [0.5 * ((pos >= c).mean() + (neg < c).mean()) for c in tcand]
            per_type[n] = dict(threshold=float(tcand[int(np.argmax(b))]), balancedAccuracy=float(max(b)), auc=auc(pos, neg))

    res = summarise(prob, types, masks, tt, recipe, lau, pixel_thr, type_thr, top)
    verdict = np.where(fs >= hi, "LIKELY_FORGED", np.where(fs < lo, "LIKELY_AUTHENTIC", "UNCERTAIN"))
    verdicts = {k: {vv: float((verdict[sel] == vv).mean()) for vv in ("LIKELY_FORGED", "UNCERTAIN", "LIKELY_AUTHENTIC")}
                for k, sel in (("real", real), ("forged", forged))}

    sha = hashlib.sha256(open(a.onnx, "rb").read()).hexdigest()
    old = json.load(open(OLD_ENTRY))
    entry = {
        "name": "learned-localizer",
        "version": "1.0.0",
        "task": "forgery-localization",
        "path": "models/learned-localizer/learned-localizer-v1.onnx",
        "sha256": sha,
        "inputSize": 256,
        "cropScale": 1.5,
        "input": "face",
        "output": "forgery_prob",
        "typesOutput": "manipulation_prob",
        "manipulationTypes": TYPES,
        "pixelThreshold": pixel_thr,
        "faceThreshold": round(face_thr, 4),
        "uncertainBand": [round(lo, 4), round(hi, 4)],
        "faceTopFraction": top,
        "typeThreshold": type_thr,
        # the cue maps are forensic-inconsistency's, merged in unchanged: its levels still hold
        "cueThresholds": old["cueThresholds"],
        "licence": "Apache-2.0",
    }
    with open(os.path.join(HERE, "manifest-entry.json"), "w") as f:
        json.dump(entry, f, indent=2)
        f.write("\n")
    held = None
    if os.path.exists(a.heldout):
        h = np.load(a.heldout)
        hp, ht = run_onnx(a.onnx, h["crops"])
        held = summarise(hp, ht, h["masks"], h["types"], list(h["recipe"]), list(h["laundering"]), pixel_thr, type_thr, top)
    cal = dict(onnx=os.path.basename(a.onnx), sha256=sha, run=a.run, split="validation (identity-disjoint from training; no evaluation face)",
               n=len(recipe), nForged=int(forged.sum()), nReal=int(real.sum()),
               pixelThresholdSearch=dict(zip(map(float, thr), mious)), faceTopFractionAUC=tops,
               faceThreshold=face_thr, uncertainBand=[lo, hi], typeThreshold=type_thr, typeThresholdExactAccuracy=dict(zip(map(float, tcand), exact)),
               typeThresholds=per_type, verdictsAtBand=verdicts, metrics=res, heldOutRecipesOnValidationFaces=held)
    with open(os.path.join(HERE, "calibration.json"), "w") as f:
        json.dump(cal, f, indent=1)
    o = res["overall"]
    print(json.dumps(entry, indent=1))
    print(f"validation: meanIoU {o['meanIoU']:.3f} pixelAUC {o['pixelAUC']:.3f} imageAUC {o['imageAUC']:.3f} typeTop1 {o['typeTop1']:.3f} "
          f"typeExact {o['typeExact']:.3f}; real: {verdicts['real']}")
    for k, b in res["byLaundering"].items():
        print(f"  {k}: meanIoU {b['meanIoU']} imageAUC {b['imageAUC']} typeTop1 {b['typeTop1']}")
    if held:
        o = held["overall"]
        print(f"held-out recipes on validation faces: meanIoU {o['meanIoU']:.3f} imageAUC {o['imageAUC']:.3f} typeTop1 {o['typeTop1']:.3f}")


if __name__ == "__main__":
    main()
