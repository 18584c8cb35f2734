#!/usr/bin/env python3
"""Train learned-localizer on the crops data.py made (CPU here, CUDA on the device machine).

  nice -n 10 python train.py --run A --minutes 35 [--width 1.0] [--cues] [--early]

Writes .cache/localizer/runs/<run>/{last.pt,best.pt,metrics.jsonl,log.txt}. Validation (the
identity-disjoint split from data.py) every --val-every minutes; best.pt is the checkpoint with
the highest meanIoU + imageAUC on it. --early exports the first checkpoint to
learned-localizer-v1.onnx and touches /work/wt/EARLY_MODEL_READY (for the integration helper).
--cues feeds the bundled forensic-inconsistency model's four maps as extra input channels
(computed here with onnxruntime; export.py merges that graph into the exported model).
"""
import argparse
import glob
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from metrics import summarise
from net import Net

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(ROOT, ".cache", "localizer")
OLD = os.path.join(ROOT, "models", "forensic-inconsistency", "forensic-inconsistency-v1.onnx")
CUE_NAMES = ["forgery_prob", "cue_noise", "cue_colour", "cue_boundary"]


def old_cues(crops, threads=2, bs=16):
    """The bundled model's maps for uint8 crops [N,256,256,3] -> float16 [N,4,256,256]."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    s = ort.InferenceSession(OLD, so, providers=["CPUExecutionProvider"])
    out = np.zeros((len(crops), 4, 256, 256), np.float16)
    for i in range(0, len(crops), bs):
        x = crops[i:i + bs].transpose(0, 3, 1, 2).astype(np.float32) / 255
        r = s.run(CUE_NAMES, {"face": x})
        out[i:i + bs] = np.concatenate(r, 1)
    return out


def load(data_dir):
    parts = sorted(glob.glob(os.path.join(data_dir, "train-*.npz")))
    tr = [np.load(p) for p in parts]
    t = {k: np.concatenate([z[k] for z in tr]) for k in ("crops", "masks", "types", "recipe")}
    v = dict(np.load(os.path.join(data_dir, "val.npz")))
    return t, v


def to_t(crops):
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)


def predict(model, crops, cues=None, bs=32):
    model.eval()
    dev = next(model.parameters()).device
    P, T = [], []
    with torch.no_grad():
        for i in range(0, len(crops), bs):
            x = to_t(crops[i:i + bs]).to(dev)
            c = torch.from_numpy(cues[i:i + bs].astype(np.float32)).to(dev) if cues is not None else None
            p, t = model(x, c)
            P.append(p[:, 0].cpu().numpy())
            T.append(t.cpu().numpy())
    model.train()
    return np.concatenate(P), np.concatenate(T)


def validate(model, v, vcues, n=None):
    """Metrics on the validation split (its first n crops: the fixed recipe x laundering cycle)."""
    n = n or len(v["crops"])
    p, t = predict(model, v["crops"][:n], vcues[:n] if vcues is not None else None)
    return summarise(p, t, v["masks"][:n], v["types"][:n], list(v["recipe"][:n]), list(v["laundering"][:n])), p, t


def loss_fn(logit, tl, mask, types, types_on=True, type_weight=0.5):
    bce = F.binary_cross_entropy_with_logits(logit, mask, pos_weight=torch.tensor(2.0))
    p = torch.sigmoid(logit)
    forged = mask.flatten(1).amax(1) > 0
    dice = torch.tensor(0.0)
    if forged.any():
        pf, mf = p[forged].flatten(1), mask[forged].flatten(1)
        dice = (1 - (2 * (pf * mf).sum(1) + 1) / (pf.sum(1) + mf.sum(1) + 1)).mean()
    # image level: the top of the map must be high on forgeries and low on real faces
    top = torch.topk(logit.flatten(1), max(1, logit[0].numel() // 20), dim=1).values.mean(1)
    img = F.binary_cross_entropy_with_logits(top, forged.float())
    tloss = F.binary_cross_entropy_with_logits(tl, types) if types_on else torch.tensor(0.0)
    return bce + dice + 0.3 * img + type_weight * tloss, dict(bce=bce.item(), dice=dice.item(), img=img.item(), types=tloss.item())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--minutes", type=float, default=35)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--cues", action="store_true")
    ap.add_argument("--early", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-every", type=float, default=8.0)
    ap.add_argument("--val-n", type=int, default=216, help="crops for the periodic validation (all at the end)")
    ap.add_argument("--data", default=CACHE)
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resume", default=None)
    ap.add_argument("--patch", type=int, default=0, help="train the pixel head on random PATCH x PATCH crops "
                    "(same cost: batch x (256/PATCH)^2 patches) except a --full-share of steps on whole crops")
    ap.add_argument("--full-share", type=float, default=0.3)
    ap.add_argument("--type-weight", type=float, default=0.5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = a.out or os.path.join(CACHE, "runs", a.run)
    os.makedirs(out, exist_ok=True)
    logf = open(os.path.join(out, "log.txt"), "a")

    def log(*x):
        s = time.strftime("%H:%M:%S ") + " ".join(str(v) for v in x)
        print(s, flush=True)
        logf.write(s + "\n")
        logf.flush()

    t, v = load(a.data)
    log(f"train {len(t['crops'])} crops, val {len(v['crops'])} crops; args {vars(a)}")
    tcues = vcues = None
    if a.cues:
        t0 = time.time()
        tcues, vcues = old_cues(t["crops"], a.threads), old_cues(v["crops"], a.threads)
        log(f"old-model cue maps computed in {time.time() - t0:.0f}s")
    dev = torch.device(a.device)
    model = Net(a.width, 4 if a.cues else 0).to(dev)
    if a.resume:
        model.load_state_dict(torch.load(a.resume, map_location=dev)["model"])
    log(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    budget = a.minutes * 60
    start = time.time()
    last_val = start
    best = -1.0
    step = 0
    seen = 0
    rng = np.random.default_rng(0)
    n = len(t["crops"])
    early_done = not a.early
    hist = []
    while True:
        el = time.time() - start
        if el > budget:
            break
        lr = a.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, el / budget)))  # cosine over the wall-time budget
        for g in opt.param_groups:
            g["lr"] = max(lr, a.lr * 0.02)
        full = not a.patch or rng.random() < a.full_share
        if full:
            idx = rng.integers(0, n, a.batch)
            x = to_t(t["crops"][idx])
            m = torch.from_numpy(t["masks"][idx]).float()[:, None]
            ty = torch.from_numpy(t["types"][idx]).float()
            c = torch.from_numpy(tcues[idx].astype(np.float32)) if tcues is not None else None
        else:  # patches: the pixel head only (a patch does not show the whole edit for the type head)
            P = a.patch
            k = a.batch * (256 // P) ** 2
            idx = rng.integers(0, n, k)
            oy, ox = rng.integers(0, 256 - P + 1, k), rng.integers(0, 256 - P + 1, k)
            x = to_t(np.stack([t["crops"][i, y:y + P, xx:xx + P] for i, y, xx in zip(idx, oy, ox)]))
            m = torch.from_numpy(np.stack([t["masks"][i, y:y + P, xx:xx + P] for i, y, xx in zip(idx, oy, ox)])).float()[:, None]
            ty = torch.zeros(k, 6)
            c = torch.from_numpy(np.stack([tcues[i, :, y:y + P, xx:xx + P] for i, y, xx in zip(idx, oy, ox)]).astype(np.float32)) if tcues is not None else None
        if rng.random() < 0.5:
            x, m = x.flip(3), m.flip(3)
            c = c.flip(3) if c is not None else None
        x, m, ty = x.to(dev), m.to(dev), ty.to(dev)
        logit, tl = model(x, c.to(dev) if c is not None else None, logits=True)
        loss, parts = loss_fn(logit, tl, m, ty, types_on=full, type_weight=a.type_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        seen += a.batch
        hist.append(loss.item())
        if step % 25 == 0:
            log(f"step {step} seen {seen} ({seen / n:.2f} ep) {el / 60:.1f} min loss {np.mean(hist[-25:]):.4f} {parts} lr {lr:.2e}")
        need_early = not early_done and el > 240
        if need_early or time.time() - last_val > a.val_every * 60:
            res, _, _ = validate(model, v, vcues, a.val_n)
            o = res["overall"]
            score = (o["meanIoU"] or 0) + (o["imageAUC"] or 0)
            ck = dict(model={k: x.cpu() for k, x in model.state_dict().items()}, width=a.width, cues=a.cues, step=step, seen=seen, minutes=el / 60, val=res)
            torch.save(ck, os.path.join(out, "last.pt"))
            if score > best:
                best = score
                torch.save(ck, os.path.join(out, "best.pt"))
            with open(os.path.join(out, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(dict(step=step, seen=seen, minutes=el / 60, score=score, overall=o, byLaundering=res["byLaundering"])) + "\n")
            log(f"VAL step {step}: meanIoU {o['meanIoU']:.3f} pixelAUC {o['pixelAUC']:.3f} imageAUC {o['imageAUC']:.3f} "
                f"typeTop1 {o['typeTop1']:.3f} score {score:.3f} best {best:.3f}; " +
                " ".join(f"{k}: IoU {b['meanIoU']:.3f} AUC {b['imageAUC']:.3f}" for k, b in res["byLaundering"].items()))
            last_val = time.time()
            if need_early:
                import export
                export.export(os.path.join(out, "last.pt"), export.DEFAULT_OUT)
                open("/work/wt/EARLY_MODEL_READY", "w").write(f"{time.ctime()} run {a.run} step {step}\n")
                log("early export written")
                early_done = True
    res, _, _ = validate(model, v, vcues)
    model = model.to("cpu")
    o = res["overall"]
    score = (o["meanIoU"] or 0) + (o["imageAUC"] or 0)
    ck = dict(model=model.state_dict(), width=a.width, cues=a.cues, step=step, seen=seen, minutes=(time.time() - start) / 60, val=res)
    torch.save(ck, os.path.join(out, "last.pt"))
    if score > best:
        torch.save(ck, os.path.join(out, "best.pt"))
    with open(os.path.join(out, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(dict(step=step, seen=seen, minutes=ck["minutes"], score=score, final=True, overall=o, byLaundering=res["byLaundering"])) + "\n")
    log(f"FINAL step {step} seen {seen}: {json.dumps(o)}")


if __name__ == "__main__":
    main()
