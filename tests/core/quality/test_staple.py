"""STAPLE consensus: SimpleITK's filters against a plain numpy EM (Warfield 2004) and known cases."""

from __future__ import annotations

import numpy as np
import pytest

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.staple import multilabel_staple, staple


def _truth():
    t = np.zeros((16, 24, 24), np.uint8)
    t[4:12, 4:20, 4:20] = 1
    t[6:9, 8:12, 8:12] = 2
    return t


def _readers(t, rates=(0.01, 0.03, 0.08), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for r in rates:
        m = t.copy()
        flip = rng.random(t.shape) < r
        m[flip] = rng.integers(0, 3, int(flip.sum()))
        out.append(m)
    return out


def _em_staple(masks, iters=200):
    """Warfield's binary STAPLE EM: fixed prior = mean foreground fraction, p = q = 0.99999 start."""
    d = np.stack([m.ravel().astype(float) for m in masks])
    g = d.mean()
    p = np.full(len(masks), 0.99999)
    q = np.full(len(masks), 0.99999)
    for _ in range(iters):
        a = g * np.prod(np.where(d > 0, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - g) * np.prod(np.where(d > 0, 1 - q[:, None], q[:, None]), axis=0)
        w = a / (a + b)
        p = (w * d).sum(axis=1) / w.sum()
        q = ((1 - w) * (1 - d)).sum(axis=1) / (1 - w).sum()
    return w.reshape(masks[0].shape), p, q


def test_binary_staple_matches_numpy_em():
    masks = [m > 0 for m in _readers(_truth())]
    res = staple(masks)
    w, p, q = _em_staple(masks)
    np.testing.assert_allclose(res.sensitivities, p, atol=1e-4)
    np.testing.assert_allclose(res.specificities, q, atol=1e-4)
    np.testing.assert_allclose(res.probability, w, atol=1e-3)
    # the noisiest reader is estimated worst
    assert (
        res.sensitivities[2] < res.sensitivities[0] and res.specificities[2] < res.specificities[0]
    )


def test_identical_readers_give_certain_consensus():
    t = _truth() > 0
    prob, sens, spec = staple([t, t, t])
    assert np.all((prob > 0.99) == t)
    assert min(sens) > 0.999 and min(spec) > 0.999


def test_multilabel_staple_recovers_truth_and_confusion():
    t = _truth()
    res = multilabel_staple(_readers(t))
    assert (res.labels == t).mean() > 0.99
    for cm in res.confusion_matrices:
        assert cm.shape == (3, 3)
        np.testing.assert_allclose(
            cm.sum(axis=0), 1.0, atol=1e-6
        )  # columns: P(reader says i | truth j)
    assert res.confusion_matrices[0][1, 1] > res.confusion_matrices[2][1, 1]


def test_bad_input():
    with pytest.raises(InputError, match="at least two"):
        staple([np.zeros((3, 3))])
    with pytest.raises(InputError, match="different shapes"):
        staple([np.zeros((3, 3)), np.zeros((3, 4))])
    with pytest.raises(InputError, match="non-negative"):
        multilabel_staple([np.zeros((3, 3)), np.full((3, 3), 0.5)])
