"""DICOM series: geometric sorting, 4D, refusals, enhanced multi-frame, real scanner data.

Oracles: the synthetic writer's own inputs, SimpleITK's series read where it is right, the
dcm2niix conversion of the GE fMRI series, and the dcmqi NRRD label grid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import FAKE_PHI, phantom_stored, write_enhanced_ct, write_series  # noqa: E402

from napari_clinlabel.core.errors import ClinlabelWarning, GeometryError, InputError  # noqa: E402
from napari_clinlabel.core.image.dicom.volume import read_dicom_file, read_dicom_folder  # noqa: E402
from napari_clinlabel.core.image.volume import voxel_sha256  # noqa: E402

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
OBLIQUE_IOP = (0.9659258, 0.2588190, 0.0, -0.2241439, 0.8365163, 0.5)


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_world_matches(vol, img: sitk.Image, n: int = 40, atol: float = 1e-4) -> None:
    rng = np.random.default_rng(1)
    size = img.GetSize()
    for _ in range(n):
        idx = tuple(int(rng.integers(0, s)) for s in size)
        expected = img.TransformIndexToPhysicalPoint(idx)[::-1]
        got = vol.geometry.index_to_world(idx[::-1])
        np.testing.assert_allclose(got, expected, atol=atol)


@pytest.mark.parametrize(
    "iop", [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), OBLIQUE_IOP], ids=["axial", "oblique"]
)
def test_shuffled_reversed_series_matches_truth_and_simpleitk(tmp_path, iop):
    ws = write_series(
        tmp_path, phantom_stored((9, 20, 24)), iop=iop, shuffle=True, reverse_instance=True
    )
    (vol,) = read_dicom_folder(tmp_path)
    np.testing.assert_array_equal(vol.array, ws.array)
    assert vol.geometry.close_to(ws.geometry, atol_mm=1e-4)
    img = _sitk_series(tmp_path)  # a well-formed series: SimpleITK is right here
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    _assert_world_matches(vol, img)
    assert vol.meta["series_uid"] == ws.series_uid
    assert vol.meta["window"] == [40.0, 400.0]
    assert vol.sha256 == voxel_sha256(vol.array)
    assert len(vol.meta["sop_instance_uids"]) == 9


def test_meta_holds_no_patient_data(tmp_path):
    write_series(tmp_path, phantom_stored((3, 8, 8)))
    (vol,) = read_dicom_folder(tmp_path)
    text = json.dumps(vol.meta, default=str)
    for value in FAKE_PHI.values():
        assert value not in text
    assert {"modality", "study_uid", "series_uid", "frame_of_reference_uid"} <= set(vol.meta)


def test_one_file_opens_its_whole_series(tmp_path):
    ws = write_series(tmp_path, phantom_stored((6, 10, 12)))
    (vol,) = read_dicom_file(ws.files[3])
    np.testing.assert_array_equal(vol.array, ws.array)
    assert vol.source_path == tmp_path


def test_missing_slice_is_refused(tmp_path):
    offsets = [0, 2, 4, 8, 10, 12]  # the slice at 6 mm is missing
    write_series(tmp_path, phantom_stored((6, 8, 8)), offsets_mm=offsets)
    with pytest.raises(GeometryError, match="missing slice") as exc:
        read_dicom_folder(tmp_path)
    assert str(tmp_path) in str(exc.value) and "4.000 mm apart" in str(exc.value)


def test_uneven_spacing_opens_as_even_blocks(tmp_path):
    write_series(tmp_path, phantom_stored((5, 8, 8)), offsets_mm=[0, 2, 4.6, 6, 8])
    vols = read_dicom_folder(tmp_path)  # blocks [0, 2], [4.6, 6], [8]; tilt tests: test_dicom_tilt
    assert [v.array.shape[0] for v in vols] == [2, 2, 1]
    assert [v.meta["slice_block"] for v in vols] == [[1, 2, 5], [3, 4, 5], [5, 5, 5]]


def test_two_series_in_one_folder(tmp_path):
    a = write_series(tmp_path, phantom_stored((4, 8, 10)), description="A", name_prefix="A", seed=1)
    b = write_series(
        tmp_path,
        phantom_stored((7, 6, 6), seed=3),
        description="B",
        iop=OBLIQUE_IOP,
        name_prefix="B",
        seed=2,
    )
    vols = {v.meta["series_uid"]: v for v in read_dicom_folder(tmp_path)}
    assert set(vols) == {a.series_uid, b.series_uid}
    for ws in (a, b):
        np.testing.assert_array_equal(vols[ws.series_uid].array, ws.array)
        assert vols[ws.series_uid].geometry.close_to(ws.geometry)


@pytest.mark.parametrize("temporal", ["acquisition", "temporal", "instance"])
def test_several_volumes_at_same_positions_load_as_4d(tmp_path, temporal):
    stored = phantom_stored((3, 5, 8, 9))
    ws = write_series(tmp_path, stored, temporal=temporal, reverse_instance=False)
    (vol,) = read_dicom_folder(tmp_path)
    assert vol.array.shape == (3, 5, 8, 9) and vol.leading_axes == 1
    np.testing.assert_array_equal(vol.array, ws.array)
    assert vol.geometry.close_to(ws.geometry)
    assert vol.meta["n_volumes"] == 3


def test_unequal_images_per_position_is_refused(tmp_path):
    ws = write_series(tmp_path, phantom_stored((2, 4, 6, 6)), temporal="acquisition")
    ws.files[-1].unlink()
    with pytest.raises(GeometryError, match="different numbers of images"):
        read_dicom_folder(tmp_path)


def test_mixed_orientations_in_one_series_refused(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.999"
    write_series(tmp_path, phantom_stored((3, 8, 8)), series_uid=uid, name_prefix="A")
    write_series(
        tmp_path,
        phantom_stored((3, 8, 8)),
        series_uid=uid,
        name_prefix="B",
        iop=OBLIQUE_IOP,
        seed=5,
    )
    with pytest.raises(GeometryError, match="different slice orientations"):
        read_dicom_folder(tmp_path)


def test_mixed_sizes_in_one_series_refused(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.998"
    write_series(tmp_path, phantom_stored((3, 8, 8)), series_uid=uid, name_prefix="A")
    write_series(tmp_path, phantom_stored((3, 8, 10)), series_uid=uid, name_prefix="B", seed=5)
    with pytest.raises(GeometryError, match="different sizes"):
        read_dicom_folder(tmp_path)


def test_bad_series_beside_good_one_is_skipped_with_warning(tmp_path):
    good = write_series(tmp_path, phantom_stored((4, 8, 8)), name_prefix="G", seed=1)
    write_series(
        tmp_path, phantom_stored((4, 8, 8)), offsets_mm=[0, 2, 6, 8], name_prefix="X", seed=2
    )
    with pytest.warns(ClinlabelWarning, match="missing slice"):
        vols = read_dicom_folder(tmp_path)
    assert [v.meta["series_uid"] for v in vols] == [good.series_uid]


def test_enhanced_multiframe_sorts_frames_by_position(tmp_path):
    ws = write_enhanced_ct(tmp_path / "enhanced.dcm", phantom_stored((7, 12, 14)))
    (vol,) = read_dicom_file(ws.files[0])
    np.testing.assert_array_equal(vol.array, ws.array)
    assert vol.geometry.close_to(ws.geometry, atol_mm=1e-4)
    assert vol.sha256 == voxel_sha256(vol.array)


def test_corrupt_file_in_series_is_named(tmp_path):
    ws = write_series(tmp_path, phantom_stored((4, 8, 8)))
    data = ws.files[2].read_bytes()
    ws.files[2].write_bytes(data[: len(data) - 40])
    with pytest.raises(InputError, match="truncated") as exc:
        read_dicom_folder(tmp_path)
    assert ws.files[2].name in str(exc.value)


def test_non_dicom_files_in_folder_are_ignored(tmp_path):
    ws = write_series(tmp_path, phantom_stored((3, 8, 8)))
    (tmp_path / "README.txt").write_text("notes")
    (vol,) = read_dicom_folder(tmp_path)
    np.testing.assert_array_equal(vol.array, ws.array)


# ------------------------------------------------------------------ real DICOM
def test_pydicom_ct_and_mr_files_open(tmp_path):
    from pydicom.data import get_testdata_file

    for name, modality in (("CT_small.dcm", "CT"), ("MR_small.dcm", "MR")):
        path = tmp_path / modality / name  # alone: pydicom's folder mixes variants of one series
        path.parent.mkdir()
        shutil.copy(get_testdata_file(name), path)
        (vol,) = read_dicom_file(path)
        img = sitk.ReadImage(str(path))
        ref = sitk.GetArrayFromImage(img)
        np.testing.assert_array_equal(vol.array, ref.reshape(vol.array.shape))
        assert vol.meta["modality"] == modality
        _assert_world_matches(vol, img)


def test_truncated_real_file_is_refused(tmp_path):
    from pydicom.data import get_testdata_file

    path = tmp_path / "MR_truncated.dcm"
    shutil.copy(get_testdata_file("MR_truncated.dcm"), path)
    with pytest.raises(InputError, match="pixel data is truncated") as exc:
        read_dicom_file(path)
    assert "MR_truncated.dcm" in str(exc.value) and "Re-export" in str(exc.value)


def _pydicom_dir(*parts: str) -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm")).parent.joinpath("dicomdirtests", *parts)


def test_pydicom_ct_series_with_reversed_positions_opens(tmp_path):
    src = _pydicom_dir("98892001", "CT5N")
    if not src.is_dir():
        pytest.skip("pydicom dicomdirtests not installed")
    (vol,) = read_dicom_folder(src)
    assert vol.array.shape[0] == 5
    z = [vol.geometry.index_to_world((k, 0, 0))[0] for k in range(5)]
    assert np.allclose(np.diff(z), 2.5, atol=1e-3)  # ascending along the normal


def test_pydicom_series_with_gap_is_refused():
    src = _pydicom_dir("77654033", "CT2")
    if not src.is_dir():
        pytest.skip("pydicom dicomdirtests not installed")
    with pytest.raises(GeometryError, match="missing slice"):
        read_dicom_folder(src)


def test_pydicom_localizer_with_rotating_orientations_is_refused():
    src = _pydicom_dir("98892003", "MR700")
    if not src.is_dir():
        pytest.skip("pydicom dicomdirtests not installed")
    with pytest.raises(GeometryError, match="orientations"):
        read_dicom_folder(src)


@pytest.mark.parametrize("series,ref", [("mr_0004", 4), ("mr_0006", 6)])
def test_ge_fmri_loads_as_4d_and_matches_dcm2niix(series, ref):
    root = SHARED / "ge_nih_fmri_slice_order"
    if not root.is_dir():
        pytest.skip("shared scanner data not present")
    (vol,) = read_dicom_folder(root / series)
    assert vol.array.shape == (10, 15, 64, 64)
    ref_img = sitk.ReadImage(str(root / "ref" / f"DCM2NIIX_regression_test_{ref}.nii"))  # LPS
    ref_arr = sitk.GetArrayFromImage(ref_img)  # (t, z, y, x)
    assert ref_arr.shape == (10, 15, 64, 64)
    # map every one of our voxels to the reference's index through physical space
    d4 = np.asarray(ref_img.GetDirection()).reshape(4, 4)[:3, :3]
    m = d4 @ np.diag(ref_img.GetSpacing()[:3])
    o = np.asarray(ref_img.GetOrigin()[:3])
    kk, jj, ii = np.meshgrid(*[np.arange(n) for n in (15, 64, 64)], indexing="ij")
    ours = np.stack([kk, jj, ii], -1).reshape(-1, 3)
    world_xyz = vol.geometry.index_to_world(ours)[:, ::-1]
    ref_ijk = np.linalg.solve(m, (world_xyz - o).T).T
    np.testing.assert_allclose(ref_ijk, np.round(ref_ijk), atol=1e-3 / 3.75)  # on grid to 1e-3 mm
    r = np.round(ref_ijk).astype(int)
    for t in range(10):
        np.testing.assert_array_equal(
            vol.array[t].reshape(-1), ref_arr[t][r[:, 2], r[:, 1], r[:, 0]]
        )
    # the affine: dcm2niix stores rows bottom-up, so our (k, j, i) is its (i, 63 - j, k)
    np.testing.assert_array_equal(r, np.stack([ii, 63 - jj, kk], -1).reshape(-1, 3))
    for k, j, i in [(0, 0, 0), (14, 63, 63), (7, 10, 50), (3, 40, 2)]:
        ref_point = ref_img.TransformIndexToPhysicalPoint([i, 63 - j, k, 0])[:3]
        np.testing.assert_allclose(
            vol.geometry.index_to_world((k, j, i))[::-1], ref_point, atol=1e-3
        )


def test_dcmqi_ct_3slice_has_the_label_grid_geometry(tmp_path):
    root = SHARED / "dcmqi_ct3slice_seg"
    if not root.is_dir():
        pytest.skip("shared scanner data not present")
    shutil.copytree(root / "ct-3slice", tmp_path / "ct")
    (vol,) = read_dicom_folder(tmp_path / "ct")
    label = sitk.ReadImage(str(root / "liver_seg.nrrd"))
    assert tuple(reversed(vol.array.shape)) == label.GetSize()
    _assert_world_matches(vol, label, atol=1e-3)
    assert vol.meta["modality"] == "CT"


@pytest.mark.parametrize("case", ["23x38x3", "24x38x3"])
def test_real_enhanced_multiframe_equals_its_single_frame_series(case):
    root = SHARED / "dcmqi_ct3slice_seg" / case
    if not root.is_dir():
        pytest.skip("shared scanner data not present")
    (series,) = read_dicom_folder(root / "image")
    (multi,) = read_dicom_file(root / "multiframe" / "mf.dcm")  # legacy converted enhanced CT
    np.testing.assert_array_equal(multi.array, series.array)
    label = sitk.ReadImage(str(root / "nrrd" / "label.nrrd"))
    assert tuple(reversed(multi.array.shape)) == label.GetSize()
    _assert_world_matches(multi, label, atol=1e-3)


@pytest.mark.parametrize(
    "name,shape",
    [("SC_rgb_jpeg_dcmtk.dcm", (100, 100, 3)), ("examples_ybr_color.dcm", (30, 240, 320, 3))],
)
def test_colour_dicom_stays_rgb(tmp_path, name, shape):
    from pydicom.data import get_testdata_file

    path = tmp_path / name
    shutil.copy(get_testdata_file(name), path)
    (vol,) = read_dicom_file(path)
    assert vol.rgb and vol.array.shape == shape and vol.leading_axes == 0
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    np.testing.assert_array_equal(vol.array, ref.reshape(vol.array.shape))
