"""Images whose pixel size is unknown (PNG, JPEG, TIFF without resolution tags) open on a unit
grid marked ``spacing_known`` False, and nothing that is really pixels is called mm: box records
and box exports carry ``size_px`` with ``size_mm`` null; medical formats keep their mm."""

from __future__ import annotations

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from skimage import io as skio
from support.dicom_factory import write_ct_series, write_secondary_capture

from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    add_box,
    box_size_mm,
    box_volume_ml,
    with_slices,
)
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.tables import boxes_csv, tables_json
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.image.samples import write_slide_tiff
from napari_clinlabel.core.image.slide import open_slide
from napari_clinlabel.core.image.volume import PixelGeometry, Volume, spacing_known
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.glue.layers import clinlabel_metadata, volume_from_layer, volume_to_layer_data

ANN = Actor("ann", "Ann Reader", "annotator")
GREY = (np.arange(60 * 80).reshape(60, 80) % 251).astype(np.uint8)
RGB = np.stack([GREY, GREY[::-1], 255 - GREY], axis=-1)


def _sitk_with_spacing(array, spacing, rgb=False):
    img = sitk.GetImageFromArray(array, isVector=rgb)
    img.SetSpacing(spacing)
    return img


def _unknown(vol: Volume) -> None:
    assert vol.spacing_known is False and vol.meta["spacing_known"] is False
    assert isinstance(vol.geometry, PixelGeometry) and not spacing_known(vol.geometry)
    assert vol.geometry.spacing == (1.0,) * vol.geometry.ndim  # unit grid for napari


# ---------------------------------------------------------------- opening


def test_png_written_by_scikit_image_is_unknown(tmp_path):
    path = tmp_path / "fundus.png"
    skio.imsave(path, RGB, check_contrast=False)
    (vol,) = read_volumes(path)
    _unknown(vol)
    assert vol.rgb and vol.array.shape == (60, 80, 3)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_png_jpeg_with_a_dpi_are_unknown(tmp_path, suffix):
    """SimpleITK writes its spacing as the PNG/JPEG density and reads it back: that is a print
    resolution, not the detector's; the image still opens in pixels."""
    path = tmp_path / f"photo{suffix}"
    sitk.WriteImage(_sitk_with_spacing(GREY, (0.015, 0.015)), str(path))
    assert sitk.ReadImage(str(path)).GetSpacing() == pytest.approx((0.015, 0.015), rel=1e-3)
    (vol,) = read_volumes(path)
    _unknown(vol)
    if suffix == ".png":
        np.testing.assert_array_equal(vol.array, GREY)


def test_jpeg_written_by_scikit_image_is_unknown(tmp_path):
    path = tmp_path / "derm.jpg"
    skio.imsave(path, RGB, check_contrast=False)
    (vol,) = read_volumes(path)
    _unknown(vol)


def test_tiff_without_resolution_tags_is_unknown_with_them_known(tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, GREY)  # resolution unit NONE
    _unknown(read_volumes(plain)[0])
    in_cm = tmp_path / "cm.tif"
    tifffile.imwrite(in_cm, GREY, resolution=(40, 40), resolutionunit="CENTIMETER")
    (vol,) = read_volumes(in_cm)
    assert vol.spacing_known and type(vol.geometry) is Geometry
    assert vol.geometry.spacing == pytest.approx((0.25, 0.25))


def test_slide_states_its_pixel_size_or_not(tmp_path):
    known = open_slide(write_slide_tiff(tmp_path / "s.tif", shape=(600, 800), levels=2))
    assert known.spacing_known and known.meta["spacing_known"] is True
    assert known.geometry.spacing == pytest.approx((0.00025, 0.00025))
    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, RGB, tile=(32, 32), photometric="rgb")
    _unknown(open_slide(bare))


def test_medical_formats_are_known(tmp_path):
    spacing = (0.7, 0.8, 2.5)
    arr = (np.arange(4 * 10 * 12).reshape(4, 10, 12) % 300).astype(np.int16)
    for name in ("ct.nii.gz", "ct.nrrd", "ct.mha"):
        sitk.WriteImage(_sitk_with_spacing(arr, spacing), str(tmp_path / name))
        (vol,) = read_volumes(tmp_path / name)
        assert vol.spacing_known and vol.meta["spacing_known"] is True, name
        assert vol.geometry.spacing == pytest.approx(spacing)
    write_ct_series(
        tmp_path / "dcm", arr, Geometry(spacing, (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    )
    (dcm,) = read_volumes(tmp_path / "dcm")
    assert dcm.spacing_known and dcm.geometry.spacing == pytest.approx(spacing)


def test_samples_that_state_a_spacing_are_known():
    from napari_clinlabel.core.image.samples import fundus_phantom, mammogram_phantom

    for vol in (fundus_phantom(), mammogram_phantom()):
        assert vol.spacing_known


# ---------------------------------------------------------------- layer metadata round trip


def test_flag_travels_through_layer_metadata(tmp_path):
    path = tmp_path / "photo.png"
    skio.imsave(path, GREY, check_contrast=False)
    (vol,) = read_volumes(path)
    data, kwargs, _ = volume_to_layer_data(vol)
    meta = kwargs["metadata"]["clinlabel"]
    assert meta["spacing_known"] is False and meta["geometry"]["spacing"] == [1.0, 1.0]
    layer = SimpleNamespace(data=data, metadata=kwargs["metadata"], multiscale=False, name="p")
    back = volume_from_layer(layer)
    _unknown(back)
    assert back.geometry == vol.geometry and back.sha256 == vol.sha256
    # labels drawn on it get the same metadata, so the flag follows them too
    labels = SimpleNamespace(
        data=np.zeros((60, 80), np.uint8), metadata=clinlabel_metadata(back), multiscale=False
    )
    _unknown(volume_from_layer(labels))
    # a known image says so explicitly
    nrrd = tmp_path / "a.nrrd"
    sitk.WriteImage(_sitk_with_spacing(GREY, (0.1, 0.1)), str(nrrd))
    _, kw, _ = volume_to_layer_data(read_volumes(nrrd)[0])
    assert kw["metadata"]["clinlabel"]["spacing_known"] is True


# ---------------------------------------------------------------- boxes: records and exports


def _png_with_box(tmp_path):
    path = tmp_path / "fundus.png"
    skio.imsave(path, RGB, check_contrast=False)
    (vol,) = read_volumes(path)
    log = AuditLog.for_image(path, vol.image_ref(), ANN, None)
    rec = add_box(log, LesionBox((10, 20), (40, 60), "benign", 3, {}, "p1"), vol)
    return path, vol, rec


def _nrrd_with_box(tmp_path):
    path = tmp_path / "mammo.nrrd"
    sitk.WriteImage(_sitk_with_spacing(GREY, (0.1, 0.1)), str(path))
    (vol,) = read_volumes(path)
    log = AuditLog.for_image(path, vol.image_ref(), ANN, None)
    rec = add_box(log, LesionBox((10, 20), (40, 60), "malignant", 4, {}, "m1"), vol)
    return path, vol, rec


def test_box_record_on_png_is_in_pixels(tmp_path):
    _, vol, rec = _png_with_box(tmp_path)
    d = rec["data"]
    assert d["spacing_known"] is False and d["size_px"] == [30.0, 40.0]
    assert d["size_mm"] is None and d["volume_ml"] is None and d["world_corners_mm"] is None
    box = LesionBox((10, 20), (40, 60))
    with pytest.raises(ClinlabelError, match="no physical pixel size"):
        box_size_mm(box, vol.geometry)
    assert box_volume_ml(box, vol.geometry) is None


def test_box_record_on_nrrd_is_in_mm(tmp_path):
    _, _, rec = _nrrd_with_box(tmp_path)
    d = rec["data"]
    assert d["spacing_known"] is True and d["size_px"] == [30.0, 40.0]
    assert d["size_mm"] == pytest.approx([3.0, 4.0]) and len(d["world_corners_mm"]) == 4


def test_box_exports_on_png_are_in_pixels(tmp_path):
    path, vol, _ = _png_with_box(tmp_path)
    doc = json.loads(
        export(path, "json", tmp_path / "t.json", actor=ANN).outputs[0].path.read_text()
    )
    (b,) = doc["boxes"]
    assert b["spacing_known"] is False and b["size_px"] == [30.0, 40.0]
    assert b["size_mm"] is None and b["volume_ml"] is None
    assert b["world_min_zyx_mm"] is None and b["world_corners_mm"] is None
    assert b["voxel_min_zyx"] == [10.0, 20.0]

    out = export(path, "csv", tmp_path / "t.csv", actor=ANN).outputs[0].path
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert row["spacing_known"] == "false"
    assert [row[f"size_{a}_px"] for a in "zyx"] == ["0.0", "30.0", "40.0"]
    assert all(row[k] == "" for k in row if k.endswith("_mm")) and row["volume_ml"] == ""

    coco = json.loads(
        export(path, "coco", tmp_path / "c.json", actor=ANN).outputs[0].path.read_text()
    )
    (ann,) = coco["annotations"]
    assert ann["bbox"] == [20.0, 10.0, 40.0, 30.0] and ann["area"] == 1200.0  # pixels, as COCO is
    assert "mm" not in json.dumps(coco)


def test_box_exports_on_nrrd_are_in_mm(tmp_path):
    path, _, _ = _nrrd_with_box(tmp_path)
    doc = json.loads(
        export(path, "json", tmp_path / "t.json", actor=ANN).outputs[0].path.read_text()
    )
    (b,) = doc["boxes"]
    assert b["spacing_known"] is True and b["size_mm"] == pytest.approx([3.0, 4.0])
    assert b["size_px"] == [30.0, 40.0] and b["world_min_zyx_mm"] is not None
    out = export(path, "csv", tmp_path / "t.csv", actor=ANN).outputs[0].path
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert row["spacing_known"] == "true" and float(row["size_x_mm"]) == pytest.approx(4.0)
    assert float(row["size_x_px"]) == 40.0


def test_3d_box_on_unknown_spacing_volume_counts_voxels():
    vol = Volume(np.zeros((6, 20, 30), np.uint8), Geometry.identity(3), {"spacing_known": False})
    _unknown(vol)
    box = with_slices(LesionBox((2, 3, 4), (2, 8, 10), id="v1"), 1, 4)
    doc = json.loads(tables_json([box], [], vol.geometry, {}))
    (b,) = doc["boxes"]
    assert b["size_px"] == [4.0, 5.0, 6.0] and b["size_mm"] is None and b["volume_ml"] is None
    (row,) = csv.DictReader(io.StringIO(boxes_csv([box], vol.geometry).decode()))
    assert row["size_z_px"] == "4.0" and row["size_z_mm"] == "" and row["spacing_known"] == "false"


@pytest.mark.parametrize(
    "tag, known",
    [(None, False), ("PixelSpacing", True), ("ImagerPixelSpacing", True),
     ("NominalScannedPixelSpacing", True)],
)  # fmt: skip
def test_a_single_dicom_without_a_pixel_size_is_in_pixels(tmp_path, tag, known, capsys):
    from napari_clinlabel.cli import main

    path = write_secondary_capture(tmp_path / "sc.dcm", tag)
    [vol] = read_volumes(path)
    assert vol.spacing_known is known
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["volumes"][0]["spacing_known"] is known
    assert main(["info", str(path)]) == 0
    assert ("px (the file states no pixel size)" in capsys.readouterr().out) is not known


@pytest.mark.parametrize(
    "tag, factor, expected",
    [("ImagerPixelSpacing", 1.25, 0.2), ("ImagerPixelSpacing", None, 0.25),
     ("PixelSpacing", 1.25, 0.25), ("NominalScannedPixelSpacing", None, 0.25)],
)  # fmt: skip
def test_projection_sizes_are_at_the_patient_not_the_detector(tmp_path, tag, factor, expected):
    """Mammography: ImagerPixelSpacing is measured at the detector; with an estimated
    magnification factor the size at the breast is the imager's divided by it (PS3.3 10.7.1.1).
    A PixelSpacing the file states itself is taken as it is."""
    import pydicom

    path = write_secondary_capture(tmp_path / "mg.dcm", tag)
    if factor is not None:
        ds = pydicom.dcmread(path)
        ds.EstimatedRadiographicMagnificationFactor = factor
        ds.save_as(path, enforce_file_format=True)
    (vol,) = read_volumes(path)
    assert vol.spacing_known and vol.geometry.spacing == pytest.approx((expected, expected))
    source = "ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor" if factor else tag
    assert vol.meta["pixel_spacing_source"] == (source if tag == "ImagerPixelSpacing" else tag)
