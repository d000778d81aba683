"""The released ``accumulate`` (SPARNetHD): the whole state dict is averaged, buffers included."""
import torch
import torch.nn as nn

from fsrlib.train.ema import ModelEMA


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, 4, 3)), nn.BatchNorm2d(4))


def test_all_buffers_averaged_like_the_released_code():
    live = _net().train()
    ema = ModelEMA(live, decay=0.9)  # default: buffers="all"
    assert ema.buffers == "all"
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live(torch.randn(2, 3, 8, 8) + 3)  # moves BN stats and the spectral-norm u/v
    ema.update(live)
    now, cur = ema.module.state_dict(), live.state_dict()
    for k, v in now.items():
        if v.is_floating_point():  # weight_orig, bias, weight_u, weight_v, running stats
            assert torch.allclose(v, 0.9 * start[k] + 0.1 * cur[k]), k
        else:
            assert torch.equal(v, cur[k]), k
    assert not torch.allclose(now["0.weight_u"], cur["0.weight_u"])
    only_bn = ModelEMA(_net(), decay=0.9, buffers="average")
    only_bn.update(live)
    assert torch.equal(only_bn.module.state_dict()["0.weight_u"], cur["0.weight_u"])  # copied
