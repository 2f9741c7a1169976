"""Gantry-tilted CT opens sheared, every voxel kept; uneven spacing opens as even blocks; a
DICOMDIR folder skips a broken stray file with a warning.

Oracles: pydicom's own ImagePositionPatient/ImageOrientationPatient/PixelSpacing of every slice
(the physical centre of each voxel by the DICOM standard, PS3.3 C.7.6.2.1.1), dcm2niix's
tilt-corrected conversion of the real Philips series (read by SimpleITK), napari's own
``data_to_world``, highdicom's SEG reader, pydicom's FileSet (DICOMDIR) and the synthetic
writer's known inputs.
"""

from __future__ import annotations

import napari
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import phantom_stored, write_enhanced_ct, write_series

from napari_clinlabel.cli import main as cli_main
from napari_clinlabel.core.errors import ClinlabelError, ClinlabelWarning, GeometryError
from napari_clinlabel.core.export.labelmap import write_labels
from napari_clinlabel.core.export.seg import order_by_grid
from napari_clinlabel.core.image.dicom.volume import read_dicom_folder
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.glue.layers import volume_from_layer, volume_to_layer_data

TILT = "philips_ct_gantry_tilt"


def _voxel_centres(ds: pydicom.Dataset, jj: np.ndarray, ii: np.ndarray) -> np.ndarray:
    """LPS centres of pixels (row jj, column ii) of one slice, by the DICOM standard."""
    ipp = np.array(ds.ImagePositionPatient, float)
    iop = np.array(ds.ImageOrientationPatient, float)
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    return ipp + np.outer(ii * col_mm, iop[:3]) + np.outer(jj * row_mm, iop[3:])


_CACHE: dict = {}


@pytest.fixture
def tilted(shared_data):
    if "v" in _CACHE:  # read the real series once per test session
        return _CACHE["v"]
    shared = shared_data
    folder = shared / TILT / "series_201"
    (vol,) = read_dicom_folder(folder)
    by_uid = {}
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        by_uid[ds.SOPInstanceUID] = ds
    _CACHE["v"] = (vol, by_uid, shared)
    return _CACHE["v"]


def test_real_tilted_ct_places_every_voxel_where_its_slice_says(tilted):
    vol, by_uid, _ = tilted
    g = vol.geometry
    assert vol.array.shape == (54, 512, 512)  # every original slice kept, nothing resampled
    assert g.sheared and g.shear_angle_deg == pytest.approx(18.5, abs=0.01)
    assert vol.meta["gantry_tilt_deg"] == pytest.approx(-18.5)
    layer = napari.layers.Image(
        vol.array,
        **{k: v for k, v in volume_to_layer_data(vol)[1].items() if k in ("affine", "metadata")},
    )
    rng = np.random.default_rng(0)
    worst = 0.0
    for k, uid in enumerate(vol.meta["sop_instance_uids"]):
        ds = by_uid[uid]
        jj = np.r_[0, 511, 0, 511, rng.integers(0, 512, 6)]
        ii = np.r_[0, 0, 511, 511, rng.integers(0, 512, 6)]
        expected = _voxel_centres(ds, jj, ii)
        # values: the slice at k is this file's pixels, rescaled
        raw = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(vol.array[k], raw)
        for n in range(len(jj)):
            world = np.asarray(layer.data_to_world((k, jj[n], ii[n])), float)
            got = g.index_to_world((k, jj[n], ii[n]))
            np.testing.assert_allclose(world[::-1], expected[n], atol=1e-4)
            np.testing.assert_allclose(got[::-1], expected[n], atol=1e-4)
            worst = max(worst, float(np.abs(world[::-1] - expected[n]).max()))
    assert worst < 1e-4
    print(f"max |data_to_world - DICOM voxel centre| = {worst:.2e} mm")


def test_real_tilted_ct_values_match_dcm2niix_tilt_corrected_at_physical_points(tilted):
    vol, _, shared = tilted
    ref = sitk.ReadImage(str(shared / TILT / "ref" / "1F_STEREOTAXIS_Head_201_Tilt_1.nii.gz"))
    ref_a = sitk.GetArrayFromImage(ref).astype(float)  # SimpleITK gives LPS from the RAS file
    rng = np.random.default_rng(2)
    n = 3000
    kji = np.stack([rng.integers(6, 48, n), rng.integers(80, 430, n), rng.integers(80, 430, n)], 1)

    def sample(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        ours, theirs = [], []
        for idx, w in zip(kji, geometry.index_to_world(kji), strict=True):
            ci = np.round(ref.TransformPhysicalPointToContinuousIndex(tuple(w[::-1]))).astype(int)
            if all(0 <= ci[a] < ref.GetSize()[a] for a in range(3)):
                ours.append(float(vol.array[tuple(idx)]))
                theirs.append(ref_a[ci[2], ci[1], ci[0]])
        return np.array(ours), np.array(theirs)

    ours, theirs = sample(vol.geometry)
    assert len(ours) > 0.9 * n
    r_sheared = np.corrcoef(ours, theirs)[0, 1]
    assert r_sheared > 0.995
    assert np.median(np.abs(ours - theirs)) <= 2.0  # HU; resampled reference: interior only
    # negative control: the same voxels stacked orthogonally (the shear dropped) disagree
    plain = Geometry(vol.geometry.spacing, vol.geometry.origin, vol.geometry.direction)
    ours_p, theirs_p = sample(plain)
    assert np.corrcoef(ours_p, theirs_p)[0, 1] < r_sheared - 0.05


def test_info_reports_the_tilt(tilted, capsys):
    _, _, shared = tilted
    assert cli_main(["info", str(shared / TILT / "series_201")]) == 0
    out = capsys.readouterr().out
    assert "sheared 18.50°" in out and "GantryDetectorTilt -18.5°" in out


@pytest.mark.parametrize("tilt_deg", [15.0, -22.0])
def test_synthetic_tilted_series_has_known_sheared_geometry(tmp_path, tilt_deg):
    t = np.radians(tilt_deg)
    stack = np.array([0.0, -np.sin(t), np.cos(t)])  # unit step direction, sheared along y
    origin = np.array([-120.0, -110.0, -50.0])
    spacing = (0.7, 0.6, 2.0)
    ws = write_series(
        tmp_path,
        phantom_stored((7, 10, 12)),
        spacing=spacing,
        origin=tuple(origin),
        stack_vector=tuple(stack),
        gantry_tilt_deg=tilt_deg,
    )
    (vol,) = read_dicom_folder(tmp_path)
    np.testing.assert_array_equal(vol.array, ws.array)
    g = vol.geometry
    assert g.shear_angle_deg == pytest.approx(abs(tilt_deg), abs=1e-3)
    for k in range(7):
        for j, i in [(0, 0), (9, 11), (4, 7)]:
            truth = (
                origin
                + k * 2.0 * stack
                + i * spacing[0] * np.r_[1, 0, 0]
                + j * spacing[1] * np.r_[0, 1, 0]
            )
            np.testing.assert_allclose(g.index_to_world((k, j, i))[::-1], truth, atol=1e-4)
    # round trip through the layer and back
    data, kwargs, _ = volume_to_layer_data(vol)
    layer = napari.layers.Image(data, affine=kwargs["affine"], metadata=kwargs["metadata"])
    again = volume_from_layer(layer).geometry
    assert again == g and again.sheared
    np.testing.assert_allclose(
        np.asarray(layer.data_to_world((6, 9, 11)))[::-1],
        origin + 12.0 * stack + 11 * 0.7 * np.r_[1, 0, 0] + 9 * 0.6 * np.r_[0, 1, 0],
        atol=1e-4,
    )


def test_labels_on_a_tilted_series_map_to_the_original_frames_nifti_nrrd_keep_the_shear(tmp_path):
    import nibabel as nib  # oracles for the written files
    import nrrd

    t = np.radians(12.0)
    stack = (0.0, -np.sin(t), np.cos(t))
    src = tmp_path / "ct"
    write_series(src, phantom_stored((5, 8, 8)), stack_vector=stack, gantry_tilt_deg=12.0)
    (vol,) = read_dicom_folder(src)
    datasets = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(src.iterdir())]
    ordered = order_by_grid(datasets, vol.geometry, vol.array.shape)
    # SEG's frame k references the very slice the viewer shows at k
    assert [ds.SOPInstanceUID for ds in ordered] == vol.meta["sop_instance_uids"]
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[2, 3:5, 3:5] = 1
    labels[4, 7, 6] = 2
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    kk, jj, ii = np.nonzero(labels)
    # the DICOM standard's voxel centres (PS3.3 C.7.6.2.1.1) of the labelled voxels, LPS
    truth = np.array(
        [_voxel_centres(by_uid[vol.meta["sop_instance_uids"][k]], np.r_[j], np.r_[i])[0]
         for k, j, i in zip(kk, jj, ii, strict=True)]
    )  # fmt: skip
    write_labels(labels, vol.geometry, tmp_path / "labels.nii.gz")
    img = nib.load(tmp_path / "labels.nii.gz")
    assert int(img.header["sform_code"]) == 1 and int(img.header["qform_code"]) == 0
    assert int(img.header["intent_code"]) == 1002
    data = np.asarray(img.dataobj)  # (i, j, k)
    np.testing.assert_array_equal(data.transpose(2, 1, 0), labels)
    ras = nib.affines.apply_affine(img.affine, np.stack([ii, jj, kk], 1))
    np.testing.assert_allclose(ras * [-1, -1, 1], truth, atol=1e-4)  # RAS -> LPS
    write_labels(labels, vol.geometry, tmp_path / "labels.nrrd")
    arr, hdr = nrrd.read(str(tmp_path / "labels.nrrd"))  # pynrrd: (i, j, k) too
    assert hdr["space"] == "left-posterior-superior"
    np.testing.assert_array_equal(arr.transpose(2, 1, 0), labels)
    lps = np.stack([ii, jj, kk], 1) @ np.asarray(hdr["space directions"]) + hdr["space origin"]
    np.testing.assert_allclose(lps, truth, atol=1e-4)
    # SimpleITK reads the NRRD's non-orthogonal directions as they are
    itk = sitk.ReadImage(str(tmp_path / "labels.nrrd"))
    for n in range(len(kk)):
        p = itk.TransformIndexToPhysicalPoint((int(ii[n]), int(jj[n]), int(kk[n])))
        np.testing.assert_allclose(p, truth[n], atol=1e-4)
    with pytest.raises(ClinlabelError) as exc:
        write_labels(labels, vol.geometry, tmp_path / "labels.mha")
    msg = str(exc.value)
    assert "sheared" in msg and "NIfTI" in msg and "\n" not in msg
    assert not (tmp_path / "labels.mha").exists()


def test_real_tilted_ct_labels_to_nifti_sit_on_the_dicom_voxel_centres(tilted, tmp_path):
    import nibabel as nib  # oracle: reads the sform back

    vol, by_uid, _ = tilted
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[0, 0, 0] = labels[53, 511, 511] = labels[20, 100, 400] = labels[35, 300, 50] = 1
    out = write_labels(labels, vol.geometry, tmp_path / "tilt.nii.gz")
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), labels)
    worst = 0.0
    for k, j, i in zip(*np.nonzero(labels), strict=True):
        ds = by_uid[vol.meta["sop_instance_uids"][k]]
        expected = _voxel_centres(ds, np.r_[j], np.r_[i])[0]
        got = nib.affines.apply_affine(img.affine, [i, j, k]) * [-1, -1, 1]
        worst = max(worst, float(np.abs(got - expected).max()))
    assert worst < 1e-3  # NIfTI-1 stores the sform in float32: ~1e-5 mm here
    # the per-slice origin the affine gives is each file's ImagePositionPatient
    for k, uid in enumerate(vol.meta["sop_instance_uids"]):
        ipp = np.array(by_uid[uid].ImagePositionPatient, float)
        np.testing.assert_allclose(
            nib.affines.apply_affine(img.affine, [0, 0, k]) * [-1, -1, 1], ipp, atol=1e-3
        )
    print(f"max |NIfTI sform centre - DICOM voxel centre| = {worst:.2e} mm")


def test_a_stack_that_is_not_a_straight_line_is_refused(tmp_path):
    ws = write_series(tmp_path, phantom_stored((5, 8, 8)))
    shifted = pydicom.dcmread(ws.files[0])
    ipp = [float(v) for v in shifted.ImagePositionPatient]
    shifted.ImagePositionPatient = [f"{ipp[0] + 1.5:.4f}", f"{ipp[1]:.4f}", f"{ipp[2]:.4f}"]
    shifted.save_as(ws.files[0])
    with pytest.raises(GeometryError):
        read_dicom_folder(tmp_path)


def test_geometry_without_shear_is_unchanged():
    g = Geometry((0.5, 0.5, 2.0), (1.0, 2.0, 3.0), tuple(np.eye(3).ravel()))
    assert not g.sheared and g.shear_angle_deg == 0.0
    assert "slice_step" not in g.to_dict() and Geometry.from_dict(g.to_dict()) == g
    s = Geometry(g.spacing, g.origin, g.direction, (0.0, 0.5, 2.0))
    assert s.sheared and Geometry.from_dict(s.to_dict()) == s
    assert s.voxel_volume_mm3 == pytest.approx(0.5 * 0.5 * 2.0)  # a shear keeps the volume
    assert not s.close_to(g)
    with pytest.raises(GeometryError, match="NIfTI or NRRD"):
        s.apply_to_itk(sitk.Image([2, 2, 2], sitk.sitkUInt8))


def test_uneven_spacing_opens_as_even_blocks_named_by_slice_range(tmp_path):
    offsets = [0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0]  # 2 mm then 1 mm slices
    ws = write_series(tmp_path, phantom_stored((7, 8, 10)), offsets_mm=offsets, description="Run")
    vols = read_dicom_folder(tmp_path)
    assert [v.meta["slice_block"] for v in vols] == [[1, 4, 7], [5, 7, 7]]
    assert [v.meta["series_description"] for v in vols] == [
        "Run [slices 1-4 of 7]",
        "Run [slices 5-7 of 7]",
    ]
    first = np.array(ws.geometry.origin)
    normal = np.array(ws.geometry.direction_matrix()[:, 2])
    start = 0
    for v in vols:
        nz = v.array.shape[0]
        np.testing.assert_array_equal(v.array, ws.array[start : start + nz])
        for k in range(nz):
            truth = first + offsets[start + k] * normal
            np.testing.assert_allclose(v.geometry.index_to_world((k, 0, 0))[::-1], truth, atol=1e-4)
        start += nz
    assert start == 7 and all(not v.geometry.sheared for v in vols)


def test_missing_slice_is_still_refused(tmp_path):
    write_series(tmp_path, phantom_stored((5, 8, 8)), offsets_mm=[0, 2, 4, 8, 10])
    with pytest.raises(GeometryError, match="missing slice"):
        read_dicom_folder(tmp_path)


def test_labels_on_the_real_tilted_ct_go_to_seg_on_the_original_frames(tilted, tmp_path):
    import highdicom as hd  # lazy like the exporter: only this test needs it

    from napari_clinlabel.core.export.seg import build_seg, seg_bytes, source_series_datasets

    vol, by_uid, shared = tilted
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[10, 200:260, 180:300] = 1
    labels[40, 100:120, 300:340] = 1
    source = source_series_datasets(shared / TILT / "series_201", None)
    seg = build_seg(labels, vol.geometry, source, None, {}, "Ann Reader")
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(seg))
    back = hd.seg.segread(out)  # highdicom reads it back: the oracle for the SEG side
    uids = vol.meta["sop_instance_uids"]
    frames = back.pixel_array if back.pixel_array.ndim == 3 else back.pixel_array[None]
    seen = set()
    for n, fg in enumerate(back.PerFrameFunctionalGroupsSequence):
        ref_uid = fg.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = uids.index(ref_uid)
        seen.add(k)
        src_ipp = [float(v) for v in by_uid[ref_uid].ImagePositionPatient]
        np.testing.assert_allclose(
            [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient], src_ipp, atol=1e-4
        )
        np.testing.assert_array_equal(frames[n] > 0, labels[k] > 0)
    assert seen == {10, 40}


def _dicomdir_set(tmp_path):
    """A file set written by pydicom's FileSet (the DICOMDIR oracle) from a synthetic series."""
    from pydicom.fileset import FileSet

    ws = write_series(tmp_path / "src", phantom_stored((4, 8, 8)))
    fs = FileSet()
    for f in ws.files:
        ds = pydicom.dcmread(f)
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20200101", "120000", "1"  # FileSet needs them
        fs.add(ds)
    fs.write(tmp_path / "set")
    return ws, tmp_path / "set"


def test_dicomdir_folder_skips_a_broken_stray_file_with_a_warning(tmp_path):
    ws, root = _dicomdir_set(tmp_path)
    stray = root / "PT000000" / "junk.dcm"
    stray.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff" + b"\x01" * 40)
    empty = root / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.warns(Warning) as record:
        (vol,) = read_dicom_folder(root)
    np.testing.assert_array_equal(vol.array, ws.array)
    texts = [str(w.message) for w in record if isinstance(w.message, ClinlabelWarning)]
    assert any("junk.dcm" in t for t in texts) and any("empty.dcm" in t for t in texts)


def test_dicomdir_member_that_is_broken_is_still_refused(tmp_path):
    _, root = _dicomdir_set(tmp_path)
    member = next((root / "PT000000" / "ST000000" / "SE000000").iterdir())
    member.write_bytes(b"")
    with pytest.raises(ClinlabelError, match=member.name):
        read_dicom_folder(root)


def test_tilted_enhanced_ct_keeps_its_per_frame_shear(tmp_path):
    path = tmp_path / "enh.dcm"
    ws = write_enhanced_ct(path, phantom_stored((5, 8, 10)))
    ds = pydicom.dcmread(path)
    normal = np.array(ws.geometry.direction_matrix()[:, 2])
    col = np.array(ws.geometry.direction_matrix()[:, 1])
    first = np.array(ws.geometry.origin)
    truth = {}
    for fg in ds.PerFrameFunctionalGroupsSequence:
        ipp = np.array(fg.PlanePositionSequence[0].ImagePositionPatient, float)
        k = int(round(float((ipp - first) @ normal) / ws.geometry.spacing[2]))
        moved = ipp + k * 0.5 * col  # shear: each frame 0.5 mm further along the columns
        fg.PlanePositionSequence[0].ImagePositionPatient = [f"{v:.6f}" for v in moved]
        truth[k] = moved
    ds.save_as(path)
    (vol,) = read_dicom_folder(tmp_path)
    np.testing.assert_array_equal(vol.array, ws.array)
    assert vol.geometry.sheared
    for k, moved in truth.items():
        np.testing.assert_allclose(vol.geometry.index_to_world((k, 0, 0))[::-1], moved, atol=1e-4)


def test_tilted_labels_round_trip_through_the_logged_export_to_nifti_and_nrrd(tmp_path):
    import nibabel as nib  # oracle: reads the exported sform back
    import nrrd

    from napari_clinlabel import api

    t = np.radians(-18.5)
    src = tmp_path / "ct"
    ws = write_series(src, phantom_stored((6, 10, 12)), stack_vector=(0.0, -np.sin(t), np.cos(t)),
                      gantry_tilt_deg=-18.5)  # fmt: skip
    by_uid = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, ws.files)}
    ana = api.Actor("ana", "Ana Ruiz", "annotator")
    with api.open_image(src, ana) as image:
        mask = np.zeros(image.shape, bool)
        mask[1, 2:4, 3:6] = mask[5, 8, 11] = True
        image.paint(mask, 1)
        image.export("nifti", tmp_path / "out.nii.gz")
        image.export("nrrd", tmp_path / "out.nrrd")
        with pytest.raises(ClinlabelError, match="sheared"):
            image.export("mha", tmp_path / "out.mha")
        uids = image.volume.meta["sop_instance_uids"]
    img = nib.load(tmp_path / "out.nii.gz")
    arr, hdr = nrrd.read(str(tmp_path / "out.nrrd"))
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), mask)
    np.testing.assert_array_equal(arr.transpose(2, 1, 0), mask)
    for k, j, i in zip(*np.nonzero(mask), strict=True):
        truth = _voxel_centres(by_uid[uids[k]], np.r_[j], np.r_[i])[0]
        ras = nib.affines.apply_affine(img.affine, [i, j, k])
        np.testing.assert_allclose(ras * [-1, -1, 1], truth, atol=1e-4)
        lps = np.array([i, j, k]) @ np.asarray(hdr["space directions"]) + hdr["space origin"]
        np.testing.assert_allclose(lps, truth, atol=1e-4)
    assert not (tmp_path / "out.mha").exists()


def test_from_itk_takes_only_a_real_lean_for_a_shear():
    img = sitk.Image([3, 3, 3], sitk.sitkUInt8)
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))  # left-handed: orthonormal, not sheared
    assert Geometry.from_itk(img).slice_step is None
    img.SetDirection((1, 0, 0, 0, 1, 0, 0, 3e-7, 1))  # rounding noise in a written file
    assert Geometry.from_itk(img).slice_step is None
    t = np.radians(10.0)  # a real 10° lean of the third axis
    img.SetDirection((1, 0, 0, 0, 1, -np.sin(t), 0, 0, np.cos(t)))
    img.SetSpacing((0.5, 0.5, 2.0))
    g = Geometry.from_itk(img)
    assert g.sheared and g.shear_angle_deg == pytest.approx(10.0)
    for idx in [(0, 0, 0), (2, 1, 2), (1, 2, 0)]:  # SimpleITK places every voxel the same
        np.testing.assert_allclose(
            g.index_to_world(idx[::-1])[::-1], img.TransformIndexToPhysicalPoint(idx), atol=1e-9
        )
