"""learned-localizer network: a compact encoder-decoder with a per-pixel head and a type head.

Input  face  float32 [N,3,256,256], RGB in [0,1].  Optional extra input (variant "cues"):
the bundled forensic-inconsistency model's four maps [N,4,256,256] (forgery_prob, cue_noise,
cue_colour, cue_boundary), which export.py wires in by merging that model's graph.
Outputs forgery_prob [N,1,256,256] and manipulation_prob [N,6] (BLEND, INPAINT, SPLICE,
RECOLOUR, SMOOTH, SHARPEN), both sigmoid.

Per-image normalisation is inside the graph: each image is centred on its own channel means and
scaled by its own standard deviation, and a fixed high-pass residual (image minus its 3x3 mean)
scaled by its own level is fed alongside, so that grey or dim or low-contrast photos and
resampled/recompressed ones reach the network at comparable levels.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def cbr(i, o, s=1, k=3):
    return nn.Sequential(nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DW(nn.Module):
    """Inverted residual (MobileNetV2 style)."""
    def __init__(self, i, o, s=1, e=3):
        super().__init__()
        h = i * e
        self.use_res = s == 1 and i == o
        self.b = nn.Sequential(nn.Conv2d(i, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
                               nn.Conv2d(h, h, 3, s, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
                               nn.Conv2d(h, o, 1, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        y = self.b(x)
        return x + y if self.use_res else y


class Up(nn.Module):
    def __init__(self, i, skip, o):
        super().__init__()
        self.c = nn.Sequential(cbr(i + skip, o, k=1), DW(o, o))

    def forward(self, x, s):
        x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
        return self.c(torch.cat([x, s], 1))


class Net(nn.Module):
    """Encoder at 128/64/32/16/8 px (the stem works at half resolution: full-resolution
    convolutions cost most of the time on a shared 2-core CPU), decoder back to 128 px with skip
    connections, the logit map bilinearly upsampled to 256 px."""
    def __init__(self, width=1.0, extra_in=0):
        super().__init__()
        c = [int(round(v * width)) for v in (16, 24, 40, 64, 96)]
        self.extra_in = extra_in
        self.stem = nn.Sequential(cbr(6 + extra_in, c[0], 2), DW(c[0], c[0]))           # 128
        self.e1 = nn.Sequential(cbr(c[0], c[1], 2), DW(c[1], c[1]))                    # 64
        self.e2 = nn.Sequential(DW(c[1], c[2], 2), DW(c[2], c[2]))                     # 32
        self.e3 = nn.Sequential(DW(c[2], c[3], 2), DW(c[3], c[3]), DW(c[3], c[3]))     # 16
        self.e4 = nn.Sequential(DW(c[3], c[4], 2), DW(c[4], c[4]))                     # 8
        self.d3 = Up(c[4], c[3], c[3])
        self.d2 = Up(c[3], c[2], c[2])
        self.d1 = Up(c[2], c[1], c[1])
        self.d0 = Up(c[1], c[0], c[0])
        self.head = nn.Conv2d(c[0], 1, 3, 1, 1)
        self.types = nn.Sequential(nn.Linear(2 * c[4] + 2 * c[3] + 2, 96), nn.ReLU(inplace=True), nn.Linear(96, 6))

    @staticmethod
    def normalise(x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        xc = x - mean
        std = xc.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-4).sqrt()
        hp = x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
        hstd = hp.pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-6).sqrt()
        return torch.cat([xc / std, hp / hstd], 1)

    def forward(self, face, cues=None, logits=False):
        x = self.normalise(face)
        if self.extra_in:
            x = torch.cat([x, cues], 1)
        s = self.stem(x)
        f1 = self.e1(s)
        f2 = self.e2(f1)
        f3 = self.e3(f2)
        f4 = self.e4(f3)
        d3 = self.d3(f4, f3)
        d = self.d2(d3, f2)
        d = self.d1(d, f1)
        d = self.d0(d, s)
        logit = F.interpolate(self.head(d), scale_factor=2.0, mode="bilinear", align_corners=False)
        prob = torch.sigmoid(logit)
        # type head: global pooling of the deepest features and of decoder features weighted by the map
        p16 = F.avg_pool2d(prob, 16)  # 256 -> 16, the size of d3
        w = p16 / (p16.sum(dim=(2, 3), keepdim=True) + 1e-3)
        g = torch.cat([f4.mean(dim=(2, 3)), f4.amax(dim=(2, 3)), (d3 * w).sum(dim=(2, 3)), d3.mean(dim=(2, 3)),
                       prob.mean(dim=(2, 3)), prob.amax(dim=(2, 3))], 1)
        tl = self.types(g)
        if logits:
            return logit, tl
        return prob, torch.sigmoid(tl)
