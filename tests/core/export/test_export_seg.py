"""DICOM SEG: dciodvfy-clean, read back through highdicom to the same labels and geometry."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from support.dicom_factory import write_ct_series

from napari_clinlabel.core.annotate.provenance import SegmentProvenance
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.seg import build_seg, seg_bytes, source_series_datasets
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.samples import _rotation
from napari_clinlabel.core.schema import load_schema

SCHEMA = load_schema("abdomen-ct")
MODEL = [{"name": "organseg", "version": "2.1"}]


def _series_geometry(folder: Path) -> tuple[Geometry, np.ndarray]:
    """Geometry and voxels as SimpleITK reads the series (the oracle for the grid)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    return Geometry.from_itk(img), sitk.GetArrayFromImage(img)


def dciodvfy_errors(path: Path) -> list[str]:
    """Lines of dciodvfy's stderr that start with 'Error' (skip when dicom3tools is absent)."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [ln for ln in r.stderr.splitlines() if ln.startswith("Error")]


def _read_back(path: Path, n_slices: int, source: list) -> tuple[np.ndarray, object]:
    """Label array (z, y, x) rebuilt from the SEG per source instance, in source order."""
    seg = hd.seg.segread(path)
    uids = [(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in source]
    pix = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[u[2] for u in uids],
        combine_segments=True,
        relabel=False,
    )
    return pix, seg


def _labels_for(shape) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[1:3, 4:10, 5:12] = 1
    lab[2:5, 12:14, 2:6] = 6
    lab[0, 0:3, 0:3] = 5
    return lab


@pytest.mark.parametrize("oblique,reverse", [(False, False), (True, True)])
def test_synthetic_series_round_trip(tmp_path, oblique, reverse):
    direction = _rotation(15.0, 10.0) if oblique else np.eye(3)
    g = Geometry((0.7, 0.9, 2.5), (-50.0, -40.0, 12.5), tuple(direction.ravel()))
    vol = np.arange(5 * 16 * 20, dtype=np.int16).reshape(5, 16, 20)
    write_ct_series(tmp_path / "ct", vol, g, reverse_instances=reverse)
    geom, voxels = _series_geometry(tmp_path / "ct")
    np.testing.assert_array_equal(voxels, vol)  # our grid is SimpleITK's grid
    labels = _labels_for(vol.shape)
    prov = {
        1: SegmentProvenance("MANUAL", [], {"ann"}),
        5: SegmentProvenance("AUTOMATIC", MODEL, {"ann"}),
        6: SegmentProvenance("SEMIAUTOMATIC", MODEL, {"ann"}),
    }
    source = source_series_datasets(tmp_path / "ct", None)
    seg = build_seg(labels, geom, source, SCHEMA, prov, "Ann Reader")
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(seg))
    assert dciodvfy_errors(out) == []
    back = hd.seg.segread(out)
    # segments: labels, codes and algorithm types from provenance
    descs = {d.SegmentLabel: d for d in back.SegmentSequence}
    assert set(descs) == {"liver", "aorta", "lesion"}
    assert descs["liver"].SegmentAlgorithmType == "MANUAL"
    assert "SegmentationAlgorithmIdentificationSequence" not in descs["liver"]
    assert descs["aorta"].SegmentAlgorithmType == "AUTOMATIC"
    ident = descs["aorta"].SegmentationAlgorithmIdentificationSequence[0]
    assert (ident.AlgorithmName, ident.AlgorithmVersion) == ("organseg", "2.1")
    assert descs["lesion"].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert descs["liver"].SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert str(back.ContentCreatorName) == "Reader^Ann"
    assert back.SegmentationType == "BINARY"
    # voxel for voxel, via highdicom's volume (geometry from the SEG's own plane positions)
    v = back.get_volume(combine_segments=True, relabel=True)
    seg_vals = {d.SegmentNumber: d.SegmentLabel for d in back.SegmentSequence}
    name_to_value = {lab.name: lab.value for lab in SCHEMA.labels}
    lut = np.zeros(len(seg_vals) + 1, np.uint8)
    for n, name in seg_vals.items():
        lut[n] = name_to_value[name]
    # highdicom Volume: array (z, y, x) with an affine in LPS; resample into our grid by index
    arr = lut[v.array]
    aff = v.affine
    ours = geom.index_to_physical_matrix()  # (i, j, k) → LPS
    full = np.zeros_like(labels)
    for kk in range(arr.shape[0]):
        world = aff @ np.array([kk, 0, 0, 1.0])  # highdicom affine maps (k, row, col)
        idx = geom.world_to_index(world[:3][::-1])
        k0 = int(round(idx[0]))
        assert np.allclose(idx, [k0, 0, 0], atol=1e-3)
        full[k0] = arr[kk]
    # in-plane axes agree: highdicom column 1 (rows) == our y direction scaled
    np.testing.assert_allclose(aff[:3, 1], ours[:3, 1], atol=1e-4)
    np.testing.assert_allclose(aff[:3, 2], ours[:3, 0], atol=1e-4)
    np.testing.assert_array_equal(full, labels)


def test_refusals(tmp_path):
    g = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    vol = np.zeros((3, 8, 8), np.int16)
    write_ct_series(tmp_path / "ct", vol, g)
    source = source_series_datasets(tmp_path / "ct", None)
    labels = np.zeros(vol.shape, np.uint8)
    with pytest.raises(ExportError, match="empty"):
        build_seg(labels, g, source, SCHEMA, {}, "Ann")
    labels[0, :2, :2] = 1
    labels[1, :2, :2] = 2
    prov = {
        1: SegmentProvenance("MANUAL", [], {"ann"}),
        2: SegmentProvenance("MANUAL", [], {"bob"}),
    }
    with pytest.raises(ExportError, match="one content creator.*--labels"):
        build_seg(labels, g, source, SCHEMA, prov, "Ann")
    with pytest.raises(ExportError, match="lacks slices"):
        build_seg(np.zeros((4, 8, 8), np.uint8) + 1, g, source, SCHEMA, {}, "Ann")
    with pytest.raises(ExportError, match="no DICOM slices"):
        source_series_datasets(tmp_path / "ct", "1.2.3.999")
    # a study folder with the series one level down is searched recursively
    assert len(source_series_datasets(tmp_path, source[0].SeriesInstanceUID)) == 3


def test_empty_segments_on_request(tmp_path):
    g = Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), g)
    source = source_series_datasets(tmp_path / "ct", None)
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[1, 2:5, 2:5] = 2
    seg = build_seg(labels, g, source, SCHEMA, {}, "Ann", include_empty=True)
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(seg))
    assert dciodvfy_errors(out) == []
    back = hd.seg.segread(out)
    assert len(back.SegmentSequence) == len(SCHEMA.labels)
    assert back.SegmentSequence[0].SegmentLabel == "spleen"
    pix = back.get_pixels_by_source_instance(
        [
            ds.SOPInstanceUID
            for ds in sorted(source, key=lambda d: float(d.ImagePositionPatient[2]))
        ],
        combine_segments=True,
    )
    np.testing.assert_array_equal(pix == 1, labels == 2)


def _series(folder: Path) -> tuple[list[str], Geometry]:
    reader = sitk.ImageSeriesReader()
    files = list(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetFileNames(files)
    return files, Geometry.from_itk(reader.Execute())


def _per_instance(path: Path, files: list[str], **kw) -> np.ndarray:
    """SEG pixels per source slice, in SimpleITK's slice order (z, y, x), combined to label values."""
    seg = hd.seg.segread(path)
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files]
    return seg.get_pixels_by_source_instance(uids, **kw)


def test_pydicom_ct_series_round_trip(tmp_path):
    from pydicom.data import get_testdata_file

    one = get_testdata_file("dicomdirtests/98892001/CT5N/2062")
    if one is None:
        pytest.skip("pydicom's dicomdirtests CT series is not available")
    folder = Path(one).parent
    files, geom = _series(folder)
    labels = np.zeros((5, 16, 16), np.uint8)
    labels[0:4, 3:9, 4:12] = 1
    labels[2:5, 10:14, 2:6] = 2
    source = source_series_datasets(folder, None)
    prov = {1: SegmentProvenance("AUTOMATIC", MODEL, {"ann"})}
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(build_seg(labels, geom, source, SCHEMA, prov, "Ann")))
    assert dciodvfy_errors(out) == []
    pix = _per_instance(out, files, combine_segments=True, relabel=True)
    # segment numbers 1, 2 are label values 1 (liver), 2 (spleen) here
    np.testing.assert_array_equal(pix, labels)


@pytest.mark.parametrize(
    "nrrd", ["liver_seg.nrrd", "liver_spine_seg.nrrd", "partial_overlaps-1.nrrd"]
)
def test_dcmqi_real_ct_round_trip(tmp_path, shared_data, nrrd):
    root = shared_data / "dcmqi_ct3slice_seg"
    files, geom = _series(root / "ct-3slice")
    img = sitk.ReadImage(str(root / nrrd))
    labels = sitk.GetArrayFromImage(img).astype(np.uint8)
    assert Geometry.from_itk(img).close_to(geom, atol_mm=1e-3)  # the NRRD is on the CT grid
    source = source_series_datasets(root / "ct-3slice", None)
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(build_seg(labels, geom, source, None, {}, "Ann Reader")))
    assert dciodvfy_errors(out) == []
    back = hd.seg.segread(out)
    values = [int(d.SegmentLabel.split()[-1]) for d in back.SegmentSequence]
    assert values == sorted(int(v) for v in np.unique(labels) if v)
    for n, v in enumerate(values, start=1):
        mask = _per_instance(out, files, segment_numbers=[n], combine_segments=True)
        np.testing.assert_array_equal(mask.astype(bool), labels == v)


def test_dcmqi_partial_overlaps_second_oracle(tmp_path, shared_data):
    """dcmqi's SEG of the same label maps and ours give the same mask for every label."""
    root = shared_data / "dcmqi_ct3slice_seg"
    files, geom = _series(root / "ct-3slice")
    source = source_series_datasets(root / "ct-3slice", None)
    dcmqi = root / "partial_overlaps.dcm"
    for k in (1, 2, 3):
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(root / f"partial_overlaps-{k}.nrrd")))
        labels = labels.astype(np.uint8)
        out = tmp_path / f"ours-{k}.dcm"
        out.write_bytes(seg_bytes(build_seg(labels, geom, source, None, {}, "Ann")))
        ours = hd.seg.segread(out)
        for n, d in enumerate(ours.SegmentSequence, start=1):
            value = int(d.SegmentLabel.split()[-1])
            mine = _per_instance(out, files, segment_numbers=[n], combine_segments=True)
            theirs = _per_instance(
                dcmqi, files, segment_numbers=[value], combine_segments=True,
                ignore_spatial_locations=True,
            )  # fmt: skip
            assert mine.any()
            np.testing.assert_array_equal(mine.astype(bool), theirs.astype(bool))


def test_dicom_seg_of_a_mammogram_is_one_frame_on_the_projection_image(tmp_path, monkeypatch):
    """A mammogram has no slice position: its SEG is one frame referencing the MG instance
    (highdicom reads it back voxel for voxel; dciodvfy finds no error). It used to be refused
    with a message saying the source was missing while it lay beside the log."""
    from napari_clinlabel import api

    monkeypatch.setenv("CLINLABEL_USER", "rita")
    path = api.write_sample("mammogram", tmp_path)
    mask = np.zeros((1400, 1000), bool)
    mask[100:140, 200:260] = True
    with api.open_image(path) as image:
        assert image.shape == mask.shape
        image.paint(mask, 1)
        res = image.export("dicom-seg", tmp_path / "mg_seg.dcm")
    out = res.outputs[0].path
    assert dciodvfy_errors(out) == []
    seg = hd.seg.segread(out)
    src = pydicom.dcmread(path)
    px = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[src.SOPInstanceUID], combine_segments=True
    )
    np.testing.assert_array_equal(px[0] > 0, mask)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
