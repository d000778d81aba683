"""The results tables of the five papers, as data: one :class:`TableSpec` per table (main
tables and ablations). A spec names the rows (methods as printed in ``paper_results.csv``),
the columns (paper dataset x scale x metric) and how our runs map onto them (method key ->
run ``{key}-x{scale}``; paper dataset -> our test set, :data:`fsrlib.report.vocabulary.TESTSETS`).
:mod:`fsrlib.report.tables` renders them."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from .vocabulary import DATASET_LABEL, METRIC_LABEL, RUN_LEVEL_METRICS, TESTSETS

__all__ = ["Row", "Col", "TableSpec", "HR_ROW", "TABLES", "TABLES_BY_NAME"]


@dataclass(frozen=True)
class Row:
    """A table row: a paper method (as printed in ``paper_results.csv``) and our run keys.

    ``keys``: our method keys tried in order (the first with a run wins); ``None`` takes the
    ``method_key`` of the paper CSV. ``also``: extra fallback keys. ``source``: read the
    paper values from another ``(table, block, method)`` of the same paper. ``optional``:
    drop the row when we have no value for it (e.g. an HR reference row)."""

    method: str
    keys: tuple[str, ...] | None = None
    label: str | None = None
    block: str | None = None
    also: tuple[str, ...] = ()
    source: tuple[str, str, str] | None = None
    optional: bool = False


@dataclass(frozen=True)
class Col:
    """A column: paper dataset x scale x metric, and where our number comes from."""

    dataset: str
    scale: int | None
    metric: str
    label: str | None = None
    block: str | None = None
    testset: str | None = "auto"          # "auto": TESTSETS[dataset]; "*": any test set of the run
    mean_of: tuple[tuple[str, int], ...] = ()  # derived column: mean of these (dataset, scale)

    def our_testset(self) -> tuple[str | None, str]:
        if self.testset != "auto":
            return self.testset, ""
        if self.metric in RUN_LEVEL_METRICS:
            return "*", ""
        return TESTSETS.get(self.dataset, (self.dataset, ""))

    def header(self) -> str:
        if self.label:
            return self.label
        ds = DATASET_LABEL.get(self.dataset, self.dataset)
        sc = f" ×{self.scale}" if self.scale else ""
        return f"{ds}{sc} {METRIC_LABEL.get(self.metric, self.metric)}"


@dataclass(frozen=True)
class TableSpec:
    name: str
    paper: str
    table: str
    title: str
    rows: tuple[Row, ...]
    cols: tuple[Col, ...]
    block: str = ""
    kind: str = "main"                     # main | ablation | downstream | efficiency | ours
    paper_protocol: str = ""
    notes: tuple[str, ...] = ()
    #: the paper's metric convention (:data:`fsrlib.metrics.scoring.CONVENTIONS`): ours' PSNR / SSIM
    #: cells are re-scored from the saved SR images under it; ``ref`` = the project's protocol
    convention: str = "ref"


def _grid(datasets: Sequence[str], scales: Sequence[int | None], metrics: Sequence[str]) -> tuple[Col, ...]:
    return tuple(Col(d, s, m) for d in datasets for s in scales for m in metrics)


def _rows(*methods: str, **kw) -> tuple[Row, ...]:
    return tuple(Row(m, **kw) for m in methods)


HR_ROW = Row("", keys=("hr",), label="HR (reference)", optional=True)

_WNET_PROTO = ("CelebA (OpenFace 68-landmark crop, 128×128), bicubic LR; Mode I: 168,854 train (DIC split), "
               "Mode II: 18,000 train (RAAN); test CelebA 1,000 (Mode I) / 100 (Mode II) and Helen 50; "
               "PSNR/SSIM colour channel not stated (Y assumed), no crop stated; LPIPS (AlexNet assumed); "
               "batch 4, Adam 1e-4; parser BiSeNet (binary skin-vs-components map); metric convention: "
               "Mode I family B (DIC line: Y rounded, 8 px crop, 7x7 uniform SSIM; our shift under it: "
               "protocol_sensitivity.md)")
_FISH_PROTO = ("DIC protocol: CelebA 168,854 train / 1,000 test, Helen 1,955 train / 50 test (Helen models "
               "trained on Helen); bicubic LR 32/16/8 px from 128×128; PSNR/SSIM on Y (BT.601); the official "
               "code crops 8 px per side; batch 8, Adam 1e-4; parser BiSeNet -> binary skin map, ParsingNet "
               "estimates it at LR; metric convention: family B (DIC line: Y rounded, 8 px crop, "
               "7x7 uniform SSIM; our shift under it: protocol_sensitivity.md)")
_SPAR_PROTO = ("CelebA ≈179K MTCNN crops, 128×128, bicubic 16×16 LR (8×); test Helen (FSRNet split); "
               "PSNR/SSIM on Y (BT.601), no crop; AUC of FAN landmarks under NME 10%; identity = SphereFace "
               "cosine on UMD-Face; batch 64, Adam 2e-4, L2 loss; metric convention: family A (SPARNet "
               "codebase: Y truncated, no crop, Gaussian SSIM; our shift under it: protocol_sensitivity.md)")
_SPARHD_PROTO = ("FFHQ 70K at 512×512, blind degradation (blur, downsample, noise, JPEG; eq. 14); LPIPS on "
                 "CelebAHQ-Test, FID on CelebA-TestN vs CelebAHQ-Test HR; 100k iterations, batch 2")
_AMI_PROTO = ("CelebA 18,000 train / 1,000 test, Helen test; centre-cropped aligned faces 128×128, bicubic "
              "16×16 LR (×8); PSNR/SSIM channel not stated (Y assumed), no crop stated; VIF, LPIPS (AlexNet "
              "assumed); Adam 2e-4, RTX 3090; no parser; metric convention: family A (SPARNet codebase: Y "
              "truncated, no crop, Gaussian SSIM; PIL-bicubic LR; our shift under it: protocol_sensitivity.md)")
_AMI_ABL = ("Ablations (Tables I-V) use an unstated cheaper protocol: the full model scores 27.83 dB here "
            "vs 28.26 dB in Table VII; compare within the table only.")
_THESIS_PROTO = ("CelebAMask-HQ 28,000 train / 1,000 test, 128×128, ×8 (16×16 LR, bicubic assumed); "
                 "PSNR/SSIM channel not stated (RGB assumed); LPIPS backbone unstated (AlexNet assumed); "
                 "RMSProp; parsing prior = 11 CelebAMask-HQ component maps")

_W_T1_COLS = _grid(("celeba", "helen"), (4, 8), ("psnr", "ssim", "lpips"))
_F_SETTINGS = tuple((d, s) for d in ("celeba", "helen") for s in (4, 8, 16))

TABLES: tuple[TableSpec, ...] = (
    # ------------------------------------------------------------------ W-Net
    TableSpec(
        "wnet_t1_mode_i", "wnet", "T1", "W-Net Table 1 (Training Mode I): FSR methods on CelebA and Helen",
        _rows("Bicubic", "SRCNN [45]", "EDSR [46]", "FSRNet [7]", "DIC [35]", "MRRNet [47]", "W-Net"),
        _W_T1_COLS, block="mode_I", paper_protocol=_WNET_PROTO + " (Training Mode I)",
        notes=("Both modes are filled from the same runs (<key>-x<scale>); the paper's modes differ in training-set "
               "size and test-set size.",)),
    TableSpec(
        "wnet_t1_mode_ii", "wnet", "T1", "W-Net Table 1 (Training Mode II): FSR methods on CelebA and Helen",
        _rows("SRGAN [15]", "SPARNet [10]", "SISN [24]", "WIPA [48]", "MRRNet [47]", "UFSRNet [49]", "W-Net"),
        _W_T1_COLS, block="mode_II", paper_protocol=_WNET_PROTO + " (Training Mode II)",
        notes=("The paper has no Bicubic row in Mode II (see Mode I).",)),
    TableSpec(
        "wnet_t2", "wnet", "T2", "W-Net Table 2: downstream landmark distance and identity similarity (Mode II)",
        (*_rows("Bicubic", "SPARNet [10]", "SRGAN [15]", "MRRNet [47]", "UFSRNet [49]", "W-Net"), HR_ROW),
        _grid(("celeba", "helen"), (4, 8), ("lmk_dist_px", "identity_cos")), kind="downstream",
        paper_protocol=_WNET_PROTO + "; landmarks: OpenFace 68 points on SR vs HR, mean Euclidean distance "
        "(px assumed); identity: AdaFace cosine SR vs HR",
        notes=("The paper's table is transposed (rows = dataset/scale/metric); here rows are methods.",)),
    TableSpec(
        "wnet_t3", "wnet", "T3", "W-Net Table 3 (ablation): Parsing Block, LPF, SCAB on CelebA ×4 (Mode II)",
        tuple(Row(f"Exp.{c}", also=(("wnet",) if c == "H" else ())) for c in "ABCDEFGH"),
        _grid(("celeba",), (4,), ("psnr", "ssim")), kind="ablation", paper_protocol=_WNET_PROTO,
        notes=("The ✓ marks were lost in extraction; rows B and D-G are a reconstruction [A].",
               "Exp.H is the full W-Net (= Table 1 Mode II CelebA ×4); ours falls back to run wnet-x4.")),
    # ------------------------------------------------------------------ FishFSRNet
    TableSpec(
        "fishfsrnet_t1", "fishfsrnet", "T1", "FishFSRNet Table I: FSR methods on CelebA and Helen (PSNR/SSIM)",
        _rows("Bicubic", "SRCNN [78]", "URDGN [8]", "VDSR [79]", "WSRNet [11]", "Super-FAN [16]", "FSRNet [18]",
              "DIC [19]", "SISN [14]", "Ours (FishFSRNet)"),
        (*_grid(("celeba", "helen"), (4, 8, 16), ("psnr", "ssim")),
         Col("average", None, "psnr", label="Avg PSNR↑", testset=None, mean_of=_F_SETTINGS),
         Col("average", None, "ssim", label="Avg SSIM↑", testset=None, mean_of=_F_SETTINGS)),
        paper_protocol=_FISH_PROTO,
        notes=("Avg = mean over the six dataset×scale settings; ours is computed the same way when all six exist.",
               "Paper: Ours' average SSIM is printed 0.7917; the mean of its six SSIMs is 0.7941.",
               "Paper Helen models are trained on Helen; ours are the CelebA-trained runs evaluated on helen50.")),
    TableSpec(
        "fishfsrnet_t2", "fishfsrnet", "T2", "FishFSRNet Table II: identity cosine similarity of SR vs HR",
        (*_rows("Bicubic", "FSRNet [18]", "DIC [19]", "SISN [14]", "Ours"), HR_ROW),
        _grid(("celeba", "helen"), (4, 8, 16), ("identity_cos",)), kind="downstream",
        paper_protocol=_FISH_PROTO + "; identity: DeepFace (LightFace framework) embeddings, cosine SR vs HR"),
    TableSpec(
        "fishfsrnet_t3", "fishfsrnet", "T3", "FishFSRNet Table III (ablation): PAFB and MSRB on CelebA ×8",
        tuple(Row(f"Model {i}", also=(("fishfsrnet",) if i == 8 else ())) for i in range(1, 9)),
        _grid(("celeba",), (8,), ("psnr", "ssim")), kind="ablation", paper_protocol=_FISH_PROTO,
        notes=("Model 8 is the full FishFSRNet (= Table I CelebA ×8); ours falls back to run fishfsrnet-x8.",)),
    TableSpec(
        "fishfsrnet_t4", "fishfsrnet", "T4", "FishFSRNet Table IV: ParsingNet face-parsing accuracy",
        _rows("ParsingNet"), _grid(("celeba", "helen"), (4, 8, 16), ("parsing_acc",)), kind="downstream",
        paper_protocol=_FISH_PROTO + "; the accuracy metric is not defined by the paper",
        notes=("Ours: pixel accuracy of the binarised ParsingNet map vs the target at LR size (spec's guess).",)),
    # ------------------------------------------------------------------ SPARNet
    TableSpec(
        "sparnet_t1", "sparnet", "T1", "SPARNet Table I: Helen ×8 image quality, landmark AUC and UMD identity",
        (*_rows("Bicubic", "RCAN", "CBAM", "URDGN", "Wavelet", "Att-FH", "FSRNet", "Baseline", "SPARNet"), HR_ROW),
        (*_grid(("helen",), (8,), ("psnr", "ssim", "auc10")), Col("umd", 8, "identity_cos")),
        paper_protocol=_SPAR_PROTO,
        notes=("RCAN and CBAM are their attention modules inside the SPARNet skeleton (sparnet_rcan, sparnet_cbam).",
               "AUC in %: ours is lmk_auc10 (NME of SR landmarks vs HR landmarks, inter-ocular).")),
    TableSpec(
        "sparnet_t2", "sparnet", "T2", "SPARNet Table II: FSRNet vs SPARNet on FSRNet's CelebA data (×8)",
        _rows("FSRNet", "SPARNet"), _grid(("celeba_fsrnet",), (8,), ("psnr", "ssim")), paper_protocol=_SPAR_PROTO),
    TableSpec(
        "sparnet_t3", "sparnet", "T3", "SPARNet Table III: Helen test set of DICNet (×8), size and speed",
        _rows("PFSRNet", "DICNet", "SPARNet"), _grid(("helen_dic",), (8,), ("psnr", "ssim", "params_M", "time_s")),
        kind="efficiency", paper_protocol=_SPAR_PROTO + "; time in seconds per image (GPU unstated, K40 likely)",
        notes=("Ours' time_ms is shown in seconds.",)),
    TableSpec(
        "sparnet_t4", "sparnet", "T4", "SPARNet Table IV: Helen at ×4 and ×16",
        _rows("Bicubic", "RCAN", "CBAM", "Wavelet", "SPARNet"), _grid(("helen",), (4, 16), ("psnr", "ssim")),
        paper_protocol=_SPAR_PROTO + "; ×4 trained from scratch, ×16 fine-tuned from ×8"),
    TableSpec(
        "sparnet_t5", "sparnet", "T5", "SPARNet Table V: identity similarity, SICNN vs SPARNet (SICNN's data)",
        _rows("SICNN", "SPARNet (SICNN data)"), (Col("umd", 8, "identity_cos"),), kind="downstream",
        paper_protocol=_SPAR_PROTO + "; both trained on SICNN's pre-aligned set",
        notes=("We do not have SICNN's training set; no run corresponds to either row.",)),
    TableSpec(
        "sparnet_t6", "sparnet", "T6", "SPARNet Table VI: SPARNetHD and loss ablations (LPIPS / FID)",
        _rows("ESRGAN", "SFTGAN", "Pix2PixHD", "SPARNetHD", "w/o L_pix", "w/o L_GAN (and L_fm)", "w/o L_fm",
              "w/o L_pcp"),
        (Col("celebahq", None, "lpips"), Col("celeba_testn", None, "fid")), kind="ablation",
        paper_protocol=_SPARHD_PROTO),
    TableSpec(
        "sparnet_fig5_fig7", "sparnet", "Fig5/Fig7", "SPARNet Figs. 5 and 7 (ablation): FAU count N and "
        "minimum feature size M on Helen ×8",
        (Row("Baseline", source=("T1", "", "Baseline")),
         *(Row("", keys=(f"sparnet_v{n}",), label=f"SPARNet-V{n}") for n in (1, 2, 4, 8)),
         Row("SPARNet", label="SPARNet (V16-S4)", source=("T1", "", "SPARNet")),
         *(Row("", keys=(f"sparnet_s{m}",), label=f"SPARNet-S{m}") for m in (2, 8, 16))),
        _grid(("helen",), (8,), ("psnr", "ssim", "auc10")), kind="ablation",
        paper_protocol=_SPAR_PROTO + "; Figs. 5 and 7 are plots: only Baseline and SPARNet numbers are printed "
        "(Table I)",
        notes=("V-N: attention in the last N FAUs (M = 4); S-M: minimum feature size M (N = 16).",)),
    # ------------------------------------------------------------------ AMINet
    TableSpec(
        "aminet_t1", "aminet", "T1", "AMINet Table I (ablation): effectiveness of LGFI (CelebA ×8)",
        (Row("LGFI w/o SA", also=("aminet_no_sa_keep_skaf",)), Row("LGFI w/o RDFE", also=("aminet_no_rdfe_keep_skaf",)),
         Row("LGFI w/o SKAF"), Row("LGFI")),
        _grid(("celeba",), (8,), ("psnr", "ssim", "vif", "lpips", "time_ms", "params_M")), kind="ablation",
        paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t2", "aminet", "T2", "AMINet Table II (ablation): LGFI vs a Restormer Transformer block (CelebA ×8)",
        _rows("Transformer", "LGFI"), _grid(("celeba",), (8,), ("params_M", "psnr", "ssim", "vif", "lpips")),
        kind="ablation", paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t3", "aminet", "T3", "AMINet Table III (ablation): RDFE vs FFN (CelebA ×8)",
        _rows("FFN", "RDFE"), _grid(("celeba",), (8,), ("params_M", "psnr", "ssim", "vif", "lpips")),
        kind="ablation", paper_protocol=_AMI_PROTO, notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t4", "aminet", "T4", "AMINet Table IV (ablation): RDFE design (CelebA ×8)",
        _rows("Single path (3×3 dw)", "Single path (5×5 dw)", "Single path (7×7 dw)", "RDFE w/o AU",
              "RDFE w/o FRM", "RDFE"),
        _grid(("celeba",), (8,), ("psnr", "ssim", "vif", "lpips")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=(_AMI_ABL,)),
    TableSpec(
        "aminet_t5", "aminet", "T5", "AMINet Table V (ablation): SKAF kernels and pooling (CelebA ×8)",
        _rows("SKAF none", "SKAF 7×7+avg+max", "SKAF 5×5+avg+max", "SKAF 7×7", "SKAF 7×7+avg", "SKAF 7×7+max",
              "SKAF 5×5+7×7+avg+max"),
        _grid(("celeba",), (8,), ("psnr", "ssim")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=(_AMI_ABL, "The paper's rows are unlabelled ✓/× switches; the labels here name the parts kept.")),
    TableSpec(
        "aminet_t6", "aminet", "T6", "AMINet Table VI (ablation): EDFF added to SPARNet and SFMNet (CelebA ×8)",
        (Row("SPARNet [17]", label="SPARNet", block="baseline"),
         Row("SPARNet [17]", label="SPARNet + EDFF", block="edff"),
         Row("SFMNet [20]", label="SFMNet", block="baseline"),
         Row("SFMNet [20]", label="SFMNet + EDFF", block="edff")),
        _grid(("celeba",), (8,), ("params_M", "psnr", "ssim")), kind="ablation", paper_protocol=_AMI_PROTO,
        notes=("The baselines' PSNR/SSIM equal Table VII (main protocol); SPARNet's params are 10.6M here and "
               "16.6M in Table X.",)),
    TableSpec(
        "aminet_t7", "aminet", "T7", "AMINet Table VII: ×8 FSR on CelebA and Helen",
        _rows("Bicubic", "SAN [46]", "RCAN [24]", "HAN [47]", "SwinIR [9]", "FSRNet [12]", "DICNet [14]",
              "FACN [48]", "SPARNet [17]", "SISN [18]", "AD-GNN [49]", "Restormer-M [50]", "LAAT [51]",
              "ELSFace [52]", "SFMNet [20]", "SPADNet [53]", "AMINet"),
        _grid(("celeba", "helen"), (8,), ("psnr", "ssim", "vif", "lpips")), paper_protocol=_AMI_PROTO),
    TableSpec(
        "aminet_t8", "aminet", "T8", "AMINet Table VIII: GAN-based methods on Helen ×8",
        _rows("FSRGAN [12]", "DICGAN [14]", "SPARGAN [17]", "SFMGAN [20]", "AMIGAN (Ours)"),
        _grid(("helen",), (8,), ("psnr", "ssim", "vif", "fid")), paper_protocol=_AMI_PROTO,
        notes=("FID on ~50 Helen images is very noisy; compare the ordering only.",)),
    TableSpec(
        "aminet_t9", "aminet", "T9", "AMINet Table IX: identity cosine similarity on ×8 SCface",
        _rows("SAN [46]", "RCAN [24]", "FSRNet [12]", "FACN [48]", "SPARNet [17]", "SISN [18]", "LAAT [51]",
              "ELSFace [52]", "SFMNet [20]", "AMINet"),
        tuple(Col("scface", 8, "identity_cos", label=f"Case {i}", block=f"case_{i}") for i in range(1, 5)),
        kind="downstream", paper_protocol=_AMI_PROTO + "; recognition network and the four cases are not defined"),
    TableSpec(
        "aminet_t10", "aminet", "T10", "AMINet Table X: model complexity on ×8 CelebA",
        _rows("FSRNet [12]", "SPARNet [17]", "DICNet [14]", "AD-GNN [49]", "CTCNet [5]", "SCTANet [10]",
              "LAAT [51]", "ELSFace [52]", "SFMNet [20]", "AMINet-S", "AMINet"),
        _grid(("celeba",), (8,), ("psnr", "params_M", "macs_G", "time_ms")), kind="efficiency",
        paper_protocol=_AMI_PROTO + "; MACs at 128×128 input, time in ms (RTX 3090 presumably)",
        notes=("Ours: params_M / macs_G / time_ms are read from metrics.json, else its protocol, else run.json.",)),
    # ------------------------------------------------------------------ thesis
    TableSpec(
        "thesis_t4_1", "thesis", "T4.1", "Thesis Table 4.1: objective evaluation (×8)",
        _rows("Bicubic", "SRResNet", "Proposed method 1", "Proposed method 2"),
        _grid(("celebamaskhq",), (8,), ("psnr", "ssim", "lpips")), paper_protocol=_THESIS_PROTO,
        notes=("Proposed method 1 = pgnet (CNN), Proposed method 2 = pgnet_gan (GAN).",)),
)

#: the paper's metric convention per table (``ref`` where the paper does not say: W-Net Mode II,
#: SPARNetHD, the thesis)
_CONVENTION = {"wnet_t1_mode_i": "family_B", **{t.name: "family_B" for t in TABLES if t.paper == "fishfsrnet"},
               **{t.name: "family_A" for t in TABLES if t.paper in ("sparnet", "aminet") and t.name != "sparnet_t6"}}
TABLES = tuple(replace(t, convention=_CONVENTION.get(t.name, "ref")) for t in TABLES)
TABLES_BY_NAME = {t.name: t for t in TABLES}
