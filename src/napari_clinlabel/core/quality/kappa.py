"""Agreement on grades: Cohen's and weighted kappa, Fleiss' kappa, Krippendorff's alpha, P/R/F1.

Every two-reader function takes the FULL ordered scale (``scale_values``), never just the values
that happen to occur: weights of an ordinal scale depend on each grade's position on it, and a
grade nobody used must still count (scikit-learn's ``labels=`` pitfall).
Undefined results (e.g. kappa when the chance agreement is already 1) are NaN, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError

__all__ = [
    "confusion_matrix",
    "cohen_kappa",
    "weighted_kappa",
    "fleiss_kappa",
    "fleiss_counts",
    "krippendorff_alpha",
    "per_class_prf",
]


def _indices(values: Sequence[Hashable], scale: Sequence[Hashable], who: str) -> np.ndarray:
    pos = {v: i for i, v in enumerate(scale)}
    if len(pos) != len(scale):
        raise InputError(f"the scale {list(scale)} lists a value twice; give each grade once")
    bad = [v for v in values if v not in pos]
    if bad:
        shown = ", ".join(repr(v) for v in sorted(set(map(str, bad)))[:5])
        raise InputError(
            f"{len(bad)} grade(s) of {who} are not on the scale {list(scale)} (e.g. {shown}); "
            "fix the grades or pick the right scale"
        )
    return np.fromiter((pos[v] for v in values), dtype=np.intp, count=len(values))


def confusion_matrix(
    a: Sequence[Hashable], b: Sequence[Hashable], values: Sequence[Hashable]
) -> np.ndarray:
    """Counts ``C[i, j]`` of items graded ``values[i]`` by A and ``values[j]`` by B."""
    if len(a) != len(b):
        raise InputError(
            f"the two readers graded {len(a)} and {len(b)} items; pair them item by item"
        )
    ia, ib = _indices(a, values, "reader A"), _indices(b, values, "reader B")
    k = len(values)
    return np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(np.int64)


def _kappa_from(cm: np.ndarray, w: np.ndarray) -> float:
    n = cm.sum()
    if n == 0:
        return float("nan")
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    denom = float((w * expected).sum())
    if denom == 0.0:
        return float("nan")
    return 1.0 - float((w * cm).sum()) / denom


def cohen_kappa(
    a: Sequence[Hashable], b: Sequence[Hashable], scale_values: Sequence[Hashable]
) -> float:
    """Cohen's (unweighted) kappa of two readers over the full scale; NaN when undefined."""
    cm = confusion_matrix(a, b, scale_values)
    k = len(scale_values)
    return _kappa_from(cm, 1.0 - np.eye(k))


def weighted_kappa(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    scale_values: Sequence[Hashable],
    weights: str = "quadratic",
) -> float:
    """Weighted kappa on an ordinal scale; disagreement weight |i−j| ("linear") or (i−j)² ("quadratic")."""
    if weights not in ("linear", "quadratic"):
        raise InputError(f"weights must be 'linear' or 'quadratic', not {weights!r}")
    cm = confusion_matrix(a, b, scale_values)
    k = len(scale_values)
    d = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
    return _kappa_from(cm, d if weights == "linear" else d**2)


def fleiss_counts(ratings: Sequence[Sequence[Hashable]], values: Sequence[Hashable]) -> np.ndarray:
    """Subjects × categories count matrix from per-subject lists of the raters' grades."""
    out = np.zeros((len(ratings), len(values)), dtype=np.int64)
    for i, row in enumerate(ratings):
        np.add.at(out[i], _indices(list(row), values, f"subject {i}"), 1)
    return out


def fleiss_kappa(ratings_matrix: Any) -> float:
    """Fleiss' kappa (1971) from an N subjects × k categories matrix of rater counts.

    Every subject must be rated by the same number (≥ 2) of raters. NaN when undefined.
    """
    m = np.asarray(ratings_matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] == 0:
        raise InputError("Fleiss' kappa needs a subjects × categories matrix of counts")
    if (m < 0).any():
        raise InputError("Fleiss' kappa counts cannot be negative")
    n_raters = m.sum(axis=1)
    if not np.all(n_raters == n_raters[0]) or n_raters[0] < 2:
        raise InputError(
            "Fleiss' kappa needs the same number (at least 2) of ratings for every subject; "
            "use krippendorff_alpha when some ratings are missing"
        )
    n, big_n = n_raters[0], m.shape[0]
    p_j = m.sum(axis=0) / (big_n * n)
    p_i = ((m * m).sum(axis=1) - n) / (n * (n - 1))
    p_bar, p_e = p_i.mean(), float((p_j * p_j).sum())
    if p_e == 1.0:
        return float("nan")
    return float((p_bar - p_e) / (1.0 - p_e))


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def krippendorff_alpha(reliability_data: Sequence[Sequence[Any]], level: str = "nominal") -> float:
    """Krippendorff's alpha from a coders × units table (None/NaN = missing), via coincidences.

    ``level``: "nominal" (any hashable values), "ordinal" (ranks of the sorted values, weighted by
    their pooled frequencies) or "interval" (numeric differences squared). Units with fewer than
    two values are not pairable and ignored. NaN when no disagreement is possible.
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise InputError(f"level must be 'nominal', 'ordinal' or 'interval', not {level!r}")
    rows = [list(r) for r in reliability_data]
    if not rows or len({len(r) for r in rows}) != 1:
        raise InputError("reliability data must be a coders × units table with equal-length rows")
    units = [[v for v in col if not _is_missing(v)] for col in zip(*rows, strict=True)]
    present = {v for u in units if len(u) >= 2 for v in u}
    if not present:
        return float("nan")
    values = sorted(present) if level != "nominal" else sorted(present, key=repr)
    pos = {v: i for i, v in enumerate(values)}
    k = len(values)
    coinc = np.zeros((k, k))
    for u in units:
        m_u = len(u)
        if m_u < 2:
            continue
        counts = np.bincount([pos[v] for v in u], minlength=k).astype(float)
        # ordered pairs of different coders within the unit, each weighted 1/(m_u - 1)
        coinc += (np.outer(counts, counts) - np.diag(counts)) / (m_u - 1)
    n_c = coinc.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        delta2 = 1.0 - np.eye(k)
    elif level == "interval":
        x = np.asarray(values, dtype=float)
        delta2 = np.subtract.outer(x, x) ** 2
    else:
        cum = np.concatenate([[0.0], np.cumsum(n_c)])
        lo = np.minimum.outer(np.arange(k), np.arange(k))
        hi = np.maximum.outer(np.arange(k), np.arange(k))
        delta2 = (cum[hi + 1] - cum[lo] - (n_c[lo] + n_c[hi]) / 2.0) ** 2
    d_e = float((np.outer(n_c, n_c) * delta2).sum())
    if d_e == 0.0:
        return float("nan")
    return 1.0 - (n - 1.0) * float((coinc * delta2).sum()) / d_e


def per_class_prf(
    truth: Sequence[Hashable], pred: Sequence[Hashable], values: Sequence[Hashable]
) -> dict[Hashable, dict[str, float]]:
    """Per class ``{"precision", "recall", "f1", "support"}`` of ``pred`` against ``truth``.

    Precision is NaN for a class never predicted, recall NaN for a class absent from the truth;
    F1 = 2TP / (2TP + FP + FN), NaN only when the class occurs in neither (scikit-learn's
    ``zero_division=nan``).
    """
    cm = confusion_matrix(truth, pred, values)
    tp = np.diag(cm).astype(float)
    pred_n, true_n = cm.sum(axis=0), cm.sum(axis=1)
    out: dict[Hashable, dict[str, float]] = {}
    for i, v in enumerate(values):
        p = tp[i] / pred_n[i] if pred_n[i] else float("nan")
        r = tp[i] / true_n[i] if true_n[i] else float("nan")
        denom = 2 * tp[i] + (pred_n[i] - tp[i]) + (true_n[i] - tp[i])
        f1 = 2 * tp[i] / denom if denom else float("nan")
        out[v] = {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f1),
            "support": int(true_n[i]),
        }
    return out
