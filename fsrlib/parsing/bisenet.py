"""The face-parsing BiSeNet of zllrunning/face-parsing.PyTorch (CelebAMask-HQ, 19 classes,
checkpoint ``79999_iter.pth``), re-implemented so that the official state dict loads with
``strict=True``.

Architecture (module names = the official state-dict keys):

* ``cp`` ContextPath: ``resnet`` (ResNet-18 trunk: ``conv1``, ``bn1``, ``layer1..4`` of two
  BasicBlocks each, ``downsample.0/1`` where the shape changes; no fc), attention refinement
  modules ``arm16`` (256->128) and ``arm32`` (512->128) (``conv`` ConvBNReLU, ``conv_atten``,
  ``bn_atten``), ``conv_head32``, ``conv_head16`` (128->128, 3x3), ``conv_avg`` (512->128, 1x1).
* Spatial path: **the released model has none** ("here self.sp is deleted"): the ResNet's
  1/8 feature (layer2 output, 128 ch) stands in for it. We follow the checkpoint.
* ``ffm`` FeatureFusionModule(256, 256): ``convblk`` (1x1 ConvBNReLU), ``conv1`` (256->64),
  ``conv2`` (64->256), attention = sigmoid(conv2(relu(conv1(avgpool)))), out = f*att + f.
* ``conv_out`` BiSeNetOutput(256, 256, 19), ``conv_out16`` / ``conv_out32``
  BiSeNetOutput(128, 64, 19): ``conv`` (3x3 ConvBNReLU) + ``conv_out`` (1x1, no bias).
  Outputs are bilinearly upsampled (align_corners=True) to the input size; inference uses
  the first.

Preprocessing as the official ``test.py``: the RGB face resized to 512x512 with PIL
``BILINEAR`` (uint8), ``ToTensor``, ImageNet normalisation (mean 0.485/0.456/0.406,
std 0.229/0.224/0.225). Labels: argmax at 512, back to 128 with nearest (PIL NEAREST:
pixel ``4 i + 2``), as W-Net's spec (section 2.1) says.

Weights: :data:`WEIGHTS` lists public copies. The original is on Google Drive (id
154JgKpzCPW82qINcVieuPH3fZ2e0P812, no published checksum). The clibdev fork republishes it
on GitHub releases as ``face-parsing-bisenet.pth`` with a published SHA-256; the plain
``79999_iter.pth`` copies have no published checksum, so theirs is recorded at first
download (``$FSR_CACHE/recorded_checksums.json``) and checked afterwards. Without the file
and without network: :class:`fsrlib.io.OfflineError` — never a silent switch to another
parser.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from ..io import OfflineError, cache_dir, fetch, sha256sum, write_json
from ..labels import LR_PAIRS

__all__ = ["BiSeNet", "BiSeNetParser", "WEIGHTS", "load_bisenet_weights", "preprocess", "IMAGENET_MEAN",
           "IMAGENET_STD", "official_key_shapes"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

WEIGHTS = [
    {"url": "https://github.com/clibdev/face-parsing.PyTorch/releases/latest/download/face-parsing-bisenet.pth",
     "file": "face-parsing-bisenet.pth",
     "sha256": "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567",
     "status": "sha256 published in the clibdev/face-parsing.PyTorch README (re-release of 79999_iter.pth)"},
    {"url": "https://github.com/clibdev/face-parsing.PyTorch/releases/latest/download/79999_iter.pth",
     "file": "79999_iter.pth", "sha256": None, "status": "no published checksum: recorded at first download"},
    {"url": "https://huggingface.co/vivym/face-parsing-bisenet/resolve/main/79999_iter.pth",
     "file": "79999_iter.pth", "sha256": None, "status": "no published checksum: recorded at first download"},
]

OFFLINE_HINT = (
    "The BiSeNet face parser needs the zllrunning face-parsing.PyTorch checkpoint 79999_iter.pth "
    "(CelebAMask-HQ, 19 classes). Download it on a connected machine (original: Google Drive id "
    "154JgKpzCPW82qINcVieuPH3fZ2e0P812) and put it at $FSR_CACHE/bisenet/79999_iter.pth, or pass "
    "weights=/path/to/79999_iter.pth; or choose parse.parser: landmark in params.yaml (a documented "
    "substitute, recorded in data/parsing/parser.json)."
)


# ====================================================================== architecture
class ConvBNReLU(nn.Module):
    def __init__(self, cin, cout, ks=3, stride=1, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.downsample is None else self.downsample(x)
        return F.relu(s + r)


def _layer(cin, cout, stride):
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


def _ch(n: int, width: float) -> int:
    """Channel count ``n`` of the official network scaled by ``width`` (1 = the official one)."""
    return n if width == 1 else max(4, int(round(n * width)))


class Resnet18(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c = [_ch(n, width) for n in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(3, c[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c[0])
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _layer(c[0], c[0], 1)
        self.layer2 = _layer(c[0], c[1], 2)
        self.layer3 = _layer(c[1], c[2], 2)
        self.layer4 = _layer(c[2], c[3], 2)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        f8 = self.layer2(self.layer1(x))
        f16 = self.layer3(f8)
        return f8, f16, self.layer4(f16)


class AttentionRefinementModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout, 3, 1, 1)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x):
        f = self.conv(x)
        a = torch.sigmoid(self.bn_atten(self.conv_atten(F.adaptive_avg_pool2d(f, 1))))
        return f * a


class ContextPath(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        c128, c256, c512 = (_ch(n, width) for n in (128, 256, 512))
        self.resnet = Resnet18(width)
        self.arm16 = AttentionRefinementModule(c256, c128)
        self.arm32 = AttentionRefinementModule(c512, c128)
        self.conv_head32 = ConvBNReLU(c128, c128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(c128, c128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(c512, c128, 1, 1, 0)

    def forward(self, x):
        f8, f16, f32 = self.resnet(x)
        avg = self.conv_avg(F.adaptive_avg_pool2d(f32, 1))
        avg_up = F.interpolate(avg, f32.shape[2:], mode="nearest")
        f32_up = self.conv_head32(F.interpolate(self.arm32(f32) + avg_up, f16.shape[2:], mode="nearest"))
        f16_up = self.conv_head16(F.interpolate(self.arm16(f16) + f32_up, f8.shape[2:], mode="nearest"))
        return f8, f16_up, f32_up


class FeatureFusionModule(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, 1, 1, 0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, fsp, fcp):
        f = self.convblk(torch.cat([fsp, fcp], dim=1))
        a = torch.sigmoid(self.conv2(F.relu(self.conv1(F.adaptive_avg_pool2d(f, 1)))))
        return f * a + f


class BiSeNetOutput(nn.Module):
    def __init__(self, cin, mid, n_classes):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x):
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """``forward(x) -> (out, out16, out32)`` logits at the input size (the official order).
    ``width`` scales every channel count (1 = the official network, whose checkpoint loads;
    e.g. 0.25 for training on a CPU)."""

    def __init__(self, n_classes: int = 19, width: float = 1.0):
        super().__init__()
        self.width = float(width)
        c64, c128, c256 = (_ch(n, width) for n in (64, 128, 256))
        self.cp = ContextPath(width)
        self.ffm = FeatureFusionModule(2 * c128, c256)   # cat(f8, cp8)
        self.conv_out = BiSeNetOutput(c256, c256, n_classes)
        self.conv_out16 = BiSeNetOutput(c128, c64, n_classes)
        self.conv_out32 = BiSeNetOutput(c128, c64, n_classes)

    def forward(self, x):
        h, w = x.shape[2:]
        f8, cp8, cp16 = self.cp(x)
        fuse = self.ffm(f8, cp8)
        outs = [self.conv_out(fuse), self.conv_out16(cp8), self.conv_out32(cp16)]
        return tuple(F.interpolate(o, (h, w), mode="bilinear", align_corners=True) for o in outs)


def official_key_shapes(n_classes: int = 19) -> dict:
    """The state-dict keys and shapes of the official checkpoint, written out from the
    official module structure (model.py / resnet.py) independently of :class:`BiSeNet`."""
    k: dict = {}

    def bn(p, c):
        for s in ("weight", "bias", "running_mean", "running_var"):
            k[f"{p}.{s}"] = (c,)
        k[f"{p}.num_batches_tracked"] = ()

    def cbr(p, cin, cout, ks):
        k[f"{p}.conv.weight"] = (cout, cin, ks, ks)
        bn(f"{p}.bn", cout)

    r = "cp.resnet"
    k[f"{r}.conv1.weight"] = (64, 3, 7, 7)
    bn(f"{r}.bn1", 64)
    for li, (cin, cout) in enumerate([(64, 64), (64, 128), (128, 256), (256, 512)], start=1):
        for b in range(2):
            p = f"{r}.layer{li}.{b}"
            ci = cin if b == 0 else cout
            k[f"{p}.conv1.weight"] = (cout, ci, 3, 3)
            bn(f"{p}.bn1", cout)
            k[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if b == 0 and li > 1:
                k[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
    for name, cin in (("arm16", 256), ("arm32", 512)):
        cbr(f"cp.{name}.conv", cin, 128, 3)
        k[f"cp.{name}.conv_atten.weight"] = (128, 128, 1, 1)
        bn(f"cp.{name}.bn_atten", 128)
    cbr("cp.conv_head32", 128, 128, 3)
    cbr("cp.conv_head16", 128, 128, 3)
    cbr("cp.conv_avg", 512, 128, 1)
    cbr("ffm.convblk", 256, 256, 1)
    k["ffm.conv1.weight"] = (64, 256, 1, 1)
    k["ffm.conv2.weight"] = (256, 64, 1, 1)
    for name, cin, mid in (("conv_out", 256, 256), ("conv_out16", 128, 64), ("conv_out32", 128, 64)):
        cbr(f"{name}.conv", cin, mid, 3)
        k[f"{name}.conv_out.weight"] = (n_classes, mid, 1, 1)
    return k


# ====================================================================== weights
def _recorded_file() -> Path:
    return cache_dir() / "recorded_checksums.json"


def load_bisenet_weights(weights=None, offline: bool = False, progress: bool = True) -> Path:
    """Path of a verified checkpoint: ``weights`` if given, else one in
    ``$FSR_CACHE/bisenet``, else downloaded from :data:`WEIGHTS`. Raises OfflineError."""
    if weights is not None:
        p = Path(weights)
        if not p.exists():
            raise OfflineError(f"BiSeNet weights {p} do not exist.\n" + OFFLINE_HINT)
        return p
    d = cache_dir() / "bisenet"
    rec_path = _recorded_file()
    rec = json.loads(rec_path.read_text()) if rec_path.exists() else {}
    errors = []
    for spec in WEIGHTS:
        dest = d / spec["file"]
        sha = spec["sha256"] or rec.get(f"bisenet/{spec['file']}")
        if offline and not dest.exists():
            errors.append(f"{dest}: not present (offline)")
            continue
        try:
            p = fetch(spec["url"], dest, sha256=sha, what=f"BiSeNet {spec['file']}", progress=progress,
                      offline_hint=OFFLINE_HINT)
        except OfflineError as e:
            errors.append(str(e).splitlines()[0])
            continue
        if sha is None:
            rec[f"bisenet/{spec['file']}"] = sha256sum(p)
            write_json(rec_path, rec)
        return p
    raise OfflineError("BiSeNet weights are not available: " + "; ".join(errors) + "\n" + OFFLINE_HINT)


def load_state_dict_official(model: BiSeNet, state: dict) -> None:
    """Load an official state dict strictly (after dropping a ``module.`` prefix and adding
    ``num_batches_tracked`` buffers that pre-0.4.1 checkpoints lack)."""
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    own = model.state_dict()
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros_like(v)
    model.load_state_dict(state, strict=True)


# ====================================================================== preprocessing + parser
def preprocess(images_uint8) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 -> (N, 3, 512, 512) float, as the official test.py."""
    arr = np.asarray(images_uint8)
    if arr.ndim == 3:
        arr = arr[None]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    out = []
    for a in arr:
        im = Image.fromarray(a).resize((512, 512), Image.BILINEAR)
        t = torch.from_numpy(np.array(im, dtype=np.float32)).permute(2, 0, 1) / 255.0
        out.append((t - mean) / std)
    return torch.stack(out)


_SUBJECT_TO_IMAGE_LR = np.arange(256, dtype=np.uint8)
for _a, _b in LR_PAIRS:
    _SUBJECT_TO_IMAGE_LR[_a], _SUBJECT_TO_IMAGE_LR[_b] = _b, _a


def labels_512_to(labels512: np.ndarray, size: int = 128) -> np.ndarray:
    """Nearest (PIL NEAREST) from 512 to ``size``: picks pixel floor((i + 0.5) * 512 / size)."""
    idx = np.floor((np.arange(size) + 0.5) * labels512.shape[-1] / size).astype(int)
    return labels512[..., idx[:, None], idx[None, :]]


class BiSeNetParser:
    """Parser interface: ``parse(images, landmarks=None) -> (N, H, W) uint8 labels``."""

    name = "bisenet"
    needs_landmarks = False

    def __init__(self, weights=None, device: str = "cpu", batch_size: int = 8, offline: bool = False,
                 model: BiSeNet | None = None):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if model is None:
            path = load_bisenet_weights(weights, offline=offline)
            model = BiSeNet(19)
            load_state_dict_official(model, torch.load(path, map_location="cpu", weights_only=True))
            self.weights = {"file": Path(path).name, "sha256": sha256sum(path)}
        else:
            self.weights = {"file": None, "sha256": None, "note": "model passed in (not the official weights)"}
        self.model = model.to(self.device).eval()

    @torch.no_grad()
    def parse(self, images, landmarks=None) -> np.ndarray:
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        size = arr.shape[1]
        out = []
        for i in range(0, len(arr), self.batch_size):
            x = preprocess(arr[i:i + self.batch_size]).to(self.device)
            lab = self.model(x)[0].argmax(1).to(torch.uint8).cpu().numpy()
            out.append(labels_512_to(lab, size))
        # by name: the checkpoint learnt CelebAMask-HQ's l_ = the subject's left (the image's right,
        # measured on the masks: ../shared/datasets/README.md); fsrlib's l_ is image-left
        return _SUBJECT_TO_IMAGE_LR[np.concatenate(out)]

    def info(self) -> dict:
        return {"parser": self.name, "weights": self.weights,
                "source": "zllrunning/face-parsing.PyTorch BiSeNet, CelebAMask-HQ 19 classes",
                "preprocess": "PIL bilinear 128->512, ImageNet norm; argmax at 512; nearest 512->128",
                "left_right": "checkpoint l_/r_ (subject's) swapped to fsrlib's image-left l_"}
