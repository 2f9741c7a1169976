"""Grade agreement against scikit-learn, Fleiss' worked example and Krippendorff's published data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.kappa import (
    cohen_kappa,
    confusion_matrix,
    fleiss_counts,
    fleiss_kappa,
    krippendorff_alpha,
    per_class_prf,
    weighted_kappa,
)

BIRADS = ["0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]


def _readers(seed: int, n: int = 200, scale=BIRADS, unused=("6",)):
    rng = np.random.default_rng(seed)
    used = [v for v in scale if v not in unused]
    a_idx = rng.integers(0, len(used), n)
    b_idx = np.clip(a_idx + rng.choice([-2, -1, 0, 0, 0, 1], n), 0, len(used) - 1)
    return [used[i] for i in a_idx], [used[i] for i in b_idx]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappas_match_sklearn_with_full_scale(seed):
    a, b = _readers(seed)
    assert "6" not in a + b  # a grade nobody used still shifts positions on the scale
    assert cohen_kappa(a, b, BIRADS) == pytest.approx(
        cohen_kappa_score(a, b, labels=BIRADS), abs=1e-9
    )
    for w in ("linear", "quadratic"):
        ours = weighted_kappa(a, b, BIRADS, weights=w)
        assert ours == pytest.approx(cohen_kappa_score(a, b, labels=BIRADS, weights=w), abs=1e-9)
    np.testing.assert_array_equal(
        confusion_matrix(a, b, BIRADS), sk_confusion_matrix(a, b, labels=BIRADS)
    )


def test_weighted_kappa_depends_on_full_scale_position():
    # the same grades on a scale with a missing middle grade: positions differ, so kappa differs
    a = ["1", "1", "3", "3", "5"]
    b = ["1", "3", "3", "5", "5"]
    full = weighted_kappa(a, b, ["1", "2", "3", "4", "5"])
    assert full == pytest.approx(
        cohen_kappa_score(a, b, labels=["1", "2", "3", "4", "5"], weights="quadratic"), abs=1e-9
    )


def test_kappa_undefined_is_nan():
    assert math.isnan(cohen_kappa(["2"] * 5, ["2"] * 5, ["1", "2"]))
    assert math.isnan(weighted_kappa([], [], ["1", "2"]))


def test_per_class_prf_matches_sklearn():
    truth, pred = _readers(5, n=120)
    res = per_class_prf(truth, pred, BIRADS)
    p, r, f, s = precision_recall_fscore_support(truth, pred, labels=BIRADS, zero_division=np.nan)
    for i, v in enumerate(BIRADS):
        for key, ref in (("precision", p[i]), ("recall", r[i]), ("f1", f[i])):
            got = res[v][key]
            assert (math.isnan(got) and math.isnan(ref)) or got == pytest.approx(ref, abs=1e-12), (
                v,
                key,
            )
        assert res[v]["support"] == s[i]


# Worked example (Wikipedia "Fleiss' kappa"): 10 subjects, 14 raters, 5 categories, kappa 0.210
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_worked_example():
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.20993, abs=5e-5)


def test_fleiss_two_raters_equals_scotts_pi():
    # with two raters Fleiss' kappa is Scott's pi: 1 - (1-Po)/(1-Pe), Pe from pooled marginals
    a, b = _readers(3, n=80, scale=["a", "b", "c"], unused=())
    counts = fleiss_counts(list(zip(a, b, strict=True)), ["a", "b", "c"])
    po = np.mean([x == y for x, y in zip(a, b, strict=True)])
    pooled = np.array([(a + b).count(v) for v in "abc"]) / (2 * len(a))
    pe = (pooled**2).sum()
    assert fleiss_kappa(counts) == pytest.approx((po - pe) / (1 - pe), abs=1e-12)


def test_fleiss_bad_input():
    with pytest.raises(InputError, match="same number"):
        fleiss_kappa([[1, 1], [2, 1]])
    with pytest.raises(InputError, match="not on the scale"):
        fleiss_counts([["a", "z"]], ["a", "b"])


# Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability", 4 observers x 12 units
_ = None
KRIPP = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]


def _alpha_pairwise(data, level):
    """Alpha = 1 - Do/De by enumerating value pairs directly (no coincidence matrix)."""
    units = [[v for v in col if v is not None] for col in zip(*data, strict=True)]
    units = [u for u in units if len(u) >= 2]
    pooled = [v for u in units for v in u]
    n = len(pooled)

    def d2(c, k):
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return float(c - k) ** 2
        lo, hi = min(c, k), max(c, k)
        between = sum(1 for v in pooled if lo <= v <= hi)
        return (between - (pooled.count(c) + pooled.count(k)) / 2) ** 2

    do = (
        sum(
            d2(u[i], u[j]) / (len(u) - 1)
            for u in units
            for i, j in itertools.permutations(range(len(u)), 2)
        )
        / n
    )
    de = sum(d2(pooled[i], pooled[j]) for i, j in itertools.permutations(range(n), 2)) / (
        n * (n - 1)
    )
    return 1 - do / de


def test_krippendorff_published_values():
    assert krippendorff_alpha(KRIPP, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(KRIPP, "ordinal") == pytest.approx(0.815, abs=5e-4)
    assert krippendorff_alpha(KRIPP, "interval") == pytest.approx(0.849, abs=5e-4)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_krippendorff_matches_pairwise_enumeration(level):
    assert krippendorff_alpha(KRIPP, level) == pytest.approx(
        _alpha_pairwise(KRIPP, level), abs=1e-12
    )
    nan_data = [[float("nan") if v is None else v for v in row] for row in KRIPP]
    assert krippendorff_alpha(nan_data, level) == pytest.approx(
        _alpha_pairwise(KRIPP, level), abs=1e-12
    )


def test_krippendorff_bad_input():
    with pytest.raises(InputError, match="level"):
        krippendorff_alpha(KRIPP, "ratio")
    with pytest.raises(InputError, match="equal-length"):
        krippendorff_alpha([[1, 2], [1]])


def test_bad_grades_and_lengths():
    with pytest.raises(InputError, match="not on the scale"):
        cohen_kappa(["1", "7"], ["1", "2"], ["1", "2", "3"])
    with pytest.raises(InputError, match="pair them"):
        cohen_kappa(["1"], ["1", "2"], ["1", "2"])
    with pytest.raises(InputError, match="weights"):
        weighted_kappa(["1"], ["1"], ["1", "2"], weights="cubic")
    with pytest.raises(InputError, match="twice"):
        cohen_kappa(["1"], ["1"], ["1", "1"])
