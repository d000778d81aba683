"""Full-reference metrics on pretrained networks: LPIPS and FID (the shared conventions and
the pixel metrics: :mod:`fsrlib.metrics.image`).

* **LPIPS** (``lpips`` package v0.1, AlexNet by default, inputs in [-1, 1], RGB). Its linear
  heads ship with the package; the AlexNet backbone is torchvision's ImageNet checkpoint,
  normally downloaded on first use. Here it is looked up explicitly (``backbone_weights`` or
  the torch hub cache) and never downloaded unless ``offline=False``; when absent the metric is
  reported *missing* with the reason (never 0, never a random-weight backbone).
* **FID** (``pytorch-fid``, Inception-v3 pool3 2048-d, images resized to 299 bilinear inside
  the network): a set metric (no per-image values), SR set vs HR set. The FID Inception
  weights are a download: missing with the reason when not on disk.


Their weights are looked up explicitly (:func:`torch_hub_checkpoint`), never downloaded unless
``offline=False``; when absent the metric is reported *missing* with the reason.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import math
import re
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from ..io import OfflineError, fetch
from ..registry import METRICS
from .image import Metric, check_pair, quantize

__all__ = ["LPIPS", "FID", "FID_WEIGHTS_URL", "torch_hub_checkpoint"]


# ---------------------------------------------------------------------- weights on disk
def torch_hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url(url)`` keeps (and first looks for) the file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url.split("?")[0]).name


_HASH_RE = re.compile(r"-([a-f0-9]{6,})\.")


@functools.lru_cache(maxsize=None)
def _sha256_prefix_ok(path: str, mtime: float, prefix: str) -> bool:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(1 << 22):
            h.update(b)
    return h.hexdigest().startswith(prefix)


def _resolve_weights(url: str, explicit: str | Path | None, offline: bool, what: str,
                     timeout: float = 60.0) -> tuple[Path | None, str]:
    """Find pretrained weights without ever blocking on the network.

    Order: ``explicit`` path, then the torch hub cache (where torchvision / pytorch-fid would
    have put a download). With ``offline=False`` and no file, one download attempt is made with
    ``timeout`` (``fsrlib.io.fetch``). Files named like torchvision's (``name-<sha256 prefix>.pth``)
    are checked against that prefix, as torch hub does. Returns ``(path, "")`` or ``(None, reason)``."""
    canonical = Path(url).name
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_file():
            return None, f"{what} weights not found at {p}"
    else:
        p = torch_hub_checkpoint(url)
        if not p.is_file():
            if offline:
                return None, (f"{what} weights not on this machine (offline=true): expected in the torch hub "
                              f"cache, `$TORCH_HOME/hub/checkpoints/{p.name}` (from {url}); put the file there "
                              "or pass its path")
            try:
                fetch(url, p, what=what, timeout=timeout)
            except OfflineError as e:
                return None, f"{what} weights could not be downloaded: {str(e).splitlines()[0]}"
    m = _HASH_RE.search(p.name)
    if p.name == canonical and m and not _sha256_prefix_ok(str(p), p.stat().st_mtime, m.group(1)):
        return None, f"{what} weights at {p} fail the sha256 prefix check {m.group(1)}; delete and re-download"
    return p, ""


# ---------------------------------------------------------------------- LPIPS
_TV_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


@functools.lru_cache(maxsize=4)
def _lpips_model(net: str, version: str, backbone_path: str, device: str):
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        # pnet_rand=True: build the trunk *without* torchvision's download; the ImageNet trunk
        # is then loaded from the explicit file below (strict, every tensor accounted for).
        model = lpips.LPIPS(pretrained=True, net=net, version=version, pnet_rand=True, verbose=False)
    tv_state = torch.load(backbone_path, map_location="cpu", weights_only=True)
    mapped = {}
    for k in model.net.state_dict():
        # lpips slices hold torchvision's ``features[i]`` modules as ``slice<j>.<i>``
        _, idx, param = k.split(".", 2)
        mapped[k] = tv_state[f"features.{idx}.{param}"]
    model.net.load_state_dict(mapped, strict=True)
    return model.eval().to(device)


@METRICS.register("lpips")
class LPIPS(Metric):
    """LPIPS v0.1 (``lpips`` package), AlexNet trunk by default, RGB in [-1, 1], lower is better.

    ``backbone_weights``: path of torchvision's ImageNet checkpoint of the trunk
    (``alexnet-owt-7be5be79.pth``); default: the torch hub cache. ``offline=True`` (default)
    never downloads; ``offline=False`` tries once with a timeout."""

    key = "lpips"
    higher_is_better = False
    range = (0.0, math.inf)

    def __init__(self, net: str = "alex", version: str = "0.1", backbone_weights: str | None = None,
                 offline: bool = True, device: str = "cpu", batch_size: int = 32, name: str | None = None):
        super().__init__(name or ("lpips" if net == "alex" else f"lpips_{net}"))
        if net not in _TV_URLS:
            raise ValueError(f"net must be one of {list(_TV_URLS)}, got {net!r}")
        self.net, self.version, self.backbone_weights = net, version, backbone_weights
        self.offline, self.device, self.batch_size = bool(offline), device, int(batch_size)
        self._state: tuple[Path | None, str] | None = None

    @property
    def convention(self) -> str:
        return f"lpips v{self.version} {self.net}, RGB uint8 -> [-1,1], no crop"

    def available(self) -> tuple[bool, str]:
        if self._state is None:
            heads = _lpips_dir() / "weights" / f"v{self.version}" / f"{self.net}.pth"
            if not heads.is_file():
                self._state = (None, f"lpips linear heads missing at {heads}")
            else:
                what = {"alex": "AlexNet", "vgg": "VGG16", "squeeze": "SqueezeNet1.1"}[self.net] + " backbone"
                self._state = _resolve_weights(_TV_URLS[self.net], self.backbone_weights, self.offline, what)
        return self._state[0] is not None, self._state[1]

    def model(self):
        ok, reason = self.available()
        if not ok:
            raise RuntimeError(f"LPIPS unavailable: {reason}")
        return _lpips_model(self.net, self.version, str(self._state[0]), self.device)

    @torch.inference_mode()
    def __call__(self, sr, hr) -> torch.Tensor:
        model = self.model()
        a, b = quantize(sr), quantize(hr)
        check_pair(a, b)
        out = []
        for i in range(0, a.shape[0], self.batch_size):
            x = (a[i:i + self.batch_size] / 127.5 - 1.0).float().to(self.device)
            y = (b[i:i + self.batch_size] / 127.5 - 1.0).float().to(self.device)
            out.append(model(x, y).flatten().double().cpu())
        return torch.cat(out)


def _lpips_dir() -> Path:
    """The lpips package folder, found without importing it (importing costs torchvision)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent/lpips (pip install lpips)")
    return Path(list(spec.submodule_search_locations)[0])


METRICS.register_preset("lpips_vgg", "lpips", net="vgg")


# ---------------------------------------------------------------------- FID
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")


@functools.lru_cache(maxsize=2)
def _fid_model(weights: str, dims: int, device: str):

    import pytorch_fid.inception as inc

    def _load(url, *a, **k):  # replaces the download inside pytorch-fid's builder
        return torch.load(weights, map_location="cpu", weights_only=True)

    with mock.patch.object(inc, "load_state_dict_from_url", _load), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = inc.InceptionV3([inc.InceptionV3.BLOCK_INDEX_BY_DIM[dims]], resize_input=True,
                                normalize_input=True, use_fid_inception=True)
    return model.eval().to(device)


@METRICS.register("fid")
class FID(Metric):
    """FID between the SR set and the HR set (pytorch-fid's Inception). A set metric."""

    key = "fid"
    higher_is_better = False
    range = (0.0, math.inf)
    per_image = False

    def __init__(self, weights: str | None = None, offline: bool = True, dims: int = 2048,
                 device: str = "cpu", batch_size: int = 50, name: str | None = None):
        super().__init__(name)
        self.weights, self.offline, self.dims = weights, bool(offline), int(dims)
        self.device, self.batch_size = device, int(batch_size)
        self._state: tuple[Path | None, str] | None = None
        self.reset()

    @property
    def convention(self) -> str:
        return f"pytorch-fid Inception-v3 pool3 {self.dims}-d, uint8 RGB resized to 299, SR set vs HR set"

    def available(self) -> tuple[bool, str]:
        if self._state is None:
            self._state = _resolve_weights(FID_WEIGHTS_URL, self.weights, self.offline, "FID Inception-v3")
        return self._state[0] is not None, self._state[1]

    def reset(self) -> None:
        self._acts: dict[str, list[np.ndarray]] = {"sr": [], "hr": []}

    @torch.inference_mode()
    def features(self, x) -> np.ndarray:
        ok, reason = self.available()
        if not ok:
            raise RuntimeError(f"FID unavailable: {reason}")
        model = _fid_model(str(self._state[0]), self.dims, self.device)
        q = quantize(x)
        out = []
        for i in range(0, q.shape[0], self.batch_size):
            f = model((q[i:i + self.batch_size] / 255.0).float().to(self.device))[0]
            out.append(f.flatten(1).double().cpu().numpy())
        return np.concatenate(out)

    def update(self, sr, hr) -> None:
        self._acts["sr"].append(self.features(sr))
        self._acts["hr"].append(self.features(hr))

    def compute(self) -> float:
        from pytorch_fid.fid_score import calculate_frechet_distance

        a, b = np.concatenate(self._acts["sr"]), np.concatenate(self._acts["hr"])
        if len(a) < 2 or len(b) < 2:
            raise ValueError("FID needs at least 2 images per set")
        with warnings.catch_warnings():  # pytorch-fid 0.3 passes scipy's deprecated sqrtm(disp=)
            warnings.simplefilter("ignore", DeprecationWarning)
            return float(calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False),
                                                    b.mean(0), np.cov(b, rowvar=False)))

    def __call__(self, sr, hr) -> float:
        self.reset()
        self.update(sr, hr)
        return self.compute()
