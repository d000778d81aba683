"""The model zoo's contract, checked on any registered model (tests/test_zoo_contract.py runs it
over every name of ``MODELS``; tests/test_add_method.py on a toy method added the README's way).

An SR model (:class:`fsrlib.models.common.FSRModel`), built at its declared ``slim`` width:
- builds at every scale it declares (``scales``), and ``expected_input_size()`` is the size of
  the input its ``input_kind`` says (128 upsampled, 128 / scale raw LR);
- ``forward_maps`` returns exactly ``sr`` (unless ``outputs_sr`` is False) and the keys it
  declares in ``maps``, all from :data:`fsrlib.models.common.MAP_KINDS`;
- ``sr`` (and a ``coarse`` image) is ``B x 3 x hr_size x hr_size``, finite; ``forward`` is
  ``forward_maps(...)["sr"]``; attention maps lie in [0, 1]; a declared ``value_range`` is
  (0, 1) or (-1, 1).
A discriminator takes a [0, 1] image and returns what :func:`fsrlib.losses.split_d_output`
reads, with finite scores.
"""
from __future__ import annotations

import torch

from fsrlib.losses import split_d_output
from fsrlib.models.common import MAP_KINDS, FSRModel
from fsrlib.registry import MODELS


def model_class(name: str):
    return MODELS.get(name)


def is_sr_model(name: str) -> bool:
    cls = model_class(name)
    return isinstance(cls, type) and issubclass(cls, FSRModel)


def _prior(m: FSRModel, x: torch.Tensor) -> torch.Tensor | None:
    if not m.needs_prior:
        return None
    c = int(getattr(m, "parsing_channels", 1))
    lr = m.hr_size // m.scale
    return torch.rand(x.shape[0], c, lr, lr)


def check_sr_model(name: str, scales=None, batch: int = 1, **kw) -> None:
    cls = model_class(name)
    assert tuple(cls.value_range) in ((0.0, 1.0), (-1.0, 1.0)), f"{name}: value_range {cls.value_range}"
    for k, s in enumerate(scales or cls.scales):
        torch.manual_seed(0)
        m = MODELS.build({"type": name, **cls.slim, **kw}, scale=s).eval()
        size = m.expected_input_size()
        want = m.hr_size if m.input_kind == "upsampled" else m.hr_size // s
        assert m.input_kind in ("lr", "upsampled") and size == want, f"{name} x{s}: input {size}, expected {want}"
        unknown = set(m.maps) - set(MAP_KINDS)
        assert not unknown, f"{name}: maps {sorted(unknown)} not in MAP_KINDS {sorted(MAP_KINDS)}"
        x = torch.rand(batch, 3, size, size)
        prior = _prior(m, x)
        with torch.no_grad():
            out = m.forward_maps(x, prior)
        expected = ({"sr"} if m.outputs_sr else set()) | set(m.maps)
        assert set(out) == expected, f"{name} x{s}: forward_maps returns {sorted(out)}, declares {sorted(expected)}"
        for key in ("sr", "coarse"):
            if key in out:
                t = out[key]
                assert t.shape == (batch, 3, m.hr_size, m.hr_size), f"{name} x{s}: {key} {tuple(t.shape)}"
                assert t.dtype == torch.float32 and torch.isfinite(t).all(), f"{name} x{s}: {key} not finite float32"
        if m.outputs_sr and k == 0:
            with torch.no_grad():
                assert torch.equal(m(x, prior), out["sr"]), f"{name}: forward != forward_maps()['sr']"
        for a in out.get("attention", []):
            assert a.shape[0] == batch and float(a.min()) >= 0.0 and float(a.max()) <= 1.0, f"{name}: attention range"
        if "attention_fau" in out:
            assert len(out["attention_fau"]) == len(out["attention"])
        for key in ("parsing", "prior"):
            if key in out:
                assert out[key].shape[0] == batch and torch.isfinite(out[key]).all(), f"{name}: {key} not finite"


def check_discriminator(name: str, batch: int = 1) -> None:
    cls = model_class(name)
    torch.manual_seed(0)
    d = MODELS.build({"type": name, **getattr(cls, "slim", {})}).eval()
    with torch.no_grad():
        scales = split_d_output(d(torch.rand(batch, 3, 128, 128)))
    assert scales, f"{name}: no discriminator output"
    for feats, score in scales:
        assert score.shape[0] == batch and torch.isfinite(score).all(), f"{name}: score"
        assert all(torch.isfinite(f).all() for f in feats)
