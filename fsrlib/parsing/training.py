"""Train fsrlib's BiSeNet (:class:`fsrlib.parsing.bisenet.BiSeNet`, a ``width`` option for CPUs)
on the CelebAMask-HQ train faces of the prepare stage (128 px, their warped human labels, in
fsrlib's classes), and the parser that uses the result.

Training: cross-entropy on the main output plus the two auxiliary heads (as the official
training, without its OHEM), Adam with a cosine decay to 0 over ``iters`` or ``max_minutes``
(whichever ends first, so a time-capped demo run still ends at a low rate), augmentation:
horizontal flip with the l/r classes swapped
(:func:`fsrlib.labels.flip_labels`), a random zoom (``scale``: crop a random window of
1/s of the side and resize it back: bilinear for the image, nearest for the labels) and
colour jitter (brightness, contrast, saturation). From scratch, or from an ImageNet ResNet-18
(torchvision ``resnet18`` state dict file, ``backbone``: ``width`` must be 1) when given.
The network sees the 128 px face itself (no 512 resize: that is the official checkpoint's
preprocessing, :class:`fsrlib.parsing.bisenet.BiSeNetParser`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..io import sha256sum, torch_save
from ..labels import LR_PAIRS, N_CLASSES
from ..settings import STAGE_DEFAULTS
from .bisenet import IMAGENET_MEAN, IMAGENET_STD, BiSeNet

__all__ = ["DEFAULTS", "load_faces", "augment_batch", "parser_loss", "train_step", "train_parser",
           "TrainedBiSeNetParser", "load_trained"]

DEFAULTS = STAGE_DEFAULTS["train_parser"]  # the train_parser stage's settings


def load_faces(faces_root, dataset: str = "celebamask", split: str = "train", limit: int | None = None):
    """(N, 128, 128, 3) uint8 faces and (N, 128, 128) uint8 human labels of ``dataset``/``split``."""
    import pandas as pd  # noqa: PLC0415 (only here)
    faces_root = Path(faces_root)
    df = pd.read_csv(faces_root / "faces.csv", dtype={"name": str})
    df = df[(df.dataset == dataset) & (df.split == split)].sort_values("name")
    if limit is not None:
        df = df.head(int(limit))
    if df.empty:
        raise FileNotFoundError(f"no {dataset} {split} faces in {faces_root}/faces.csv")
    imgs = np.stack([np.asarray(Image.open(faces_root / dataset / f"{n}.png").convert("RGB")) for n in df.name])
    labs = np.stack([np.asarray(Image.open(faces_root / "labels" / dataset / f"{n}.png")) for n in df.name])
    return imgs, labs


def _to_input(imgs: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=imgs.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=imgs.device).view(1, 3, 1, 1)
    return (imgs - mean) / std


def augment_batch(imgs: np.ndarray, labs: np.ndarray, rng: np.random.Generator, cfg: dict):
    """uint8 (N,H,W,3), (N,H,W) -> float (N,3,H,W) in [0,1] and int64 (N,H,W), augmented."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(labs.astype(np.int64))
    n, _, h, w = x.shape
    xs, ys = [], []
    lut = torch.arange(N_CLASSES)
    for a, b in LR_PAIRS:
        lut[a], lut[b] = b, a
    lo, hi = cfg.get("scale") or (1.0, 1.0)
    for i in range(n):
        xi, yi = x[i], y[i]
        if cfg.get("hflip") and rng.random() < 0.5:
            xi, yi = xi.flip(-1), lut[yi.flip(-1)]
        s = float(rng.uniform(lo, hi))
        if s > 1.0:
            ch, cw = int(round(h / s)), int(round(w / s))
            t, l = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            xi = F.interpolate(xi[None, :, t:t + ch, l:l + cw], (h, w), mode="bilinear", align_corners=False)[0]
            yi = F.interpolate(yi[None, None, t:t + ch, l:l + cw].float(), (h, w), mode="nearest")[0, 0].long()
        c = float(cfg.get("color") or 0.0)
        if c > 0:
            b, k, sat = (1 + rng.uniform(-c, c, 3))
            xi = xi * b                                    # brightness
            xi = xi.mean() + (xi - xi.mean()) * k          # contrast
            gray = xi.mean(0, keepdim=True)
            xi = (gray + (xi - gray) * sat).clamp(0, 1)    # saturation
        xs.append(xi)
        ys.append(yi)
    return torch.stack(xs), torch.stack(ys)


def parser_loss(model: BiSeNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the main and the two auxiliary outputs (their sum)."""
    return sum(F.cross_entropy(o, y) for o in model(_to_input(x)))


def train_step(model, opt, x, y) -> float:
    model.train()
    loss = parser_loss(model, x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _load_backbone(model: BiSeNet, path) -> str:
    if model.width != 1.0:
        raise ValueError("an ImageNet backbone needs width: 1 (the ResNet-18 channel counts)")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"train_parser.backbone {p} does not exist (a torchvision resnet18 state dict)")
    sd = torch.load(p, map_location="cpu", weights_only=True)
    own = model.cp.resnet.state_dict()
    take = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    model.cp.resnet.load_state_dict(take, strict=False)
    return f"{p.name} ({len(take)}/{len(own)} tensors, sha256 {sha256sum(p)[:12]})"


def train_parser(faces_root, out_path, cfg: dict | None = None, progress: bool = True) -> dict:
    """Train on the celebamask train faces; save ``{"state_dict", "width", "meta"}`` to ``out_path``.
    Stops at ``iters`` or ``max_minutes`` (the demo's time budget), whichever comes first."""
    cfg = {**DEFAULTS, **{k: v for k, v in (cfg or {}).items() if v is not None}}
    torch.manual_seed(int(cfg["seed"]))
    torch.set_num_threads(int(cfg["threads"]))
    rng = np.random.default_rng(int(cfg["seed"]))
    imgs, labs = load_faces(faces_root)
    model = BiSeNet(N_CLASSES, width=float(cfg["width"]))
    backbone = _load_backbone(model, cfg["backbone"]) if cfg["backbone"] else "none (from scratch)"
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    iters, bs = int(cfg["iters"]), int(cfg["batch_size"])
    budget = 60 * float(cfg["max_minutes"])
    t0, losses, it = time.time(), [], 0
    for it in range(1, iters + 1):
        # cosine to 0 over the run: whichever of iterations and wall time runs out first
        done = max((it - 1) / iters, (time.time() - t0) / budget)
        for g in opt.param_groups:
            g["lr"] = float(cfg["lr"]) * 0.5 * (1 + np.cos(np.pi * min(done, 1.0)))
        idx = rng.integers(0, len(imgs), bs)
        x, y = augment_batch(imgs[idx], labs[idx], rng, cfg)
        losses.append(train_step(model, opt, x, y))
        if progress and it % 50 == 0:
            print(f"iter {it}: loss {np.mean(losses[-50:]):.3f} ({time.time() - t0:.0f} s)", flush=True)
        if time.time() - t0 > budget:
            break
    meta = {"iters_done": it, "iters": iters, "seconds": round(time.time() - t0, 1), "n_train": len(imgs),
            "final_loss": float(np.mean(losses[-20:])), "backbone": backbone,
            "settings": {k: cfg[k] for k in DEFAULTS}}
    torch_save({"state_dict": model.state_dict(), "width": model.width, "meta": meta}, out_path)
    return meta


class TrainedBiSeNetParser:
    """Parser interface over a checkpoint of :func:`train_parser` (fsrlib's classes, 128 px input)."""

    name = "bisenet"
    needs_landmarks = False

    def __init__(self, path, device: str = "cpu", batch_size: int = 16):
        ck = torch.load(path, map_location="cpu", weights_only=False)
        self.model = BiSeNet(N_CLASSES, width=float(ck["width"]))
        self.model.load_state_dict(ck["state_dict"])
        self.model.to(device).eval()
        self.device, self.batch_size = torch.device(device), int(batch_size)
        self.weights = {"file": Path(path).as_posix(), "sha256": sha256sum(path), "trained_here": ck["meta"]}

    @torch.no_grad()
    def parse(self, images, landmarks=None) -> np.ndarray:
        arr = np.asarray(images)
        arr = arr[None] if arr.ndim == 3 else arr
        out = []
        for i in range(0, len(arr), self.batch_size):
            x = torch.from_numpy(arr[i:i + self.batch_size]).permute(0, 3, 1, 2).float().to(self.device) / 255.0
            out.append(self.model(_to_input(x))[0].argmax(1).to(torch.uint8).cpu().numpy())
        return np.concatenate(out)

    def info(self) -> dict:
        return {"parser": self.name, "weights": self.weights,
                "source": "fsrlib BiSeNet trained by the train_parser stage on CelebAMask-HQ train faces"}


def load_trained(path, **kw) -> TrainedBiSeNetParser:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"trained parser weights {p} do not exist: run the train_parser stage "
                                "(dvc repro train_parser)")
    return TrainedBiSeNetParser(p, **kw)
