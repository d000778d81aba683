"""``FaceSRDataset``: the aligned faces with their LR, upsampled LR and parsing maps, as the
dicts of docs/conventions.md.

Reads ``{root}/faces/faces.csv`` and the faces, ``{root}/lr/x{s}/...`` (degrade stage) and
``{root}/parsing/labels/...`` (parse stage). Every map registered in
:data:`fsrlib.labels.LABEL_MAPS` (``skin``, ``skin_lr``, ``parts11``, ``regions``, and any a
method adds) is computed from the label map (exact, and consistent under augmentation).

Augmentation (``augment`` dict, or None for none), applied in this order:

* ``rescale: [lo, hi]`` (SPARNet: [1.0, 1.3]) — zoom by ``r ~ U(lo, hi)``: a random
  ``round(128 / r)`` square crop resized back to 128 (MATLAB bicubic), labels with
  nearest; the LR and upsampled LR are then **regenerated online** from the augmented HR
  with the stage's uint8 MATLAB imresize. (Per item this uses the numpy
  :func:`fsrlib.imresize.imresize`; :func:`fsrlib.imresize.imresize_torch` with
  ``quantize=True`` gives the same numbers — tested — and is the one to use batched on a
  GPU; per 128-px item on a busy 2-core CPU torch's thread pool made it 20x slower);
* ``hflip: true`` (or a probability, default 0.5 when true) — all maps flipped; label
  classes l/r swapped (so ``parts11``'s l/r channels swap, see
  :data:`fsrlib.labels.PARTS11_FLIP`). Stored LR maps are flipped too (MATLAB
  imresize commutes with a horizontal flip: symmetric kernel and boundary);
* ``rot90: true`` — k x 90 degrees, k uniform in {0, 1, 2, 3} (off by default, as in
  SPARNet's released code); label classes are *not* swapped.

Randomness: item ``i`` of epoch ``e`` uses ``numpy.random.default_rng([seed, e, i])``, so a
run is reproducible and resumable whatever the worker count or order. Call
:meth:`FaceSRDataset.set_epoch` before each epoch (with ``persistent_workers=False``, or
re-create the loader, so the workers see it).

``degradation``: ``"bicubic"`` (default, the stage's LR) or ``"blind-paper"`` /
``"blind-released"`` (SPARNetHD, :func:`fsrlib.data.degrade.blind_degrade`, seeded per item):
then ``lr_up`` is the blind LR upsampled to 128 and ``lr`` that image bicubic-downsampled
to the nominal LR size (so shapes stay fixed).

Extra keys beyond the conventions: ``landmarks`` (68x2 float, detected, crop frame) and
``landmarks_gt`` (68x2, NaN where none) — not available with geometric augmentation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..imresize import imresize
from ..io import read_u8
from ..labels import LABEL_MAPS, flip_labels
from .faces import load_landmarks, read_faces
from .degrade import blind_degrade

__all__ = ["FaceSRDataset", "IMAGE_KEYS", "all_keys", "label_keys", "to_tensor"]

#: the keys read from the stages' files (the label maps are :data:`fsrlib.labels.LABEL_MAPS`)
IMAGE_KEYS = ("hr", "lr", "lr_up", "labels", "landmarks", "landmarks_gt")


def label_keys() -> tuple[str, ...]:
    """``labels`` and every registered label map (computed from it)."""
    return ("labels", *LABEL_MAPS)


def all_keys() -> tuple[str, ...]:
    """Every batch key a :class:`FaceSRDataset` can give."""
    return (*IMAGE_KEYS, *LABEL_MAPS)


def to_tensor(img_u8) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float32 in [0, 1] (the dataset's image tensors)."""
    # numpy arithmetic: per-item tensors are small, and torch's intra-op thread pool
    # costs more than the work in a busy main process
    return torch.from_numpy(np.ascontiguousarray(np.asarray(img_u8).transpose(2, 0, 1), dtype=np.float32) / 255.0)


class FaceSRDataset(Dataset):
    """``FaceSRDataset(root="data", dataset="celeba", split="train", scale=8,
    keys=("hr", "lr", "lr_up"), augment=None, limit=None, seed=0)``.

    ``dataset``: "celeba", "helen", a list, or "all". ``split``: "train", "val", "test",
    "helen50" (the Helen test subset), or "all"."""

    def __init__(self, root="data", dataset: str | Sequence[str] = "celeba", split: str = "train", scale: int = 8,
                 keys: Sequence[str] = ("hr", "lr", "lr_up"), augment: dict | None = None, limit: int | None = None,
                 seed: int = 0, degradation: str = "bicubic", lr_source: str = "disk", hr_size: int = 128,
                 cache: bool = False):
        self.root = Path(root)
        self.scale = int(scale)
        self.hr_size = int(hr_size)
        self.keys = tuple(keys)
        unknown = set(self.keys) - set(all_keys()) - {"name", "dataset", "split"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; available: {all_keys()} "
                             "(a new map: fsrlib.labels.register_map)")
        self.augment = dict(augment or {})
        bad = set(self.augment) - {"hflip", "rot90", "rescale"}
        if bad:
            raise ValueError(f"unknown augmentation {sorted(bad)} (hflip, rot90, rescale)")
        if self.augment and any(k in self.keys for k in ("landmarks", "landmarks_gt")) and any(self.augment.values()):
            raise ValueError("landmarks keys are not available with augmentation")
        if degradation not in ("bicubic", "blind-paper", "blind-released"):
            raise ValueError(f"degradation must be bicubic, blind-paper or blind-released, got {degradation!r}")
        self.degradation = degradation
        if lr_source not in ("disk", "online"):
            raise ValueError("lr_source must be 'disk' or 'online'")
        self.lr_source = lr_source
        self.seed = int(seed)
        self.epoch = 0

        csv = self.root / "faces" / "faces.csv"
        if not csv.exists():
            raise FileNotFoundError(f"{csv} is missing: run the prepare stage first")
        df = read_faces(self.root / "faces")
        if dataset != "all":
            ds = [dataset] if isinstance(dataset, str) else list(dataset)
            df = df[df.dataset.isin(ds)]
        if split == "helen50":
            df = df[df.get("helen50", False).astype(bool)]
        elif split != "all":
            df = df[df.split == split]
        df = df.sort_values(["dataset", "name"], kind="stable").reset_index(drop=True)
        if limit is not None:
            df = df.iloc[: int(limit)].reset_index(drop=True)
        if len(df) == 0:
            raise ValueError(f"no faces for dataset={dataset!r} split={split!r} in {csv}")
        self.df = df
        self.split = split
        self._lm = None
        #: ``cache=True``: every decoded uint8 image is kept in memory after its first read (a
        #: few thousand 128-px faces: ~50 KiB each with LR and labels), so no PNG is decoded
        #: again; with DataLoader workers each worker holds its own copy (the demo uses none)
        self._cache: dict | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.df)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ helpers
    def _path(self, kind: str, r) -> Path:
        s = self.scale
        ds, name = r["dataset"], r["name"]
        return {
            "hr": self.root / "faces" / ds / f"{name}.png",
            "lr": self.root / "lr" / f"x{s}" / ds / f"{name}.png",
            "lr_up": self.root / "lr" / f"x{s}" / "up" / ds / f"{name}.png",
            "labels": self.root / "parsing" / "labels" / ds / f"{name}.png",
        }[kind]

    def _read(self, kind: str, r, i: int):
        if self._cache is None:
            return read_u8(self._path(kind, r))
        key = (kind, i)
        if key not in self._cache:
            a = read_u8(self._path(kind, r))
            a.setflags(write=False)  # shared between items: any in-place edit fails loudly
            self._cache[key] = a
        return self._cache[key]

    def _landmarks(self):
        if self._lm is None:
            self._lm = load_landmarks(self.root / "faces")
        return self._lm

    # ------------------------------------------------------------------ item
    def __getitem__(self, i: int) -> dict:
        i = int(i)
        r = self.df.iloc[i]
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        need_labels = any(k in self.keys for k in label_keys())
        need_lr = any(k in self.keys for k in ("lr", "lr_up"))
        hr = self._read("hr", r, i)
        lab = None
        if need_labels:
            p = self._path("labels", r)
            if not p.exists():
                raise FileNotFoundError(f"{p} is missing: run the parse stage first")
            lab = self._read("labels", r, i)
        online = self.lr_source == "online" or self.degradation != "bicubic"
        lr = lr_up = None
        if need_lr and not online:
            for k in ("lr", "lr_up"):
                if not self._path(k, r).exists():
                    raise FileNotFoundError(f"{self._path(k, r)} is missing: run the degrade stage for x{self.scale} "
                                            f"(or use lr_source='online')")
            lr, lr_up = self._read("lr", r, i), self._read("lr_up", r, i)

        # --- rescale (SPARNet): random zoom, LR regenerated online
        resc = self.augment.get("rescale")
        if resc:
            lo, hi = (float(resc[0]), float(resc[1])) if not np.isscalar(resc) else (1.0, float(resc))
            z = float(rng.uniform(lo, hi))
            side = int(round(self.hr_size / z))
            if side < self.hr_size:
                x0 = int(rng.integers(0, self.hr_size - side + 1))
                y0 = int(rng.integers(0, self.hr_size - side + 1))
                hr = imresize(np.ascontiguousarray(hr[y0:y0 + side, x0:x0 + side]),
                              output_shape=(self.hr_size, self.hr_size))
                if lab is not None:
                    idx = np.floor((np.arange(self.hr_size) + 0.5) * side / self.hr_size).astype(int)
                    lab = lab[y0:y0 + side, x0:x0 + side][idx[:, None], idx[None, :]]
                online = True
        # --- hflip
        hf = self.augment.get("hflip")
        if hf:
            p = 0.5 if hf is True else float(hf)
            if rng.random() < p:
                hr = hr[:, ::-1]
                if lab is not None:
                    lab = flip_labels(lab)
                if lr is not None:
                    lr, lr_up = lr[:, ::-1], lr_up[:, ::-1]
        # --- rot90
        if self.augment.get("rot90"):
            k = int(rng.integers(4))
            if k:
                hr = np.rot90(hr, k)
                if lab is not None:
                    lab = np.rot90(lab, k)
                if lr is not None:
                    lr, lr_up = np.rot90(lr, k), np.rot90(lr_up, k)

        out: dict = {"name": str(r["name"]), "dataset": str(r["dataset"]), "split": str(r["split"])}
        hr_t = to_tensor(hr)
        if "hr" in self.keys:
            out["hr"] = hr_t
        if need_lr:
            n = self.hr_size // self.scale
            if self.degradation != "bicubic":
                res = blind_degrade(np.ascontiguousarray(hr), rng, preset=self.degradation.split("-", 1)[1])
                lr_up_t = to_tensor(res["lr_up"])
                lr_t = to_tensor(imresize(res["lr_up"], output_shape=(n, n)))
                if "hr" in self.keys and res["params"].get("gray"):
                    out["hr"] = to_tensor(res["hr"])
            elif online:
                lr_u8 = imresize(np.ascontiguousarray(hr), output_shape=(n, n))
                lr_t = to_tensor(lr_u8)
                lr_up_t = to_tensor(imresize(lr_u8, output_shape=(self.hr_size, self.hr_size)))
            else:
                lr_t, lr_up_t = to_tensor(lr), to_tensor(lr_up)
            if "lr" in self.keys:
                out["lr"] = lr_t
            if "lr_up" in self.keys:
                out["lr_up"] = lr_up_t
        if lab is not None:
            lab = np.ascontiguousarray(lab)
            if "labels" in self.keys:
                out["labels"] = torch.from_numpy(lab.astype(np.int64))
            for k in self.keys:
                if k in LABEL_MAPS:
                    out[k] = torch.from_numpy(LABEL_MAPS[k](lab, self.scale))
        if "landmarks" in self.keys or "landmarks_gt" in self.keys:
            lm = self._landmarks()[f"{r['dataset']}/{r['name']}"]
            if "landmarks" in self.keys:
                out["landmarks"] = torch.from_numpy(np.asarray(lm["detected"], np.float32))
            if "landmarks_gt" in self.keys:
                g = lm["gt"] if lm["gt"] is not None else np.full((68, 2), np.nan, np.float32)
                out["landmarks_gt"] = torch.from_numpy(np.asarray(g, np.float32))
        return out
