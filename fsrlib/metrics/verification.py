"""Face verification as LFW's protocol, for any embedding and score.

Pairs (:func:`verification_pairs`): probe ``i`` (e.g. an SR face) against gallery ``j != i``
(the HR face of another photo). **All** genuine pairs (same identity) are used, and as many
impostor pairs, sampled seeded without replacement (``np.random.default_rng(seed)``).

Scores: higher = more alike (cosine similarity; for a distance pass ``-distance``).

Measures (:func:`verification_report`):

* ``acc_10fold`` (and ``acc_10fold_std``): the pairs are split into 10 folds (a seeded
  permutation; genuine and impostor pairs split separately, so each fold is balanced); for
  each fold the threshold of best accuracy on the other 9 is applied to it (LFW's "unrestricted"
  protocol, as the MobileFaceNet and SphereFace evaluation code); mean and std over folds.
* ``roc_auc``: area under the ROC of all pairs (ties count 1/2: the Mann-Whitney statistic).
* ``tar_at_far_1e-2``, ``tar_at_far_1e-3``: the true-accept rate at the lowest threshold whose
  empirical false-accept rate is <= the target (a strict ``>``: score above the threshold
  accepts). With ``n`` impostor pairs the FAR resolution is ``1/n`` (recorded as
  ``far_resolution``); below it the rate is the one at FAR = 0, a conservative value.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["verification_pairs", "kfold_accuracy", "roc_auc", "roc_curve", "tar_at_far", "verification_report",
           "FARS"]

FARS = (1e-2, 1e-3)


def verification_pairs(identities: Sequence, valid_probe: np.ndarray | None = None,
                       valid_gallery: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(genuine (G, 2), impostor (G', 2))`` index pairs ``(probe, gallery)``: every genuine pair
    ``i != j`` and ``G' = min(G, #impostor pairs)`` seeded impostor pairs."""
    ids = np.asarray(identities)
    n = len(ids)
    vp = np.ones(n, bool) if valid_probe is None else np.asarray(valid_probe, bool)
    vg = np.ones(n, bool) if valid_gallery is None else np.asarray(valid_gallery, bool)
    ok = vp[:, None] & vg[None, :]
    same = (ids[:, None] == ids[None, :]) & ok
    np.fill_diagonal(same, False)
    gen = np.argwhere(same)
    diff = np.argwhere((ids[:, None] != ids[None, :]) & ok)
    k = min(len(gen), len(diff))
    rng = np.random.default_rng(seed)
    imp = diff[np.sort(rng.choice(len(diff), k, replace=False))] if k else np.zeros((0, 2), int)
    return gen, imp


def _best_threshold(s_gen: np.ndarray, s_imp: np.ndarray) -> float:
    """Threshold of best accuracy (accept iff score > t), from midpoints of the sorted scores."""
    s = np.sort(np.concatenate([s_gen, s_imp]))
    cand = np.concatenate([[s[0] - 1e-9], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-9]])
    g = np.sort(s_gen)
    i = np.sort(s_imp)
    tp = len(g) - np.searchsorted(g, cand, side="right")  # genuine scores > t
    tn = np.searchsorted(i, cand, side="right")  # impostor scores <= t
    return float(cand[int(np.argmax(tp + tn))])


def kfold_accuracy(s_gen: np.ndarray, s_imp: np.ndarray, folds: int = 10, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the accuracy on each fold at the threshold chosen on the other folds."""
    rng = np.random.default_rng(seed)
    fg = np.array_split(rng.permutation(len(s_gen)), folds)
    fi = np.array_split(rng.permutation(len(s_imp)), folds)
    accs = []
    for k in range(folds):
        if len(fg[k]) + len(fi[k]) == 0:
            continue
        tg = np.delete(s_gen, fg[k])
        ti = np.delete(s_imp, fi[k])
        t = _best_threshold(tg, ti)
        accs.append((np.sum(s_gen[fg[k]] > t) + np.sum(s_imp[fi[k]] <= t)) / (len(fg[k]) + len(fi[k])))
    return float(np.mean(accs)), float(np.std(accs))


def roc_auc(s_gen: np.ndarray, s_imp: np.ndarray) -> float:
    """P(genuine score > impostor score) + P(equal) / 2."""
    s = np.concatenate([s_gen, s_imp])
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks of ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    ng, ni = len(s_gen), len(s_imp)
    return float((ranks[:ng].sum() - ng * (ng + 1) / 2) / (ng * ni))


def roc_curve(s_gen: np.ndarray, s_imp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(far, tar)`` at every distinct threshold, from (0, 0) to (1, 1)."""
    t = np.unique(np.concatenate([s_gen, s_imp]))[::-1]
    g, i = np.sort(s_gen), np.sort(s_imp)
    tar = (len(g) - np.searchsorted(g, t, side="left")) / len(g)
    far = (len(i) - np.searchsorted(i, t, side="left")) / len(i)
    return np.r_[0.0, far], np.r_[0.0, tar]


def tar_at_far(s_gen: np.ndarray, s_imp: np.ndarray, far: float) -> float:
    """TAR at the lowest threshold with empirical FAR <= ``far`` (accept iff score > t)."""
    i = np.sort(s_imp)[::-1]
    k = int(math.floor(far * len(i)))  # impostors allowed above the threshold
    t = i[k] if k < len(i) else -np.inf
    return float(np.mean(s_gen > t))


def verification_report(probe: np.ndarray, gallery: np.ndarray, identities: Sequence, score: str = "cosine",
                        folds: int = 10, seed: int = 0, keep_scores: bool = False) -> dict[str, Any]:
    """All the measures above for probe ``i`` vs gallery ``j`` embeddings (NaN rows take no part).
    ``score``: ``"cosine"`` or ``"neg_euclidean"`` (dlib's metric)."""
    P, G = np.asarray(probe, np.float64), np.asarray(gallery, np.float64)
    ids = np.asarray(identities)
    if not (len(P) == len(G) == len(ids)):
        raise ValueError("probe, gallery and identities must have the same length")
    gen, imp = verification_pairs(ids, ~np.isnan(P).any(1), ~np.isnan(G).any(1), seed)
    out: dict[str, Any] = {"n_genuine": len(gen), "n_impostor": len(imp), "folds": folds, "score": score}
    vp, vg = ~np.isnan(P).any(1), ~np.isnan(G).any(1)
    out["n_identities"] = int(len(set(ids[vp & vg].tolist())))
    if len(gen) < folds or len(imp) < folds:
        out["reason"] = f"{len(gen)} genuine / {len(imp)} impostor pairs: fewer than {folds} folds"
        return out

    def sc(pairs):
        a, b = P[pairs[:, 0]], G[pairs[:, 1]]
        if score == "cosine":
            return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        if score == "neg_euclidean":
            return -np.linalg.norm(a - b, axis=1)
        raise ValueError(f"score must be 'cosine' or 'neg_euclidean', got {score!r}")

    s_gen, s_imp = sc(gen), sc(imp)
    out["acc_10fold"], out["acc_10fold_std"] = kfold_accuracy(s_gen, s_imp, folds, seed)
    out["roc_auc"] = roc_auc(s_gen, s_imp)
    for f in FARS:
        out[f"tar_at_far_{f:.0e}".replace("e-0", "e-")] = tar_at_far(s_gen, s_imp, f)
    out["far_resolution"] = 1.0 / len(s_imp)
    if keep_scores:
        out["scores_genuine"], out["scores_impostor"] = s_gen, s_imp
    return out
