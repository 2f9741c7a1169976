"""Segmentation tools against SimpleITK / scikit-image / scipy run directly on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage
from skimage import measure, morphology

from napari_clinlabel.core.annotate import seg_tools as st
from napari_clinlabel.core.errors import ClinlabelError, InputError
from napari_clinlabel.core.image import samples
from napari_clinlabel.core.image.geometry import Geometry

LIVER_SEED = (24, 80, 50)  # inside the phantom liver, away from lesions


@pytest.fixture(scope="module")
def phantom() -> tuple[np.ndarray, np.ndarray, Geometry]:
    vol, truth = samples.ct_phantom_truth()
    assert truth[LIVER_SEED] == samples.LIVER
    return vol.array, truth, vol.geometry


def test_threshold_limited_mask(phantom) -> None:
    image, truth, _ = phantom
    brush = np.zeros(image.shape, bool)
    brush[24, 60:100, 30:90] = True
    got = st.threshold_limited_mask(image, brush, 30, 90)
    expected = brush & (image >= 30) & (image <= 90)
    assert np.array_equal(got, expected) and 0 < got.sum() < brush.sum()
    assert np.array_equal(st.in_window(image[brush], 30, 90), got[brush])
    with pytest.raises(ClinlabelError, match="window 90..30 is empty"):
        st.threshold_limited_mask(image, brush, 90, 30)


def test_region_grow_connected_matches_sitk_and_skimage(phantom) -> None:
    image, truth, _ = phantom
    got = st.region_grow(image, LIVER_SEED, method="connected", lower=50, upper=75)
    ref = sitk.GetArrayFromImage(
        sitk.ConnectedThreshold(
            sitk.GetImageFromArray(image), seedList=[LIVER_SEED[::-1]], lower=50, upper=75
        )
    ).astype(bool)
    assert np.array_equal(got, ref)
    # scikit-image: face-connected component of the in-window voxels that holds the seed
    lab = measure.label((image >= 50) & (image <= 75), connectivity=1)
    assert np.array_equal(got, lab == lab[LIVER_SEED])


def test_region_grow_smoothed_segments_liver(phantom) -> None:
    image, truth, _ = phantom
    got = st.region_grow(image, LIVER_SEED, lower=52, upper=72, smoothing=1.0)
    smooth = sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(image.astype(np.float32)), 1.0)
    ref = sitk.ConnectedThreshold(smooth, seedList=[LIVER_SEED[::-1]], lower=52, upper=72)
    assert np.array_equal(got, sitk.GetArrayFromImage(ref).astype(bool))
    liver = truth == samples.LIVER
    dice = 2 * (got & liver).sum() / (got.sum() + liver.sum())
    assert dice > 0.9


def test_region_grow_default_window_from_seed_neighbourhood(phantom) -> None:
    image, _, _ = phantom
    mean, std = st.neighbourhood_stats(image, LIVER_SEED, 2)
    box = image[22:27, 78:83, 48:53].astype(float)
    assert (mean, std) == pytest.approx((box.mean(), box.std()))
    got = st.region_grow(image, LIVER_SEED, radius=2, multiplier=1.5)
    ref = sitk.ConnectedThreshold(
        sitk.GetImageFromArray(image),
        seedList=[LIVER_SEED[::-1]],
        lower=mean - 1.5 * std,
        upper=mean + 1.5 * std,
    )
    assert np.array_equal(got, sitk.GetArrayFromImage(ref).astype(bool))


def test_region_grow_confidence_matches_sitk(phantom) -> None:
    image, _, _ = phantom
    got = st.region_grow(
        image, LIVER_SEED, method="confidence", multiplier=2.0, iterations=2, radius=2
    )
    ref = sitk.ConfidenceConnected(
        sitk.GetImageFromArray(image),
        seedList=[LIVER_SEED[::-1]],
        numberOfIterations=2,
        multiplier=2.0,
        initialNeighborhoodRadius=2,
        replaceValue=1,
    )
    assert np.array_equal(got, sitk.GetArrayFromImage(ref).astype(bool)) and got.any()


def test_region_grow_bad_input(phantom) -> None:
    image, _, _ = phantom
    with pytest.raises(ClinlabelError, match="outside the image"):
        st.region_grow(image, (100, 0, 0))
    with pytest.raises(ClinlabelError, match="Unknown region-growing method"):
        st.region_grow(image, LIVER_SEED, method="watershed")
    with pytest.raises(InputError, match="scalar 2D or 3D"):
        st.region_grow(np.zeros((4, 4, 3, 2), np.uint8), (0, 0, 0))


def _shape_based_oracle(
    mask: np.ndarray, spacing_yx: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Independent shape-based interpolation with scipy's exact Euclidean distance transform.

    Returns the mask and the interpolated field; voxels where the field is ~0 are exact ties
    that float rounding may decide either way.
    """

    def sdist(p: np.ndarray) -> np.ndarray:
        inside = ndimage.distance_transform_edt(p, sampling=spacing_yx)
        outside = ndimage.distance_transform_edt(~p, sampling=spacing_yx)
        # distance from each voxel centre to the contour midway between voxels
        return np.where(p, -(inside - 0.5 * min(spacing_yx)), outside - 0.5 * min(spacing_yx))

    out = mask.copy()
    field = np.full(mask.shape, np.inf)
    drawn = [k for k in range(mask.shape[0]) if mask[k].any()]
    for a, b in zip(drawn[:-1], drawn[1:], strict=False):
        for s in range(a + 1, b):
            t = (s - a) / (b - a)
            field[s] = (1 - t) * sdist(mask[a]) + t * sdist(mask[b])
            out[s] = field[s] <= 0
    return out, field


def test_interpolate_slices_on_phantom_liver(phantom) -> None:
    _, truth, geom = phantom
    liver = truth == samples.LIVER
    sparse = np.zeros_like(truth)
    sparse[::4][liver[::4]] = samples.LIVER
    other = np.zeros_like(truth)
    got = st.interpolate_slices(sparse, samples.LIVER, axis=0, spacing=geom.spacing_zyx)
    assert np.array_equal(got[::4], liver[::4])  # drawn slices untouched
    ref, field = _shape_based_oracle(sparse == samples.LIVER, geom.spacing_zyx[1:])
    clear = np.abs(field) > 1e-3
    assert np.array_equal(got[clear], ref[clear])
    assert (~clear).mean() < 0.002
    dice = 2 * (got & liver).sum() / (got.sum() + liver.sum())
    assert dice > 0.95
    assert not st.interpolate_slices(other, samples.LIVER).any()


def test_interpolate_slices_other_axis_and_identity() -> None:
    m = np.zeros((6, 20, 30), np.uint8)
    m[:, 5:15, 2] = 3
    m[:, 5:15, 10] = 3
    got = st.interpolate_slices(m, 3, axis=2)
    assert got[:, 5:15, 2:11].all() and not got[:, :5].any() and not got[:, :, 11:].any()
    with pytest.raises(ClinlabelError, match="needs a 3D label array"):
        st.interpolate_slices(m[0], 3)


def test_remove_small_islands_matches_skimage(phantom) -> None:
    rng = np.random.default_rng(1)
    mask = rng.random((20, 40, 40)) > 0.75
    for n in (2, 5, 30):
        got = st.remove_small_islands(mask, n)
        # scikit-image removes components with <= max_size voxels: "< n" is max_size = n - 1
        ref = morphology.remove_small_objects(mask, max_size=n - 1, connectivity=1)
        assert np.array_equal(got, ref)
    assert np.array_equal(st.remove_small_islands(mask, 1), mask)


def test_fill_holes_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    mask = ndimage.binary_dilation(rng.random((16, 32, 32)) > 0.7, iterations=1)
    assert np.array_equal(st.fill_holes(mask), ndimage.binary_fill_holes(mask))
    per_slice = np.stack([ndimage.binary_fill_holes(p) for p in mask])
    assert np.array_equal(st.fill_holes(mask, per_slice_axis=0), per_slice)
    assert not np.array_equal(per_slice, ndimage.binary_fill_holes(mask))


def test_label_volumes_ml(phantom) -> None:
    _, truth, geom = phantom
    vols = st.label_volumes_ml(truth, geom)
    voxel_ml = 0.8 * 0.8 * 2.5 / 1000
    for value in range(1, 7):
        assert vols[value] == pytest.approx(np.count_nonzero(truth == value) * voxel_ml)
    assert 0 not in vols
    img = sitk.GetImageFromArray(truth)
    geom.apply_to_itk(img)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(img)
    for value in stats.GetLabels():
        assert vols[value] == pytest.approx(stats.GetPhysicalSize(value) / 1000)
    assert st.label_volumes_ml(truth.astype(np.uint16), 2.0)[1] == pytest.approx(
        np.count_nonzero(truth == 1) * 2.0 / 1000
    )


def test_apply_tool_result_never_overwrites_other_labels() -> None:
    labels = np.zeros((4, 5, 5), np.uint8)
    labels[1, :, :2] = 2
    labels[1, 0, 4] = 1
    mask = np.zeros(labels.shape, bool)
    mask[1] = True
    before = labels.copy()
    idx, old, new = st.apply_tool_result(labels, mask, 1)
    assert np.all(labels[1, :, :2] == 2)  # the other label survived
    assert idx.size == 25 - 10 - 1 and np.all(old == 0) and np.all(new == 1)
    assert np.array_equal(labels.reshape(-1)[idx], new)
    assert np.array_equal(before.reshape(-1)[idx], old)
    idx2, old2, _ = st.apply_tool_result(labels, mask, 1, overwrite_other_labels=True)
    assert idx2.size == 10 and np.all(old2 == 2) and np.all(labels[1] == 1)
    idx3, old3, new3 = st.apply_tool_result(labels, mask, 0, from_value=1)
    assert idx3.size == 25 and np.all(labels[1] == 0) and np.all(new3 == 0)
    idx4, _, _ = st.apply_tool_result(labels, mask, 0)  # erase without from_value changes nothing
    assert idx4.size == 0
    with pytest.raises(ClinlabelError, match="does not fit"):
        st.apply_tool_result(labels, mask, 300)


def test_tool_change_is_pure_and_logs_as_one_record(phantom, tmp_path) -> None:
    """A grown region goes into a real audit log as one diff record; a failed log undoes it."""
    from napari_clinlabel.core.annotate.label_edits import record_label_change
    from napari_clinlabel.core.errors import LogError
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor

    image, _, _ = phantom
    labels = np.zeros(image.shape, np.uint8)
    labels[24, 80, 60:65] = samples.SPLEEN
    before = labels.copy()
    grown = st.region_grow(image, LIVER_SEED, lower=52, upper=72, smoothing=1.0)
    idx, old, new = st.tool_change(labels, grown, samples.LIVER)
    assert np.array_equal(labels, before)  # tool_change does not touch the array
    log = AuditLog(tmp_path / "ct.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64},
                   Actor("ann", "Ann", "annotator"))  # fmt: skip
    assert np.array_equal(st.apply_tool_result(labels, grown, samples.LIVER)[0], idx)
    rec = record_label_change(log, labels, "segmentation", idx, old, new,
                              data={"tool": "region_grow"})  # fmt: skip
    assert rec["data"]["voxels"] == int((grown & (before == 0)).sum())
    stored = log.get_arrays(rec["data"]["objects"]["diff"])
    assert np.array_equal(stored["indices"], idx) and np.all(stored["new"] == samples.LIVER)
    assert np.all(labels[24, 80, 60:65] == samples.SPLEEN)

    # the log refuses (its objects folder cannot be created): the array is put back as it was
    after = labels.copy()
    mask = np.zeros(labels.shape, bool)
    mask[40, 10:20, 10:20] = True
    change = st.apply_tool_result(labels, mask, samples.AORTA)
    assert change[0].size == 100 and not np.array_equal(labels, after)
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    broken = AuditLog(tmp_path / "ct.clinlabel.jsonl", log.image, log.actor, objects=blocker / "x")
    with pytest.raises(LogError):
        record_label_change(broken, labels, "segmentation", *change)
    assert np.array_equal(labels, after)
    assert len(log.records()) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32])
def test_label_voxel_counts_matches_bincount(dtype) -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random((30, 50, 70)) ** 4 * 9).astype(dtype)
    ref = np.bincount(labels.ravel().astype(np.int64))
    got = st.label_voxel_counts(labels, chunk_voxels=1000)
    assert np.array_equal(got[: ref.size], ref) and not got[ref.size :].any()
    assert st.label_voxel_counts(np.zeros((0, 3), dtype))[0] == 0
    with pytest.raises(ClinlabelError, match="integers"):
        st.label_voxel_counts(labels.astype(float))


def test_island_and_hole_voxels_of_one_label() -> None:
    labels = np.zeros((5, 20, 20), np.uint8)
    labels[1:4, 2:12, 2:12] = 1
    labels[2, 6, 6] = 0  # a hole
    labels[2, 7, 7] = 2  # another label inside: not a hole of label 1 to fill over
    labels[0, 18, 18] = 1  # an island of one voxel
    islands = st.island_voxels(labels, 1, 5)
    assert np.argwhere(islands).tolist() == [[0, 18, 18]]
    holes = st.hole_voxels(labels, 1)
    ref = ndimage.binary_fill_holes(labels == 1) & (labels != 1)
    assert np.array_equal(holes, ref) and holes[2, 6, 6] and holes[2, 7, 7]
    idx, _, _ = st.tool_change(labels, holes, 1)
    assert np.unravel_index(idx, labels.shape) == ([2], [6], [6])  # label 2 kept
