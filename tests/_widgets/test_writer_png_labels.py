"""Saving labels drawn on a PNG image through napari's writer API (File > Save Selected Layers):
PNG is written and logged, NIfTI is refused before anything is written."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from skimage import io as skio

from napari_clinlabel._writer import write_labels_layer
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.image.samples import fundus_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")
NO_SIZE = "the image states no pixel size (PNG/JPEG/TIFF without resolution tags)"


def _chunks(path: Path) -> list[bytes]:
    raw, pos, kinds = path.read_bytes(), 8, []
    while pos < len(raw):
        (n,) = struct.unpack(">I", raw[pos : pos + 4])
        kinds.append(raw[pos + 4 : pos + 8])
        pos += 12 + n
    return kinds


def _open_png(viewer, tmp_path: Path):
    """A grey fundus photo saved as PNG, opened as a user does (File > Open)."""
    path = tmp_path / "fundus.png"
    skio.imsave(path, np.asarray(fundus_phantom().array)[::4, ::4, 1], check_contrast=False)
    [image] = viewer.open(str(path), plugin="napari-clinlabel")
    assert image.metadata["clinlabel"]["spacing_known"] is False
    return image


def _paint(labels, value, centre) -> None:
    labels.selected_label = value
    labels.brush_size = 9
    labels.paint(centre, value)  # one brush dab, captured by the session's recorder


def test_save_selected_labels_layer_as_png_is_logged(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = _open_png(viewer, tmp_path)
    labels = get_session(viewer).labels_layer_for(image)
    _paint(labels, 1, (40, 50))
    _paint(labels, 3, (90, 70))
    log_path = get_session(viewer).log_path_for(image)
    viewer.layers.selection = {labels}

    out = tmp_path / "seg.png"
    written = viewer.layers.save(str(out), selected=True, plugin="napari-clinlabel")
    assert Path(written[0]) == out
    back = skio.imread(out)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, labels.data)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), labels.data)
    assert _chunks(out) == [b"IHDR", b"IDAT", b"IEND"]  # no pHYs
    [rec] = [r for r in iter_records(log_path) if r["action"] == "export"]
    assert rec["data"]["format"] == "png" and rec["data"]["labels"] == labels.name
    assert [o["name"] for o in rec["data"]["outputs"]] == [
        "seg.png",
        "seg.png.json",
    ]  # side file named per output
    assert verify_log(log_path).ok

    # NIfTI for the same layer: refused with the reason, nothing written, log unchanged
    before = log_path.read_bytes()
    bad = tmp_path / "seg.nii.gz"
    with pytest.raises(ExportError, match="would declare 1 mm per pixel") as exc:
        viewer.layers.save(str(bad), selected=True, plugin="napari-clinlabel")
    assert NO_SIZE in str(exc.value) and "(seg.png) instead" in str(exc.value)
    assert not bad.exists() and log_path.read_bytes() == before


def test_plain_labels_writer_saves_png_and_refuses_nifti(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = _open_png(viewer, tmp_path)
    labels = get_session(viewer).labels_layer_for(image)
    _paint(labels, 2, (60, 60))
    log_path = get_session(viewer).log_path_for(image)
    assert labels.data.max() == 2
    attrs = labels.as_layer_data_tuple()[1]

    out = tmp_path / "plain.png"
    assert write_labels_layer(str(out), labels.data, attrs) == [str(out)]
    np.testing.assert_array_equal(skio.imread(out), labels.data)
    assert b"pHYs" not in _chunks(out)
    saves = [r for r in iter_records(log_path) if r["action"] == "labels.save"]
    assert len(saves) == 1

    before = log_path.read_bytes()
    for name in ("plain.nii.gz", "plain.nrrd", "plain.mha"):
        with pytest.raises(ExportError, match="would declare 1 mm per pixel"):
            write_labels_layer(str(tmp_path / name), labels.data, attrs)
        assert not (tmp_path / name).exists()
    assert log_path.read_bytes() == before
