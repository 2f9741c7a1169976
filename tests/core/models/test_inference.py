"""Sliding-window inference against a direct whole-volume forward, blending, progress, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_clinlabel.core.models.inference import (  # noqa: E402
    InferenceCancelled,
    blending_weights,
    gaussian_1d,
    iter_sliding_window,
    resample_like,
    resample_to_spacing,
    sliding_window_predict,
    window_starts,
)


def pointwise(n_cls=4, c_in=1, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Conv3d(c_in, n_cls, 1).eval()


def direct(model, x):
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_equals_direct_forward_for_equivariant_model(overlap):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 37, 61, 50)).astype(np.float32)
    m = pointwise(c_in=2)
    want = direct(m, x)
    got = sliding_window_predict(x, m, roi=(16, 24, 24), overlap=overlap, batch_size=3)
    assert got.probabilities.shape == want.shape
    np.testing.assert_allclose(got.probabilities, want, atol=2e-6)
    am = sliding_window_predict(x, m, roi=(16, 24, 24), overlap=overlap, output="argmax")
    np.testing.assert_array_equal(am.labels, want.argmax(0))
    np.testing.assert_allclose(am.confidence, want.max(0), atol=1e-3)


def test_volume_smaller_than_window_and_2d():
    x = np.random.default_rng(2).normal(size=(5, 9, 70)).astype(np.float32)
    m = pointwise()
    got = sliding_window_predict(x, m, roi=(16, 24, 24), overlap=0.25)
    np.testing.assert_allclose(got.probabilities, direct(m, x[None]), atol=2e-6)
    torch.manual_seed(0)
    m2 = torch.nn.Conv2d(1, 3, 1).eval()
    img = np.random.default_rng(3).normal(size=(50, 41)).astype(np.float32)
    got2 = sliding_window_predict(img, m2, roi=(16, 16), overlap=0.5)
    with torch.no_grad():
        want2 = torch.softmax(m2(torch.from_numpy(img)[None, None]), 1)[0].numpy()
    np.testing.assert_allclose(got2.probabilities, want2, atol=2e-6)


def test_window_starts_cover_and_blending_weights():
    for size, roi, ov in [(300, 96, 0.25), (512, 96, 0.25), (97, 96, 0.5), (50, 96, 0.25)]:
        st = window_starts(size, roi, ov)
        covered = np.zeros(max(size, roi), bool)
        for s in st:
            covered[s : s + roi] = True
        assert covered[:size].all() and st[0] == 0 and st[-1] == max(size - roi, 0)
    # the MONAI count for 300 and 512 with ROI 96 / overlap 0.25 (interval 72)
    assert len(window_starts(300, 96, 0.25)) == 4 and len(window_starts(512, 96, 0.25)) == 7
    g = gaussian_1d(96)
    assert g.max() == pytest.approx(1.0) and g.min() > 0
    np.testing.assert_allclose(g, g[::-1])
    sigma = 96 * 0.125  # independent Gaussian: exp(-d²/2σ²) at the window edge
    assert g[0] == pytest.approx(np.exp(-0.5 * (47.5 / sigma) ** 2), rel=2e-3)
    w = blending_weights((8, 10, 12))
    assert w.shape == (8, 10, 12)
    np.testing.assert_allclose(
        w, np.einsum("i,j,k->ijk", gaussian_1d(8), gaussian_1d(10), gaussian_1d(12)), rtol=1e-6
    )


def test_progress_reports_every_window():
    x = np.zeros((1, 40, 40, 40), np.float32)
    seen = []
    sliding_window_predict(
        x,
        pointwise(),
        roi=(16, 16, 16),
        overlap=0.25,
        batch_size=4,
        progress=lambda d, t: seen.append((d, t)),
    )
    total = len(window_starts(40, 16, 0.25)) ** 3
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_cancel_stops_and_generator_can_be_closed():
    x = np.zeros((1, 40, 40, 40), np.float32)
    cancel = threading.Event()
    calls = []

    def progress(d, t):
        calls.append(d)
        if d > 0:
            cancel.set()

    with pytest.raises(InferenceCancelled):
        sliding_window_predict(
            x, pointwise(), roi=(16, 16, 16), batch_size=2, progress=progress, cancel=cancel
        )
    assert calls[-1] < len(window_starts(40, 16, 0.25)) ** 3
    gen = iter_sliding_window(x, pointwise(), roi=(16, 16, 16))
    assert next(gen)[0] == 0 and next(gen)[0] > 0
    gen.close()  # what napari's worker.quit() amounts to: stops at a yield


def test_resampling_keeps_physical_extent():
    sitk = pytest.importorskip("SimpleITK")
    img = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 30, 40)).astype(np.float32))
    img.SetSpacing((0.8, 0.8, 2.5))
    img.SetOrigin((-10.0, 5.0, 30.0))
    img.SetDirection(sitk.VersorTransform((0, 0, 1), 0.3).GetMatrix())
    out = resample_to_spacing(img, (5.0, 1.6, 1.6))
    assert out.GetSpacing() == pytest.approx((1.6, 1.6, 5.0)) and out.GetSize() == (20, 15, 10)

    def centre(im):
        return np.array(
            im.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in im.GetSize()])
        )

    np.testing.assert_allclose(centre(out), centre(img), atol=1e-6)
    back = resample_like(out, img)
    assert back.GetSize() == img.GetSize() and back.GetDirection() == img.GetDirection()
    lab = sitk.Cast(img > 0.5, sitk.sitkUInt8)
    nn = resample_like(resample_to_spacing(lab, (2.5, 0.4, 0.4), linear=False), lab, linear=False)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(nn), sitk.GetArrayFromImage(lab))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_matches_cpu():
    x = np.random.default_rng(4).normal(size=(1, 40, 70, 70)).astype(np.float32)
    m = pointwise()
    cpu = sliding_window_predict(x, m, roi=(32, 32, 32))
    gpu = sliding_window_predict(x, m.cuda(), roi=(32, 32, 32), device="cuda")
    np.testing.assert_allclose(gpu.probabilities, cpu.probabilities, atol=2e-2)
    am = sliding_window_predict(x, m, roi=(32, 32, 32), device="cuda", output="argmax")
    assert (am.labels == cpu.probabilities.argmax(0)).mean() > 0.99
