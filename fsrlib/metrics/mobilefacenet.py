"""MobileFaceNet (Chen et al., 2018), a second identity network beside dlib's.

The architecture follows the paper's Table 1 (the layout of the public PyTorch training code,
Xiaoccer/MobileFaceNet_Pytorch, whose CASIA-WebFace checkpoint ``068.ckpt`` is loaded strictly:
parameter names match it):

    conv 3x3/2 64 -> depthwise 3x3 64 -> bottlenecks (expansion t, channels c, repeats n,
    stride s of the first): (2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2),
    (2, 128, 2, 1) -> conv 1x1 512 -> linear global depthwise conv 7x6 -> linear conv 1x1 128

Every conv is bias-free and followed by batch norm; PReLU after all but the linear ones; a
bottleneck is 1x1 expand (BN, PReLU), 3x3 depthwise (BN, PReLU), 1x1 project (BN), with the
shortcut when its stride is 1 and its input and output widths are equal.

Input convention (the training code's): a **112x96** (rows x columns) RGB face aligned by a
similarity transform of 5 points (eye centres, nose tip, mouth corners) to the SphereFace
template :data:`SPHEREFACE_96x112`, pixels ``(x - 127.5) / 128``. The embedding of a face is the
concatenation of the 128-d outputs of the face and of its mirror image (256-d, as the training
code's LFW evaluation), compared by cosine similarity.

The weights are never downloaded: :data:`CHECKPOINT_SHA256` is checked before loading
(:func:`load_mobilefacenet`), and a missing or different file is an error with the reason.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn

from ..data.align import similarity_from_points
from ..io import sha256sum

__all__ = ["CHECKPOINT_SHA256", "SPHEREFACE_96x112", "DEFAULT_WEIGHTS", "MobileFaceNet", "load_mobilefacenet",
           "five_points", "align_sphereface", "MobileFaceNetEmbedder"]

#: sha256 of ``mobilefacenet_casia_068.ckpt`` (../shared/models/README.md)
CHECKPOINT_SHA256 = "e839247cdbdfc023fb7cadeaf53a4549d50c8fc24ad154c02e35920ea8910d99"
#: where the project's machines keep it (relative to the repository root)
DEFAULT_WEIGHTS = "../shared/models/mobilefacenet_casia_068.ckpt"
#: SphereFace's 5-point template of a 96 (wide) x 112 (high) crop: left eye, right eye (image
#: left first), nose tip, left and right mouth corners, (x, y) pixels
SPHEREFACE_96x112 = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                              [33.5493, 92.3655], [62.7299, 92.2041]])
#: (expansion, out channels, repeats, first stride) of the bottleneck groups
BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


class ConvBlock(nn.Module):
    """conv (no bias) -> BN (-> PReLU unless ``linear``); ``dw``: depthwise."""

    def __init__(self, cin: int, cout: int, k, s: int = 1, p=0, dw: bool = False, linear: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, p, groups=cin if dw else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.linear = linear
        if not linear:
            self.prelu = nn.PReLU(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x if self.linear else self.prelu(x)


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        mid = cin * expansion
        self.shortcut = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, mid, 1, 1, 0, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
            nn.Conv2d(mid, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.shortcut else y


class MobileFaceNet(nn.Module):
    """112x96 RGB in ``(x - 127.5) / 128`` -> 128-d embedding."""

    def __init__(self, embedding: int = 128):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.dw_conv1 = ConvBlock(64, 64, 3, 1, 1, dw=True)
        blocks, cin = [], 64
        for t, c, n, s in BOTTLENECKS:
            for i in range(n):
                blocks.append(Bottleneck(cin, c, s if i == 0 else 1, t))
                cin = c
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBlock(128, 512, 1)
        self.linear7 = ConvBlock(512, 512, (7, 6), dw=True, linear=True)
        self.linear1 = ConvBlock(512, embedding, 1, linear=True)

    def forward(self, x):
        if x.shape[-2:] != (112, 96):
            raise ValueError(f"MobileFaceNet takes 112x96 faces, got {tuple(x.shape[-2:])}")
        x = self.conv2(self.blocks(self.dw_conv1(self.conv1(x))))
        return self.linear1(self.linear7(x)).flatten(1)


def load_mobilefacenet(path: str | Path = DEFAULT_WEIGHTS, sha256: str | None = CHECKPOINT_SHA256) -> MobileFaceNet:
    """The network with the checkpoint at ``path`` (``{"epoch", "net_state_dict"}``), loaded
    strictly after checking its sha256 (``sha256=None`` skips the check: other weights)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MobileFaceNet weights not found at {path} (../shared/models/README.md)")
    if sha256 is not None:
        got = sha256sum(path)
        if got != sha256:
            raise ValueError(f"{path}: sha256 {got} is not MobileFaceNet's {sha256}")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    sd = ck.get("net_state_dict", ck) if isinstance(ck, dict) else ck
    net = MobileFaceNet()
    net.load_state_dict(sd, strict=True)
    return net.eval()


def five_points(lmk68: np.ndarray) -> np.ndarray:
    """68 iBUG points -> the 5 of the template: eye centres (means of 37-42 and 43-48, 1-based),
    nose tip (31), mouth corners (49, 55)."""
    lmk68 = np.asarray(lmk68, np.float64)
    return np.stack([lmk68[36:42].mean(0), lmk68[42:48].mean(0), lmk68[30], lmk68[48], lmk68[54]])


def align_sphereface(img: np.ndarray, lmk68: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 face -> 112x96x3 uint8, warped (bilinear) by the similarity that maps the 5
    points of ``lmk68`` onto :data:`SPHEREFACE_96x112`."""
    m = similarity_from_points(five_points(lmk68), SPHEREFACE_96x112)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (96, 112), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


class MobileFaceNetEmbedder:
    """Batched 256-d (face + mirror) embeddings of faces aligned by given landmarks."""

    def __init__(self, weights: str | Path = DEFAULT_WEIGHTS, device: str = "cpu", batch_size: int = 64,
                 flip: bool = True):
        self.net = load_mobilefacenet(weights).to(device)
        self.device, self.batch_size, self.flip = device, int(batch_size), bool(flip)

    @torch.inference_mode()
    def embed(self, imgs: Sequence[np.ndarray], lmk68: np.ndarray) -> np.ndarray:
        """``imgs``: HxWx3 uint8; ``lmk68``: ``(N, 68, 2)`` points to align each by (e.g. the HR
        landmarks, for SR and HR alike). Rows with NaN landmarks give NaN embeddings."""
        lmk68 = np.asarray(lmk68, np.float64)
        n = len(imgs)
        dim = 256 if self.flip else 128
        out = np.full((n, dim), np.nan)
        ok = [i for i in range(n) if not np.isnan(lmk68[i]).any()]
        for b in range(0, len(ok), self.batch_size):
            idx = ok[b:b + self.batch_size]
            x = np.stack([align_sphereface(imgs[i], lmk68[i]) for i in idx])
            x = (torch.from_numpy(x).permute(0, 3, 1, 2).float() - 127.5) / 128.0
            x = x.to(self.device)
            f = self.net(x)
            if self.flip:
                f = torch.cat([f, self.net(torch.flip(x, dims=[3]))], 1)
            out[idx] = f.double().cpu().numpy()
        return out
