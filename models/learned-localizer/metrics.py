"""Validation metrics shared by train.py and calibrate.py (numpy only)."""
import numpy as np

TYPES = ["BLEND", "INPAINT", "SPLICE", "RECOLOUR", "SMOOTH", "SHARPEN"]


def auc(pos, neg):
    """Mann-Whitney AUC (ties count half); nan when a side is empty."""
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    _, inv, cnt = np.unique(allv, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(cnt) - (cnt - 1) / 2)[inv]
    rp = ranks[: len(pos)].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def face_scores(prob, top=0.05):
    """Mean of the top `top` fraction of each map (the contract's face score)."""
    n = prob.shape[0]
    flat = prob.reshape(n, -1)
    k = max(1, int(round(flat.shape[1] * top)))
    return np.sort(flat, 1)[:, -k:].mean(1)


def iou(prob, mask, thr):
    p = prob >= thr
    m = mask > 0
    inter = (p & m).sum((1, 2))
    union = (p | m).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def summarise(prob, types_p, masks, types_t, recipe, laundering, pixel_thr=0.5, type_thr=0.5, top=0.05):
    """Overall, per laundering and per recipe: mean IoU (forged only), pixel AUC, image AUC
    (face score, forged vs real), type accuracy (top-1 type among the true ones; forged only)
    and exact-set type accuracy at type_thr."""
    real = np.array([r == "real" for r in recipe])
    fs = face_scores(prob, top)
    ious = iou(prob, masks, pixel_thr)
    top1 = np.array([types_t[i, types_p[i].argmax()] > 0 if not real[i] else True for i in range(len(recipe))])
    exact = np.array([((types_p[i] >= type_thr) == (types_t[i] > 0)).all() for i in range(len(recipe))])

    def block(sel):
        f = sel & ~real
        r = sel & real
        sub = np.nonzero(sel)[0]
        px = prob[sub][:, ::4, ::4]
        mk = masks[sub][:, ::4, ::4] > 0
        return dict(n=int(sel.sum()), forged=int(f.sum()), real=int(r.sum()),
                    meanIoU=float(ious[f].mean()) if f.any() else None,
                    pixelAUC=auc(px[mk], px[~mk]) if mk.any() and (~mk).any() else None,
                    imageAUC=auc(fs[f], fs[real & lau_sel(sel)]) if f.any() else None,
                    typeTop1=float(top1[f].mean()) if f.any() else None,
                    typeExact=float(exact[sel].mean()) if sel.any() else None,
                    realMeanScore=float(fs[r].mean()) if r.any() else None)

    lau = np.array(laundering)
    lau_sel = lambda sel: np.ones_like(sel) if sel.all() else np.isin(lau, np.unique(lau[sel]))
    out = dict(overall=block(np.ones(len(recipe), bool)))
    out["byLaundering"] = {l: block(lau == l) for l in sorted(set(laundering))}
    out["byRecipe"] = {}
    rec = np.array(recipe)
    for r in sorted(set(recipe) - {"real"}):
        for l in sorted(set(laundering)):
            sel = (rec == r) & (lau == l)
            if sel.any():
                b = block(sel | ((rec == "real") & (lau == l)))
                out["byRecipe"][f"{r}/{l}"] = dict(n=int(sel.sum()), meanIoU=b["meanIoU"], imageAUC=b["imageAUC"], typeTop1=b["typeTop1"])
    return out
