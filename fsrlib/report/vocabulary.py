"""The report's vocabulary: paper names, metric and data-set labels, decimals, and how the
papers' data sets map onto our test sets (:data:`TESTSETS`; a note marks a stand-in)."""
from __future__ import annotations

from typing import Any

__all__ = ["PAPERS", "METRIC_LABEL", "METRIC_DECIMALS", "RUN_LEVEL_METRICS", "OURS_METRIC", "DATASET_LABEL",
           "TESTSETS", "PROXY_MARK", "MISSING"]

PAPERS = {
    "wnet": "W-Net (facial feature-guided FSR)",
    "fishfsrnet": "ParsingNet + FishFSRNet",
    "sparnet": "SPARNet / SPARNetHD",
    "aminet": "AMINet",
    "thesis": "Prior-guided FSR thesis (PGNet)",
}

METRIC_LABEL = {
    "psnr": "PSNR↑", "ssim": "SSIM↑", "lpips": "LPIPS↓", "vif": "VIF↑", "fid": "FID↓",
    "identity_cos": "ID cos↑", "lmk_dist_px": "Lmk dist (px)↓", "auc10": "AUC@10% (%)↑",
    "parsing_acc": "Parsing acc↑", "params_M": "Params (M)", "macs_G": "MACs (G)",
    "time_ms": "Time (ms)", "time_s": "Time (s)",
}
METRIC_DECIMALS = {
    "psnr": 2, "ssim": 4, "lpips": 4, "vif": 4, "fid": 2, "identity_cos": 4, "lmk_dist_px": 2,
    "auc10": 2, "lmk_auc10": 2, "parsing_acc": 4, "params_M": 2, "macs_G": 1, "time_ms": 0, "time_s": 3,
}
#: metrics that do not depend on the test set (looked up on any test set of the run)
RUN_LEVEL_METRICS = {"params_M", "macs_G", "time_ms", "time_s"}


#: paper metric -> (our metric name, conversion of our value to the paper's unit).
#: ``lmk_auc10`` is already in % (``fsrlib.metrics.face``), AUC of the NME vs the HR detection.
OURS_METRIC: dict[str, tuple[str, Any]] = {
    "auc10": ("lmk_auc10", None),
    "time_s": ("time_ms", lambda v: v / 1000.0),
}

DATASET_LABEL = {
    "celeba": "CelebA", "helen": "Helen", "helen_dic": "Helen (DIC)", "umd": "UMD",
    "celeba_fsrnet": "CelebA (FSRNet 18K)", "scface": "SCface", "celebahq": "CelebAHQ-Test",
    "celeba_testn": "CelebA-TestN", "celebamaskhq": "CelebAMask-HQ", "average": "Avg",
}

#: paper dataset -> (our test set or None, note). A note on a test set that exists marks a
#: stand-in ("proxy"): ours is measured on it, the paper on something else.
TESTSETS: dict[str, tuple[str | None, str]] = {
    "celeba": ("celeba_test", ""),
    "helen": ("helen50", ""),
    "helen_dic": ("helen50", "paper: DICNet's Helen test crops; ours: helen50"),
    "umd": ("celeba_test", "paper: UMD-Face (1,000 identities); ours: identity similarity on celeba_test"),
    "celeba_fsrnet": ("celeba_test", "paper: FSRNet's 18K CelebA split; ours: celeba_test"),
    "celebamaskhq": ("celebamask_test", "paper: CelebAMask-HQ test (1,000; trained on its 28,000); ours: the "
                     "CelebAMask-HQ mini test faces (dlib-aligned), models trained on CelebA"),
    "scface": (None, "SCface surveillance faces are not part of this project"),
    "celebahq": (None, "CelebAHQ-Test at 512 px is not part of this project"),
    "celeba_testn": (None, "CelebA-TestN (real LR faces) is not part of this project"),
}

PROXY_MARK = "†"
MISSING = "–"
