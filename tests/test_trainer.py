"""Trainer tests: one step of each recipe lowers the loss, two-stage prior, init_from,
EMA with BatchNorm buffers, bit-exact resume after SIGKILL, two-process DDP on gloo.

The data is a tiny in-memory set of ``skimage.data.astronaut()`` crops with the keys of
``docs/conventions.md`` (no dependency on ``fsrlib.data``). This file doubles as the
worker script of the subprocess tests: ``python tests/test_trainer.py resume|ddp ...``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fsrlib.inference import RunPredictor, load_run_model  # noqa: E402
from fsrlib.models.common import FSRModel  # noqa: E402
from fsrlib.registry import MODELS, ConfigError  # noqa: E402
from fsrlib.train import trainer as T  # noqa: E402
from fsrlib.train.distributed import ShardedBatchSampler  # noqa: E402
from fsrlib.train.ema import ModelEMA  # noqa: E402
from fsrlib.train.schedules import lr_factor  # noqa: E402
from fsrlib.train.schema import validate_config  # noqa: E402

SCALE = 8


# ====================================================================== tiny data
class AstronautFaces(torch.utils.data.Dataset):
    """``n`` 128x128 crops of skimage's astronaut with every dataset key."""

    def __init__(self, n: int = 16, scale: int = SCALE, offset: int = 0, aug: bool = False):
        from skimage.data import astronaut

        img = torch.from_numpy(astronaut()).permute(2, 0, 1).float() / 255.0  # 3x512x512
        g = torch.Generator().manual_seed(1234 + offset)
        ys = torch.randint(0, 512 - 128, (n,), generator=g)
        xs = torch.randint(0, 512 - 128, (n,), generator=g)
        hr = torch.stack([img[:, y:y + 128, x:x + 128] for y, x in zip(ys.tolist(), xs.tolist())])
        q = lambda t: (t.clamp(0, 1) * 255).round() / 255  # noqa: E731  (uint8 round trip)
        lr = q(F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False))
        lr_up = q(F.interpolate(lr, size=128, mode="bicubic", align_corners=False))
        skin = (hr[:, :1] > 0.5).float().expand(-1, 3, -1, -1).contiguous()
        skin_lr = F.interpolate(skin, scale_factor=1 / scale, mode="bicubic", antialias=True,
                                align_corners=False).clamp(0, 1)
        labels = (hr.mean(1) * 18).long().clamp(0, 18)
        parts11 = torch.stack([(labels == k) for k in range(11)], 1).float()
        regions = torch.zeros(n, 4, 128, 128)
        for r, (y, x) in enumerate([(40, 30), (40, 80), (64, 56), (90, 50)]):
            regions[:, r, y:y + 12, x:x + 20] = 1
        regions[0, 2] = 0  # an empty region
        self.items = dict(hr=hr, lr=lr, lr_up=lr_up, skin=skin, skin_lr=skin_lr, labels=labels,
                          parts11=parts11, regions=regions)
        self.n, self.aug, self.epoch = n, aug, 0

    def set_epoch(self, epoch):  # FaceSRDataset's protocol: per-item randomness from (epoch, index)
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        d = {k: v[i] for k, v in self.items.items()}
        if self.aug:  # a random brightness change drawn from (epoch, i)
            g = torch.Generator().manual_seed(1000 * self.epoch + i)
            gain = 0.8 + 0.4 * torch.rand((), generator=g)
            d = {k: (v * gain).clamp(0, 1) if k in ("hr", "lr", "lr_up") else v for k, v in d.items()}
        d.update(name=f"astro{i:03d}", dataset="astronaut", split="train")
        return d


# ====================================================================== tiny models
def _register(name):
    def deco(cls):
        if name not in MODELS:
            MODELS.register(name)(cls)
        return MODELS.get(name)
    return deco


@_register("test_tiny_sr")
class TinySR(FSRModel):
    """LR -> conv -> BN -> dropout -> upsample; outputs sr (+ an unused-by-loss map)."""

    input_kind = "lr"

    def __init__(self, scale=SCALE, ch=8, dropout=0.1):
        super().__init__(scale)
        self.head = nn.Conv2d(3, ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(ch)
        self.drop = nn.Dropout(dropout)
        self.tail = nn.Conv2d(ch, 3, 3, padding=1)

    def _forward(self, x, prior=None):
        h = self.drop(F.relu(self.bn(self.head(x))))
        up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return {"sr": up + F.interpolate(self.tail(h), scale_factor=self.scale, mode="nearest"),
                "attention": [torch.sigmoid(h[:, :1])]}


@_register("test_tiny_plain")
class TinyPlain(FSRModel):
    """No BN / dropout (for DDP-vs-single-process equality)."""

    input_kind = "upsampled"

    def __init__(self, scale=SCALE, ch=8):
        super().__init__(scale)
        self.body = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 3, 3, padding=1))

    def _forward(self, x, prior=None):
        return {"sr": x + self.body(x)}


@_register("test_tiny_aux")
class TinyAux(FSRModel):
    """Upsampled input; outputs coarse, parsing (11 maps) and sr (thesis-like)."""

    input_kind = "upsampled"

    def __init__(self, scale=SCALE, ch=8):
        super().__init__(scale)
        self.coarse = nn.Conv2d(3, 3, 3, padding=1)
        self.parse = nn.Conv2d(3, 11, 3, padding=1)
        self.fuse = nn.Conv2d(14, 3, 3, padding=1)

    def _forward(self, x, prior=None):
        c = x + self.coarse(x)
        p = self.parse(c)
        return {"coarse": c, "parsing": p, "sr": c + self.fuse(torch.cat([c, p], 1))}


@_register("test_tiny_parsing")
class TinyParsing(FSRModel):
    """LR -> parsing map at LR size (ParsingNet-like, no sr)."""

    input_kind = "lr"

    def __init__(self, scale=SCALE, ch=8):
        super().__init__(scale)
        self.body = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 3, 3, padding=1))

    def _forward(self, x, prior=None):
        return {"parsing": self.body(x)}


@_register("test_tiny_prior_sr")
class TinyPriorSR(FSRModel):
    """FishFSRNet-like: LR + LR-size prior -> sr; remembers the last prior it saw."""

    input_kind = "lr"
    needs_prior = True

    def __init__(self, scale=SCALE, ch=8):
        super().__init__(scale)
        self.body = nn.Sequential(nn.Conv2d(6, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 3, 3, padding=1))
        self.seen_prior = None

    def _forward(self, x, prior=None):
        self.seen_prior = prior.detach().clone()
        h = self.body(torch.cat([x, prior], 1))
        return {"sr": F.interpolate(x + h, scale_factor=self.scale, mode="bilinear", align_corners=False)}


@_register("test_tiny_d")
class TinyMultiScaleD(nn.Module):
    """Two scales, each [feat1, feat2, score] (the patchgan_ms contract); BN inside."""

    def __init__(self, ch=8):
        super().__init__()
        self.scales = nn.ModuleList([
            nn.ModuleList([nn.Sequential(nn.Conv2d(3, ch, 4, 2, 1), nn.LeakyReLU(0.2)),
                           nn.Sequential(nn.Conv2d(ch, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.LeakyReLU(0.2)),
                           nn.Conv2d(ch, 1, 3, 1, 1)]) for _ in range(2)])

    def forward(self, x):
        outs = []
        for k, layers in enumerate(self.scales):
            h = x if k == 0 else F.avg_pool2d(x, 2 * k)
            feats = []
            for layer in layers:
                h = layer(h)
                feats.append(h)
            outs.append(feats)
        return outs


@_register("test_tiny_logit_d")
class TinyLogitD(nn.Module):
    """SRGAN-like: one logit per image."""

    def __init__(self, ch=8):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, ch, 4, 4), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(ch, 1))

    def forward(self, x):
        return self.net(x)


# ====================================================================== helpers
def base_cfg(**kw):
    cfg = {"method": "tiny", "scale": SCALE, "iters": 4, "model": {"type": "test_tiny_sr"},
           "losses": [{"type": "l1"}], "optim": {"type": "adam", "lr": 1e-3}, "batch_size": 4,
           "val_every": 1000, "ckpt_every": 1000, "log_every": 2, "seed": 3}
    cfg.update(kw)
    return cfg


def fake_metrics():
    def psnr(sr, hr, crop_border=0):
        return -10 * torch.log10((sr - hr).pow(2).flatten(1).mean(1))

    def ssim(sr, hr, crop_border=0):
        return 1 - (sr - hr).abs().flatten(1).mean(1)
    return {"psnr": psnr, "ssim": ssim}


def make_trainer(tmp_path, cfg, data=None, val=None, **kw):
    data = data if data is not None else AstronautFaces(8)
    return T.Trainer(cfg, data, val, runs_root=tmp_path / "runs", device="cpu", progress=False,
                     metrics=fake_metrics(), **kw)


def fixed_batch(tr, n=4):
    from torch.utils.data import default_collate

    return default_collate([tr.train_set[i] for i in range(n)])


def two_steps(tr, n=4):
    batch = fixed_batch(tr, n)
    tr.model.train()
    first = tr.step_fn(tr, batch)
    second = tr.step_fn(tr, batch)
    return first, second


# ====================================================================== config
def test_config_validation_fails_early():
    with pytest.raises(ConfigError, match="unknown key"):
        validate_config(base_cfg(learning_rate=1))
    with pytest.raises(ConfigError, match="missing"):
        validate_config({"method": "x", "scale": 8})
    with pytest.raises(ConfigError, match="unknown model"):
        validate_config(base_cfg(model={"type": "no_such_model"}))
    with pytest.raises(ConfigError, match="unknown parameter"):
        validate_config(base_cfg(losses=[{"type": "l1", "wieght": 1}]))
    with pytest.raises(ConfigError, match="recipe gan"):
        validate_config(base_cfg(losses=[{"type": "adversarial"}]))
    with pytest.raises(ConfigError, match="use recipe pixel"):
        validate_config(base_cfg(recipe="gan", d_model={"type": "test_tiny_d"},
                                   losses=[{"type": "l1"}, {"type": "adversarial", "weight": 0}]))
    with pytest.raises(ConfigError, match="ema"):
        validate_config(base_cfg(ema={"decay": 0.999, "beta": 1}))
    with pytest.raises(ConfigError, match="optim"):
        validate_config(base_cfg(optim={"type": "adam", "lr": 1e-4, "momentum": 0.9}))
    c = validate_config(base_cfg(recipe="gan", d_model={"type": "test_tiny_d"},
                                 losses=[{"type": "l1"}, {"type": "adversarial", "gan_type": "hinge", "weight": 0.1}]))
    assert c["d_losses"] == [{"type": "adversarial", "gan_type": "hinge", "weight": 1.0}]
    assert c["run"] == "tiny-x8" and c["model"]["scale"] == SCALE and c["d_optim"] == c["optim"]


def test_prior_consistency_checked_at_build(tmp_path):
    with pytest.raises(ConfigError, match="needs a prior"):
        make_trainer(tmp_path, base_cfg(model={"type": "test_tiny_prior_sr"}))
    with pytest.raises(ConfigError, match="takes no prior"):
        make_trainer(tmp_path, base_cfg(prior_gt="skin_lr"))
    with pytest.raises(KeyError, match="outputs"):  # a loss asks for an output the model lacks
        make_trainer(tmp_path, base_cfg(losses=[{"type": "l1", "pred": "coarse"}]))


def test_schedules():
    s = {"type": "step", "milestones": [0.5, 0.75], "gamma": 0.5}
    assert [lr_factor(s, i, 8, 1.0) for i in (0, 3, 4, 6, 7)] == [1, 1, 0.5, 0.25, 0.25]
    c = {"type": "cosine", "min_lr": 0.1}
    assert lr_factor(c, 0, 10, 1.0) == pytest.approx(1.0) and lr_factor(c, 10, 10, 1.0) == pytest.approx(0.1)
    assert lr_factor({"type": "constant", "warmup_iters": 4}, 1, 10, 1.0) == pytest.approx(0.5)


def test_sampler_order_and_shards():
    s = ShardedBatchSampler(10, 4, seed=5)
    assert s.batches_per_epoch == 2
    e0 = s.global_batch(0) + s.global_batch(1)
    assert len(set(e0)) == 8
    assert s.global_batch(2) != s.global_batch(0)  # new epoch, new order
    assert ShardedBatchSampler(10, 4, seed=5).global_batch(3) == s.global_batch(3)  # pure function
    r0, r1 = (ShardedBatchSampler(10, 4, seed=5, rank=r, world_size=2) for r in (0, 1))
    for it in range(5):
        assert sorted(r0.local_batch(it) + r1.local_batch(it)) == sorted(s.global_batch(it))
    started = iter(ShardedBatchSampler(10, 4, seed=5, start_iter=3))
    assert next(started) == s.global_batch(3)
    assert list(ShardedBatchSampler(10, 4, seed=5, start_iter=3, epoch_end=True)) == [s.global_batch(3)]


# ====================================================================== one step per recipe
def test_pixel_step_lowers_loss(tmp_path):
    tr = make_trainer(tmp_path, base_cfg(losses=[{"type": "l1"}, {"type": "mse", "weight": 0.5}]))
    a, b = two_steps(tr)
    assert b["loss"] < a["loss"] and set(a) >= {"l1", "mse", "loss"}


def test_aux_outputs_step_lowers_loss(tmp_path):
    cfg = base_cfg(model={"type": "test_tiny_aux"}, optim={"type": "rmsprop", "lr": 1e-3},
                   losses=[{"type": "pgnet_content"},
                           {"type": "l1", "pred": "coarse", "name": "coarse_l1", "weight": 0.1}])
    tr = make_trainer(tmp_path, cfg)
    a, b = two_steps(tr)
    assert b["loss"] < a["loss"]
    assert {"pgnet_content_coarse", "pgnet_content_parsing", "pgnet_content_final", "coarse_l1"} <= set(a)


def test_fit_logs_loss_sub_terms(tmp_path):
    """A loss with sub-terms (thesis, W-Net key regions) logs them next to its total through
    dvclive without a metric also having to be a folder (a crash before the terms were flat)."""
    import json

    cfg = base_cfg(model={"type": "test_tiny_aux"}, log_every=1, iters=2, losses=[{"type": "pgnet_content"}])
    make_trainer(tmp_path, cfg).fit()
    live = tmp_path / "runs" / "tiny-x8" / "dvclive"
    m = json.loads((live / "metrics.json").read_text())["train"]
    assert {"pgnet_content", "pgnet_content_coarse", "pgnet_content_parsing", "pgnet_content_final"} <= set(m)
    assert (live / "plots" / "metrics" / "train" / "pgnet_content_final.tsv").exists()


@pytest.mark.parametrize("d_type,gan_type,fm",
                         [("test_tiny_d", "hinge", True), ("test_tiny_logit_d", "vanilla", False)])
def test_gan_step(tmp_path, d_type, gan_type, fm):
    losses = [{"type": "l1", "weight": 10}, {"type": "adversarial", "gan_type": gan_type, "weight": 0.01}]
    if fm:
        losses.append({"type": "feature_matching", "weight": 0.1})
    cfg = base_cfg(recipe="gan", d_model={"type": d_type}, losses=losses, d_optim={"type": "adam", "lr": 4e-3})
    tr = make_trainer(tmp_path, cfg)
    d0 = {k: v.clone() for k, v in tr.d_model.state_dict().items()}
    a, b = two_steps(tr)
    assert b["l1"] < a["l1"]
    assert torch.isfinite(a["d_loss"]) and "d/adversarial" in a
    assert any(not torch.equal(d0[k], v) for k, v in tr.d_model.state_dict().items())
    assert all(p.requires_grad for p in tr.d_model.parameters())


def test_two_stage_uses_frozen_prior_predictions(tmp_path):
    data, val = AstronautFaces(8), AstronautFaces(4, offset=1)
    pcfg = base_cfg(method="tinyparse", model={"type": "test_tiny_parsing"}, losses=[{"type": "parsingnet_l1"}],
                    iters=2, val={"pred": "parsing", "target": "skin_lr"}, val_every=2)
    s = make_trainer(tmp_path, pcfg, data, val).fit()
    assert set(s["final_val"]) == {"psnr", "l1"}
    cfg = base_cfg(method="tinyfish", recipe="two_stage", model={"type": "test_tiny_prior_sr"},
                   prior_from="tinyparse-x8", iters=2, val_every=2)
    tr = make_trainer(tmp_path, cfg, data, val)
    parsenet, _ = load_run_model("tinyparse-x8", tmp_path / "runs")
    batch = fixed_batch(tr)
    expected = parsenet.forward_maps(batch["lr"])["parsing"].clamp(0, 1)
    a, b = two_steps(tr)
    assert b["loss"] < a["loss"]
    assert torch.equal(tr.model.seen_prior, expected)           # the frozen net's clamped prediction
    assert not torch.equal(tr.model.seen_prior, batch["skin_lr"])  # not the ground-truth map
    assert all(not p.requires_grad for p in tr.prior_net.model.parameters())
    tr.fit()
    pred = RunPredictor.from_run("tinyfish-x8", tmp_path / "runs")
    sr = pred(batch)
    assert sr.shape == (4, 3, 128, 128)
    assert torch.equal(pred.model.seen_prior, expected)  # test time: same prior chain


def test_init_from_and_artifacts(tmp_path):
    data, val = AstronautFaces(8), AstronautFaces(4, offset=1)
    s = make_trainer(tmp_path, base_cfg(method="m1", iters=3, ema={"decay": 0.5}, val_every=2), data, val).fit()
    run = tmp_path / "runs" / "m1-x8"
    rj = json.loads((run / "run.json").read_text())
    assert rj["iterations"] == 3 and rj["images_per_s"] > 0 and rj["params"]["model"] > 0 and rj["weights"] == "ema"
    assert {"psnr", "ssim"} <= set(s["final_val"])
    blob = torch.load(run / "model.pt", weights_only=False)
    assert blob["model"]["type"] == "test_tiny_sr" and blob["run_config"]["iters"] == 3
    assert (run / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").exists()
    assert list((run / "dvclive" / "plots" / "images" / "val").glob("*.png"))
    assert rj["images_seen"] == {"own": 3 * 4, "parent": 0, "total": 12}
    assert "last iteration" in rj["checkpoint_selection"]
    tr = make_trainer(tmp_path, base_cfg(method="m2", init_from="m1-x8", iters=1), data)
    for k, v in blob["state_dict"].items():
        assert torch.equal(tr.model.state_dict()[k], v)
    assert tr.fit()["images_seen"] == {"own": 4, "parent": 12, "total": 16}  # parent + own


def test_select_val_keeps_the_best_validated_snapshot(tmp_path):
    """select: val -> one snapshot (a model file) per validation, model.pt = the best val/psnr
    one, run.json says which; select: last keeps the final weights (and one snapshot of them)."""
    data, val = AstronautFaces(8), AstronautFaces(4, offset=1)
    # lr so large that the weights get worse: the best validation is not the last one
    cfg = base_cfg(method="sel", iters=6, val_every=2, select="val", optim={"type": "adam", "lr": 0.5}, amp=False)
    s = make_trainer(tmp_path, cfg, data, val).fit()
    run = tmp_path / "runs" / "sel-x8"
    snaps = sorted((run / "snapshots").glob("iter_*.pt"))
    assert [p.name for p in snaps] == ["iter_0000002.pt", "iter_0000004.pt", "iter_0000006.pt"]
    hist = {int(k): v for k, v in s["val_history"].items()}
    best = max(hist, key=lambda k: (hist[k], k))
    assert s["selected_iter"] == best and f"iteration {best}" in s["checkpoint_selection"]
    model, blob = load_run_model(run)
    snap = torch.load(run / "snapshots" / f"iter_{best:07d}.pt", weights_only=False)
    assert blob["iteration"] == best
    for k, v in snap["state_dict"].items():
        assert torch.equal(blob["state_dict"][k], v)
    # the snapshot's weights give back the recorded validation PSNR
    pred = RunPredictor.from_run(run / "snapshots" / f"iter_{best:07d}.pt")
    batch = torch.utils.data.default_collate([val[i] for i in range(len(val))])
    psnr = fake_metrics()["psnr"]   # the metric make_trainer validates with
    assert abs(float(psnr(pred(batch).clamp(0, 1), batch["hr"]).mean()) - hist[best]) < 1e-3
    last = make_trainer(tmp_path, base_cfg(method="lst", iters=3, val_every=2), data, val).fit()
    assert last["selected_iter"] == 3 and "last iteration" in last["checkpoint_selection"]
    assert [p.name for p in (tmp_path / "runs" / "lst-x8" / "snapshots").glob("*.pt")] == ["iter_0000003.pt"]
    with pytest.raises(ConfigError, match="select"):
        validate_config(base_cfg(select="test"))


# ====================================================================== EMA
def test_ema_tracks_params_and_bn_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    ema = ModelEMA(net, decay=0.9)
    old_p = [p.detach().clone() for p in ema.module.parameters()]
    old_rm = ema.module[1].running_mean.clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()
    net(torch.randn(2, 3, 8, 8) + 3)  # moves BN running stats
    ema.update(net)
    for o, e, p in zip(old_p, ema.module.parameters(), net.parameters()):
        assert torch.allclose(e, 0.9 * o + 0.1 * p)
    assert torch.allclose(ema.module[1].running_mean, 0.9 * old_rm + 0.1 * net[1].running_mean)
    assert not torch.allclose(ema.module[1].running_mean, old_rm)
    assert ema.module[1].num_batches_tracked == net[1].num_batches_tracked == 1
    copy_ema = ModelEMA(nn.Sequential(nn.BatchNorm2d(4)), decay=0.9, buffers="copy")
    live = nn.Sequential(nn.BatchNorm2d(4)).train()
    live(torch.randn(2, 4, 3, 3) + 5)
    copy_ema.update(live)
    assert torch.equal(copy_ema.module[0].running_var, live[0].running_var)
    sd = ema.state_dict()
    ema2 = ModelEMA(net, decay=0.9)
    ema2.load_state_dict(sd)
    assert ema2.num_updates == 1 and torch.equal(ema2.module[1].running_mean, ema.module[1].running_mean)


# ====================================================================== resume after SIGKILL
RESUME_CFG = dict(method="resume", recipe="gan", iters=10, ckpt_every=4, log_every=2, val_every=5, num_workers=1,
                  d_model={"type": "test_tiny_d"}, ema={"decay": 0.9},
                  augment={"hflip": True, "rot90": True},
                  losses=[{"type": "l1"}, {"type": "adversarial", "gan_type": "hinge", "weight": 0.05},
                          {"type": "feature_matching", "weight": 0.1}])


def _worker_resume(runs_root: str, kill_at: int) -> None:
    torch.set_num_threads(1)
    cbs = []
    if kill_at > 0:
        def kill(tr, it):
            if it == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        cbs.append(kill)
    T.Trainer(base_cfg(**RESUME_CFG), AstronautFaces(10, aug=True), AstronautFaces(2, offset=1), runs_root=runs_root,
              device="cpu", progress=False, metrics=fake_metrics(), callbacks=cbs).fit()


def _run_worker(*args, check=True):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *map(str, args)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"worker failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def test_resume_after_sigkill_is_bit_exact(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run_worker("resume", full, 0)
    p = _run_worker("resume", killed, 7, check=False)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    last = torch.load(killed / "resume-x8" / "checkpoints" / "last.pt", weights_only=False)
    assert last["iteration"] == 4 and not (killed / "resume-x8" / "model.pt").exists()
    _run_worker("resume", killed, 0)
    a = torch.load(full / "resume-x8" / "checkpoints" / "last.pt", weights_only=False)
    b = torch.load(killed / "resume-x8" / "checkpoints" / "last.pt", weights_only=False)
    assert b["resumes"] == [4] and a["iteration"] == b["iteration"] == 10
    for part in ("model", "d_model"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k} differs after resume"
    for k, v in a["ema"]["module"].items():
        assert torch.equal(v, b["ema"]["module"][k]), f"ema.{k} differs after resume"
    ma = torch.load(full / "resume-x8" / "model.pt", weights_only=False)["state_dict"]
    mb = torch.load(killed / "resume-x8" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(v, mb[k]) for k, v in ma.items())
    # the killed run's metrics after iteration 4 were dropped, then logged once
    rows = (killed / "resume-x8" / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv").read_text().split()
    steps = [int(r) for r in rows[2::2]]
    assert steps == [2, 4, 6, 8, 10]


# ====================================================================== DDP on gloo
# fp32 (amp=False): DDP and one process are compared to 1e-6, below bf16's rounding
DDP_CFG = dict(method="ddp", model={"type": "test_tiny_plain"}, iters=2, batch_size=4, log_every=1, amp=False,
               optim={"type": "sgd", "lr": 0.5}, losses=[{"type": "mse"}])


DDP_GAN_CFG = dict(method="ddpgan", recipe="gan", iters=2, batch_size=4, d_model={"type": "test_tiny_logit_d"},
                   losses=[{"type": "l1"}, {"type": "adversarial", "weight": 0.1}], ema={"decay": 0.5})


def _worker_ddp(runs_root: str, out: str) -> None:
    tr = T.Trainer(base_cfg(**DDP_CFG), AstronautFaces(8), runs_root=runs_root, device="cpu", progress=False)
    tr.fit()
    grads = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters()}
    gan = T.Trainer(base_cfg(**DDP_GAN_CFG), AstronautFaces(8), runs_root=runs_root, device="cpu", progress=False)
    gan.fit()
    torch.save({"state": tr.model.state_dict(), "grads": grads, "rank": tr.dist.rank, "world": tr.dist.world_size,
                # parameters only: BN running stats are rank-local between DDP's buffer broadcasts
                "gan_g": dict(gan.model.named_parameters()), "gan_d": dict(gan.d_model.named_parameters())},
               Path(out) / f"rank{tr.dist.rank}.pt")


def test_ddp_two_processes_match(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).resolve()), "ddp", str(tmp_path / "runs"), str(tmp_path)]
    p = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k])
        assert torch.equal(r0["grads"][k], r1["grads"][k])
    for part in ("gan_g", "gan_d"):  # G and D (two D forwards per D step) stay in sync too
        for k, v in r0[part].items():
            assert torch.equal(v, r1[part][k]), f"{part}.{k}"
    # the same global batches in one process give the same weights (up to summation order)
    single = make_trainer(tmp_path / "single", base_cfg(**DDP_CFG))
    single.fit()
    for k, v in single.model.state_dict().items():
        assert torch.allclose(v, r0["state"][k], atol=1e-6), k
    assert (tmp_path / "runs" / "ddp-x8" / "model.pt").exists()


# ====================================================================== real models (tiny widths)
PGNET_DEMO = dict(n_feats=16, fc_reduction=4, head_kernel=3, prior_ch=8, prior_n_res=1, fusion_ch=8,
                  channels_last=True)  # params.yaml methods.pgnet.model
REAL = [
    ("sparnet", dict(model={"type": "sparnet", "min_ch": 4, "max_ch": 8, "res_depth": 1, "att_ch": 4},
                     losses=[{"type": "sparnet_pix"}])),
    ("aminet", dict(model={"type": "aminet", "C": 4, "heads": [1, 1, 1, 1]}, losses=[{"type": "l1"}])),
    ("parsingnet", dict(model={"type": "parsingnet", "n_feats": 8, "n_resblocks": 1},
                        losses=[{"type": "parsingnet_l1"}])),
    ("fishfsrnet", dict(model={"type": "fishfsrnet", "n_feats": 4, "refine_proj": "two_conv"},
                        losses=[{"type": "l1"}], prior_gt="skin_lr")),
    ("wnet", dict(model={"type": "wnet", "input_mode": "native", "n_feats": 8, "w_scales": 1, "enc_levels": 2,
                         "hg_depth": 2, "n_resblocks": 1},
                  losses=[{"type": "mse"}, {"type": "wnet_parsing", "target": "skin_lr"},
                          {"type": "wnet_key_region", "weight": 0.5}])),
    ("pgnet", dict(model={"type": "pgnet", **PGNET_DEMO}, losses=[{"type": "pgnet_content"}],
                   optim={"type": "rmsprop", "lr": 1e-4})),
    ("pgnet_gan", dict(model={"type": "pgnet", **PGNET_DEMO}, recipe="gan",
                       d_model={"type": "srgan_d", "base_ch": 8, "fc_dim": 64},
                       losses=[{"type": "pgnet_content"}, {"type": "adversarial", "weight": 1e-3}],
                       optim={"type": "rmsprop", "lr": 1e-4})),
    ("patchgan_ms", dict(recipe="gan", d_model={"type": "patchgan_ms", "base_ch": 8, "num_D": 2},
                         losses=[{"type": "l1"}, {"type": "adversarial", "gan_type": "hinge", "weight": 0.01},
                                 {"type": "feature_matching", "weight": 0.1}])),
    ("srgan_d", dict(recipe="gan", d_model={"type": "srgan_d", "base_ch": 8, "fc_dim": 64},
                     losses=[{"type": "mse"}, {"type": "adversarial", "weight": 1e-3}])),
]


@pytest.mark.parametrize("name,kw", REAL, ids=[r[0] for r in REAL])
def test_real_model_step(tmp_path, name, kw):
    from fsrlib.losses.vgg import make_vgg19_features, vgg_override

    types = [kw.get("model", {}).get("type"), kw.get("d_model", {}).get("type")]
    missing = [t for t in types if t and t not in MODELS]
    assert not missing, f"models not registered: {missing}"
    with vgg_override(lambda: make_vgg19_features(width=1 / 16, upto=8)):
        tr = make_trainer(tmp_path, base_cfg(batch_size=1, **kw), AstronautFaces(2))
    a, b = two_steps(tr, n=1)
    key = tr.losses[0].name  # the reconstruction term (a GAN's total also holds the adversarial one)
    assert b[key] < a[key]


def test_real_two_stage_parsingnet_to_fishfsrnet(tmp_path):
    assert "parsingnet" in MODELS and "fishfsrnet" in MODELS
    data = AstronautFaces(2)
    make_trainer(tmp_path, base_cfg(method="parsingnet", model={"type": "parsingnet", "n_feats": 8, "n_resblocks": 1},
                                    losses=[{"type": "parsingnet_l1"}], iters=1, batch_size=1), data).fit()
    tr = make_trainer(tmp_path, base_cfg(method="fishfsrnet", recipe="two_stage", prior_from="parsingnet-x8",
                                         model={"type": "fishfsrnet", "n_feats": 4, "refine_proj": "two_conv"},
                                         iters=1, batch_size=1), data)
    a, b = two_steps(tr, n=1)
    assert b["loss"] < a["loss"]
    tr.fit()
    sr = RunPredictor.from_run("fishfsrnet-x8", tmp_path / "runs")(fixed_batch(tr, 1))
    assert sr.shape == (1, 3, 128, 128)


if __name__ == "__main__":
    if sys.argv[1] == "resume":
        _worker_resume(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "ddp":
        _worker_ddp(sys.argv[2], sys.argv[3])
