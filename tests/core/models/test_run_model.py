"""run_model: model output → one draft per component (segments), box (detection) or grade."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_clinlabel.core.errors import ModelError  # noqa: E402
from napari_clinlabel.core.image.geometry import Geometry  # noqa: E402
from napari_clinlabel.core.image.volume import Volume  # noqa: E402
from napari_clinlabel.core.models.inference import InferenceCancelled  # noqa: E402
from napari_clinlabel.core.models.loader import load_model  # noqa: E402
from napari_clinlabel.core.models.run import iter_run_model, run_model  # noqa: E402


class Threshold(torch.nn.Module):
    """Voxels above 0.5 are class 1 (pointwise, so exactly translation-equivariant)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x[:, :1] - 0.5) * 20.0
        return torch.cat([-s, s], 1)


class MeanGrade(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3, 4)).reshape(-1, 1) * 10.0
        return torch.cat([-m, m], 1)


def make(tmp_path, module, **card):
    d = {
        "name": "thresh",
        "version": "1",
        "task": "segmentation",
        "in_channels": 1,
        "patch_size": [8, 16, 16],
        "input_spacing": None,
        "normalization": {"kind": "none"},
        "classes": [{"index": 0, "name": "background"}, {"index": 1, "label": 6, "name": "lesion"}],
    }
    d.update(card)
    pt = tmp_path / f"{d['name']}.pt"
    torch.jit.script(module).save(str(pt))
    (tmp_path / f"{d['name']}.pt.json").write_text(json.dumps(d))
    return load_model(pt, device="cpu")


def blobs(spacing=(1.0, 1.0, 1.0)):
    a = np.zeros((20, 40, 40), np.float32)
    a[2:10, 4:12, 4:12] = 1  # 512 voxels
    a[12:18, 20:34, 25:35] = 1  # 840 voxels
    a[15, 5, 35] = 1  # one voxel: below min_component_mm3, no proposal
    geo = Geometry(tuple(reversed(spacing)), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    return Volume(a, geo, {"modality": "MR"})


def test_segments_one_per_component(tmp_path):
    vol = blobs()
    drafts = run_model(vol, make(tmp_path, Threshold()))
    assert [d.kind for d in drafts] == ["segment", "segment"]
    big = np.zeros_like(vol.array)
    big[12:18, 20:34, 25:35] = 1
    small = np.zeros_like(vol.array)
    small[2:10, 4:12, 4:12] = 1
    want = [np.flatnonzero(big), np.flatnonzero(small)]  # largest first
    for d, w in zip(drafts, want, strict=True):
        np.testing.assert_array_equal(np.sort(d.indices), w)
        assert d.label == 6 and d.name == "lesion" and d.score > 0.99 and d.shape == (20, 40, 40)


def test_resampled_to_model_spacing_and_back(tmp_path):
    vol = blobs()
    model = make(tmp_path, Threshold(), input_spacing=[2.0, 2.0, 2.0])
    drafts = run_model(vol, model)
    truth = vol.array.reshape(-1) > 0
    for d in drafts:
        inter = truth[d.indices].sum()
        assert 2 * inter / (d.indices.size + inter) > 0.8
    assert len(drafts) == 2


def test_detection_boxes(tmp_path):
    from skimage.measure import label, regionprops

    vol = blobs()
    drafts = run_model(vol, make(tmp_path, Threshold(), name="det", task="detection"))
    props = [r for r in regionprops(label(vol.array > 0)) if r.area > 1]
    want = sorted(([*r.bbox[:3]], [b - 1 for b in r.bbox[3:]]) for r in props)
    got = sorted((d.payload["zyx_min"], d.payload["zyx_max"]) for d in drafts)
    assert got == want
    assert all(d.kind == "box" and d.payload["class"] == "lesion" for d in drafts)


def test_grading_with_probabilities(tmp_path):
    vol = blobs()
    vol.array[:] = 0.8
    model = make(
        tmp_path,
        MeanGrade(),
        name="grader",
        task="grading",
        scale="demo",
        classes=[
            {"index": 0, "grade": "low", "name": "low"},
            {"index": 1, "grade": "high", "name": "high"},
        ],
    )
    (d,) = run_model(vol, model)
    assert d.kind == "grade" and d.label == "high" and d.payload["scale"] == "demo"
    p = d.payload["probabilities"]
    assert set(p) == {"low", "high"} and sum(p.values()) == pytest.approx(1, abs=1e-5)
    assert p["high"] == pytest.approx(1 / (1 + np.exp(-16)), abs=1e-5) == pytest.approx(d.score)


def test_mismatched_images_are_refused(tmp_path):
    model = make(tmp_path, Threshold())
    rgb = Volume(np.zeros((30, 30, 3), np.uint8), Geometry.identity(2), {"rgb": True})
    with pytest.raises(ModelError, match="expects 1 input channel.*has 3"):
        run_model(rgb, model)
    fine = make(tmp_path, Threshold(), name="fine", input_spacing=[0.01, 0.01, 0.01])
    with pytest.raises(ModelError, match="0.01×0.01×0.01 mm but this image has 1×1×1 mm"):
        run_model(blobs(), fine)
    grey2d = Volume(np.zeros((30, 30), np.float32), Geometry.identity(2), {})
    with pytest.raises(ModelError, match="3D images but this image is 2D"):
        run_model(grey2d, model)


def test_progress_and_cancel(tmp_path):
    model = make(tmp_path, Threshold())
    steps = list(_progress(iter_run_model(blobs(), model)))
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InferenceCancelled):
        run_model(blobs(), model, cancel=cancel)


def _progress(gen):
    while True:
        try:
            yield next(gen)
        except StopIteration:
            return


def _tilted_blobs() -> Volume:
    """``blobs`` on a gantry-tilted grid: each slice 0.5 mm further along y (a 26.6° shear)."""
    vol = blobs()
    g = vol.geometry
    return Volume(vol.array, Geometry(g.spacing, g.origin, g.direction, (0.0, 0.5, 1.0)), vol.meta)


def test_sheared_volume_runs_in_voxel_space_and_maps_back_on_the_original_voxels(tmp_path):
    vol = _tilted_blobs()
    assert vol.geometry.sheared
    truth = vol.array.reshape(-1) > 0
    # the card's spacing equals the voxel-to-voxel distances (column norms: z = sqrt(1.25) mm):
    # the network sees the original grid as it is, and its components come back voxel for voxel
    exact = run_model(vol, make(tmp_path, Threshold(), input_spacing=[1.25**0.5, 1.0, 1.0]))
    big = np.zeros_like(vol.array)
    big[12:18, 20:34, 25:35] = 1
    small = np.zeros_like(vol.array)
    small[2:10, 4:12, 4:12] = 1
    for d, w in zip(exact, [np.flatnonzero(big), np.flatnonzero(small)], strict=True):
        np.testing.assert_array_equal(np.sort(d.indices), w)
        assert d.shape == vol.array.shape
    # a coarser model grid: resampled in voxel space and back (was refused for a shear)
    drafts = run_model(vol, make(tmp_path, Threshold(), name="t2", input_spacing=[2.0, 2.0, 2.0]))
    assert len(drafts) == 2
    for d in drafts:
        inter = truth[d.indices].sum()
        assert 2 * inter / (d.indices.size + inter) > 0.8 and d.shape == vol.array.shape
    # grading resamples the image to the patch on its voxel grid too
    (g,) = run_model(vol, make(tmp_path, MeanGrade(), name="g", task="grading",
                               classes=[{"index": 0, "grade": "0", "name": "no"},
                                        {"index": 1, "grade": "1", "name": "yes"}],
                               scale="s"))  # fmt: skip
    assert g.kind == "grade" and g.payload["value"] == "1"
