#!/usr/bin/env python3
"""Gather training images for learned-localizer from package registries only.

  python sources.py            # download, unpack, detect faces, landmarks, eval-face check

Every image comes from a package fetched with the registry's own client (npm pack, pip download,
apt-get download) into .cache/localizer/sources, unpacked there and never committed. Faces are
found with MediaPipe's face detector (full-range model, the BlazeFace family the service runs)
and get MediaPipe's 468-point face mesh for the forgery recipes' region shapes.

The two evaluation faces (testdata/faces/astronaut.png, camera.png; scikit-image ships the same
photos) must never reach training: every candidate image and every face found in it is compared
with both of them (whole image and face crop, 32x32 greyscale correlation, mirrored too) and
excluded above MATCH_LIMIT. The check is logged to .cache/localizer/eval_check.log and
summarised in sources.json (committed, no pixels).

Output: .cache/localizer/faces.npz (the compact data cache: face working images as JPEG q97
bytes, boxes, landmarks, identity groups) and sources.json (the table for the model card).
"""
import fnmatch
import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

import cv2
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CACHE = os.path.join(ROOT, ".cache", "localizer")
DL = os.path.join(CACHE, "sources")
EVAL_FACES = {"astronaut": (os.path.join(ROOT, "testdata/faces/astronaut.png"), (178, 81, 94, 94)),
              "camera": (os.path.join(ROOT, "testdata/faces/camera.png"), (171, 116, 90, 90))}
MATCH_LIMIT = 0.90   # correlation of 32x32 grey thumbnails above which a candidate is excluded
MIN_FACE = 48        # face box side in pixels below which a face is too small to edit
MAX_SIDE = 1600      # photos are downscaled to this longest side on load

# kind, package, version, member globs, licence, role, redistributable (images, not code)
SOURCES = [
    ("npm", "@vladmandic/human", "3.3.6", ["package/assets/samples.jpg"], "MIT (package); photo rights not stated", "face", False),
    ("npm", "@vladmandic/face-api", "1.7.15", ["package/demo/sample?.jpg"], "MIT (package); photo rights not stated", "face", False),
    ("pypi", "face_recognition", "1.3.0", ["*/tests/test_images/*.jpg", "*/examples/*.jpg"], "MIT (package); photo rights not stated", "face", False),
    ("npm", "tracking", "1.1.3", ["package/examples/assets/faces.jpg"], "BSD-3-Clause (package); photo rights not stated", "face", False),
    ("apt", "opencv-doc", "4.6.0+dfsg-12", ["./usr/share/doc/opencv-doc/examples/data/*.jpg", "./usr/share/doc/opencv-doc/examples/data/*.png"], "BSD-3-Clause/Apache-2.0 (OpenCV samples)", "auto", False),
    ("apt", "plasma-workspace-wallpapers", "4:5.27.5-2", ["./usr/share/wallpapers/*/contents/images/*"], "LGPL-3.0 / CC-BY-SA (per wallpaper, see package copyright)", "photo", True),
    ("apt", "ukui-wallpapers", "20.04.3-1.1", ["./usr/share/backgrounds/*"], "CC-BY-SA-3.0 (debian/copyright)", "photo", True),
]
# synthetic/graphic images that carry no photographic texture; the OpenCV samples are mixed
SKIP = ["*chessboard*", "*left0*", "*left1*", "*right0*", "*right1*", "*digits*", "*logo*", "*Logo*",
        "*templ*", "*tmpl*", "*mask*", "*notes*", "*text*", "*sudoku*", "*pic?.png", "*gradient*",
        "*detect_blob*", "*ellipses*", "*imageText*", "*cards*", "*ml.png", "*aloeGT*", "*blox*", "*HappyFish*",
        "*Suzanne*", "*stuff*", "*box*", "*licenseplate*", "*pca_test*", "*smarties*"]


def sh(cmd, cwd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True)


def fetch(kind, pkg, ver):
    d = os.path.join(DL, kind)
    os.makedirs(d, exist_ok=True)
    base = pkg.replace("@", "").replace("/", "-")
    have = [f for f in os.listdir(d) if f.startswith(base) or f.startswith(pkg.replace("-", "_"))]
    have = [f for f in have if ver.split(":")[-1].split("+")[0] in f]
    if not have:
        if kind == "npm":
            sh(["npm", "pack", f"{pkg}@{ver}", "--silent"], d)
        elif kind == "pypi":
            sh([sys.executable, "-m", "pip", "download", f"{pkg}=={ver}", "--no-deps", "--no-binary", ":all:", "-d", "."], d)
        else:
            sh(["apt-get", "download", f"{pkg}={ver}"], d)
        have = [f for f in os.listdir(d) if (f.startswith(base) or f.startswith(pkg.replace("-", "_"))) and ver.split(":")[-1].split("+")[0] in f]
    return os.path.join(d, sorted(have)[0])


def members(archive, kind, globs):
    """(member name, bytes) of every file in the package matching one of globs."""
    out = []
    if kind == "apt":
        raw = subprocess.run(["dpkg-deb", "--fsys-tarfile", archive], check=True, capture_output=True).stdout
        tf = tarfile.open(fileobj=io.BytesIO(raw))
    elif archive.endswith(".zip") or archive.endswith(".whl"):
        z = zipfile.ZipFile(archive)
        return [(n, z.read(n)) for n in z.namelist() if any(fnmatch.fnmatch(n, g) for g in globs)]
    else:
        tf = tarfile.open(archive)
    for m in tf.getmembers():
        if m.isfile() and any(fnmatch.fnmatch(m.name, g) for g in globs):
            if any(fnmatch.fnmatch(os.path.basename(m.name), s) for s in SKIP):
                continue
            if not m.name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            out.append((m.name, tf.extractfile(m).read()))
    return one_per_wallpaper(out)


def one_per_wallpaper(files):
    """A KDE wallpaper folder holds one picture at many sizes named WxH: keep the size nearest
    1920x1080 (the same photo twice would leak across the identity split)."""
    best = {}
    rest = []
    for name, data in files:
        stem = os.path.splitext(os.path.basename(name))[0]
        if "wallpapers/" in name and "x" in stem and stem.replace("x", "").isdigit():
            w, h = map(int, stem.split("x"))
            d = abs(np.log(w * h / (1920 * 1080)))
            key = os.path.dirname(name)
            if key not in best or d < best[key][0]:
                best[key] = (d, name, data)
        else:
            rest.append((name, data))
    return rest + [(n, b) for _, n, b in best.values()]


def thumb(rgb, box=None):
    """32x32 grey, zero-mean unit-norm: what the eval-face check correlates."""
    if box is not None:
        x, y, w, h = [int(round(v)) for v in box]
        s = int(max(w, h) * 1.5)
        cx, cy = x + w // 2, y + h // 2
        pad = cv2.copyMakeBorder(rgb, s, s, s, s, cv2.BORDER_REPLICATE)
        rgb = pad[cy - s // 2 + s: cy + s // 2 + s, cx - s // 2 + s: cx + s // 2 + s]
    g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    t = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    t -= t.mean()
    return t / (np.linalg.norm(t) + 1e-6)


def eval_thumbs():
    out = []
    for name, (path, box) in EVAL_FACES.items():
        rgb = np.array(Image.open(path).convert("RGB"))
        for flip in (False, True):
            im = rgb[:, ::-1].copy() if flip else rgb
            b = (rgb.shape[1] - box[0] - box[2], box[1], box[2], box[3]) if flip else box
            out.append((name, thumb(im), thumb(im, b)))
    return out


def match_score(rgb, boxes, refs):
    """Highest correlation of the image or any of its faces with an evaluation photo."""
    best, who = -1.0, ""
    t_img = thumb(rgb)
    t_faces = [thumb(rgb, b) for b in boxes]
    for name, r_img, r_face in refs:
        for a, b in [(t_img, r_img)] + [(t, r_face) for t in t_faces]:
            c = float((a * b).sum())
            if c > best:
                best, who = c, name
    return best, who


class FaceTools:
    def __init__(self):
        import mediapipe as mp
        self.det_far = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.6)
        self.det_near = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.6)
        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                                    min_detection_confidence=0.5)

    def detect(self, rgb):
        """Faces in the whole image and in overlapping 2x2 and 3x3 tiles (the detectors see
        128-256 px, so a group photo's small faces are only found in tiles)."""
        H, W = rgb.shape[:2]
        found = []
        tiles = [(0, 0, W, H)]
        for n in (2, 3):
            if min(H, W) / n >= 160:
                tw, th = int(W / n * 1.3), int(H / n * 1.3)
                for i in range(n):
                    for j in range(n):
                        x0, y0 = min(W - tw, int(i * W / n)), min(H - th, int(j * H / n))
                        tiles.append((x0, y0, tw, th))
        for (x0, y0, tw, th) in tiles:
            sub = np.ascontiguousarray(rgb[y0:y0 + th, x0:x0 + tw])
            for det in (self.det_far, self.det_near):
                r = det.process(sub)
                for d in (r.detections or []):
                    bb = d.location_data.relative_bounding_box
                    b = (x0 + bb.xmin * tw, y0 + bb.ymin * th, bb.width * tw, bb.height * th, float(d.score[0]))
                    if all(iou(b, f) < 0.3 and not inside(b, f) for f in found):
                        found.append(b)
        return found

    def landmarks(self, rgb, box):
        """468 (x, y) in image pixels for the face in box, or None (mesh run on a 2x crop)."""
        x, y, w, h = box[:4]
        s = max(w, h) * 2.0
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
        si = int(round(s))
        pad = cv2.copyMakeBorder(rgb, si, si, si, si, cv2.BORDER_REPLICATE)
        crop = pad[y0 + si: y0 + 2 * si, x0 + si: x0 + 2 * si]
        k = 384 / si
        crop = cv2.resize(crop, (384, 384), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
        r = self.mesh.process(np.ascontiguousarray(crop))
        if not r.multi_face_landmarks:
            return None
        pts = np.array([(p.x * 384, p.y * 384) for p in r.multi_face_landmarks[0].landmark[:468]], np.float32)
        pts = pts / k + np.array([x0, y0], np.float32)
        # the mesh must describe the detected face, not a neighbour
        mx, my = pts.mean(0)
        if abs(mx - cx) > 0.35 * w or abs(my - cy) > 0.35 * h:
            return None
        return pts


def inside(a, b):
    """Centre of either box inside the other (the same face found twice at two scales)."""
    def c_in(p, q):
        cx, cy = p[0] + p[2] / 2, p[1] + p[3] / 2
        return q[0] <= cx <= q[0] + q[2] and q[1] <= cy <= q[1] + q[3]
    return c_in(a, b) or c_in(b, a)


def iou(a, b):
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter + 1e-9)


def work_region(rgb, box, pts):
    """Square region of 2.6x the face box around the face (room for the 1.5x crop, jitter and
    rotation), downscaled so the face box is at most 320 px: what the cache stores per face."""
    x, y, w, h = box[:4]
    s = max(w, h) * 2.6
    cx, cy = x + w / 2, y + h / 2
    x0, y0, si = int(round(cx - s / 2)), int(round(cy - s / 2)), int(round(s))
    pad = cv2.copyMakeBorder(rgb, si, si, si, si, cv2.BORDER_REPLICATE)
    reg = pad[y0 + si: y0 + 2 * si, x0 + si: x0 + 2 * si]
    k = min(1.0, 320.0 / max(w, h))
    if k < 1:
        reg = cv2.resize(reg, (int(round(si * k)),) * 2, interpolation=cv2.INTER_AREA)
    k2 = reg.shape[0] / si
    nb = ((x - x0) * k2, (y - y0) * k2, w * k2, h * k2)
    npts = (pts - np.array([x0, y0], np.float32)) * k2
    return reg, nb, npts


def main():
    os.makedirs(CACHE, exist_ok=True)
    refs = eval_thumbs()
    for name, (path, box) in EVAL_FACES.items():  # the check must catch the evaluation photos themselves
        rgb = np.array(Image.open(path).convert("RGB"))
        sc = match_score(cv2.resize(rgb, None, fx=0.7, fy=0.7), [tuple(v * 0.7 for v in box)], refs)[0]
        assert sc > MATCH_LIMIT, f"eval-face check misses {name} ({sc:.2f})"
    tools = FaceTools()
    log = open(os.path.join(CACHE, "eval_check.log"), "w")
    table, faces, photos, seen = [], [], [], set()
    for kind, pkg, ver, globs, lic, role, redist in SOURCES:
        arch = fetch(kind, pkg, ver)
        for name, data in members(arch, kind, globs):
            try:
                im = Image.open(io.BytesIO(data))
                im.load()
            except Exception as e:  # a damaged or odd file is skipped, not fatal
                print("skip", name, e)
                continue
            rgb = np.array(im.convert("RGB"))
            if max(rgb.shape[:2]) > MAX_SIDE:
                k = MAX_SIDE / max(rgb.shape[:2])
                rgb = cv2.resize(rgb, (int(rgb.shape[1] * k), int(rgb.shape[0] * k)), interpolation=cv2.INTER_AREA)
            if min(rgb.shape[:2]) < 128:
                continue
            dets = tools.detect(rgb) if role in ("face", "auto") else []
            score, who = match_score(rgb, [d[:4] for d in dets], refs)
            excluded = score > MATCH_LIMIT
            log.write(f"{pkg}@{ver}:{name}\tfaces={len(dets)}\tmax_corr={score:.3f}({who})\t{'EXCLUDED' if excluded else 'ok'}\n")
            if excluded:
                table.append(dict(kind=kind, package=pkg, version=ver, file=name, licence=lic, faces=0,
                                  role="excluded: matches evaluation face " + who, redistributable=False))
                continue
            used = 0
            group = f"{pkg}:{''.join(c for c in os.path.splitext(os.path.basename(name))[0] if not c.isdigit())}"
            if role == "photo" or (role == "auto" and not dets):
                key = os.path.dirname(name) if "wallpapers/" in name else name
                if key in seen:   # one resolution per wallpaper
                    continue
                seen.add(key)
                photos.append(dict(src=f"{pkg}:{name}", group=f"{pkg}:{name}", jpg=encode(rgb, 1024)))
                table.append(dict(kind=kind, package=pkg, version=ver, file=name, licence=lic, faces=0, role="non-face photo",
                                  redistributable=redist))
                continue
            for i, d in enumerate(dets):
                if min(d[2], d[3]) < MIN_FACE:
                    continue
                pts = tools.landmarks(rgb, d)
                if pts is None:
                    continue
                reg, nb, npts = work_region(rgb, d, pts)
                faces.append(dict(src=f"{pkg}:{name}#{i}", group=group if kind == "pypi" else f"{pkg}:{name}#{i}",
                                  jpg=encode(reg), box=np.array(nb, np.float32), pts=npts))
                used += 1
            if not used and role == "auto":  # a detector false positive (a baboon, a basketball): still a photo
                photos.append(dict(src=f"{pkg}:{name}", group=f"{pkg}:{name}", jpg=encode(rgb, 1024)))
            table.append(dict(kind=kind, package=pkg, version=ver, file=name, licence=lic, faces=used,
                              role="faces" if used else ("non-face photo" if role == "auto" else "no usable face"),
                              redistributable=redist))
            print(f"{pkg}:{name}: {used} faces (max eval corr {score:.2f})", flush=True)
    log.close()
    np.savez(os.path.join(CACHE, "faces.npz"),
             face_jpg=np.array([f["jpg"] for f in faces], dtype=object),
             face_box=np.array([f["box"] for f in faces], np.float32),
             face_pts=np.array([f["pts"] for f in faces], np.float32),
             face_src=np.array([f["src"] for f in faces]), face_group=np.array([f["group"] for f in faces]),
             photo_jpg=np.array([p["jpg"] for p in photos], dtype=object),
             photo_src=np.array([p["src"] for p in photos]), photo_group=np.array([p["group"] for p in photos]))
    with open(os.path.join(HERE, "sources.json"), "w") as f:
        json.dump(dict(matchLimit=MATCH_LIMIT, faces=len(faces), photos=len(photos), files=table), f, indent=1)
    print(f"{len(faces)} faces, {len(photos)} non-face photos; cache {os.path.getsize(os.path.join(CACHE, 'faces.npz')) / 1e6:.1f} MB")


def encode(rgb, max_side=None):
    if max_side and max(rgb.shape[:2]) > max_side:
        k = max_side / max(rgb.shape[:2])
        rgb = cv2.resize(rgb, (int(rgb.shape[1] * k), int(rgb.shape[0] * k)), interpolation=cv2.INTER_AREA)
    b = io.BytesIO()
    Image.fromarray(rgb).save(b, "JPEG", quality=97)
    return np.frombuffer(b.getvalue(), np.uint8)


if __name__ == "__main__":
    main()
