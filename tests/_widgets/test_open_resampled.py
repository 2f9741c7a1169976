"""napari: a DICOM series with uneven slice spacing (or a missing slice) says how to open it
resampled, the Session widget's "Open DICOM resampled…" does it (request logged by the acting
human), labels drawn on it are logged as usual, and export puts them back on the original slices.

Oracles: each file's ImagePositionPatient and pixels (pydicom) — numpy's ``interp`` over the
true positions for the resampled voxels, the files' positions for the layer's world coordinates
and for the exported NIfTI affines (nibabel); the log's own verifier.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from qtpy.QtCore import Qt
from support.dicom_series_factory import phantom_stored, write_series
from support.viewer_helpers import layer_drag

import napari_clinlabel._reader as reader_module
import napari_clinlabel._widgets.session as session_module
from napari_clinlabel import api
from napari_clinlabel._export_writers import write_labels_nifti
from napari_clinlabel._widgets.session import SessionWidget
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
PLUGIN = "napari-clinlabel"
OFFSETS = [0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0]  # 2 mm then 1 mm: two even blocks
GAPPED = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]  # one slice missing


def _truth(files) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depths along the normal (mm, sorted), the rescaled pixels in that order, and IPPs."""
    ds = [pydicom.dcmread(f) for f in files]
    iop = np.asarray(ds[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    ipp = np.array([np.asarray(d.ImagePositionPatient, float) for d in ds])
    depth = ipp @ normal
    order = np.argsort(depth)
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds])
    return depth[order], hu[order], ipp[order]


def _resampled_layers(viewer) -> list:
    return [ly for ly in viewer.layers if (ly.metadata.get("clinlabel") or {}).get("resampled")]


def _open_resampled_by_click(qtbot, viewer, widget, folder, monkeypatch):
    asked = {}

    def choose(parent, caption, start):  # the folder dialog: the user picks the series folder
        asked["start"] = start
        return str(folder)

    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory", choose)
    qtbot.mouseClick(widget._resample, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(_resampled_layers(viewer)), timeout=20000)
    return _resampled_layers(viewer)[0], asked


def test_uneven_series_opens_resampled_from_the_session_widget_and_exports_back(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("CLINLABEL_USER", "rad1")
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    folder = tmp_path / "ct"
    ws = write_series(folder, phantom_stored((7, 10, 12)), offsets_mm=OFFSETS)
    said = []
    monkeypatch.setattr(reader_module, "show_info", said.append)
    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    blocks = viewer.open(folder, plugin=PLUGIN)  # File > Open: the even blocks, as today
    assert [b.data.shape[0] for b in blocks] == [4, 3]
    assert len(said) == 1 and "uneven slice spacing" in said[0]
    assert "Open DICOM resampled" in said[0] and "--resample" in said[0]
    viewer.layers.selection.active = blocks[0]
    widget._spacing.setValue(0.5)
    layer, asked = _open_resampled_by_click(qtbot, viewer, widget, folder, monkeypatch)
    assert asked["start"] == str(folder)  # the dialog starts at the active block's series
    depth, hu, ipp = _truth(ws.files)
    assert layer.data.shape == (19, 10, 12)
    for k in (0, 5, 13, 18):  # voxels: linear over the true positions; places: the files' own
        want = np.apply_along_axis(lambda c, k=k: np.interp(depth[0] + 0.5 * k, depth, c), 0, hu)
        np.testing.assert_allclose(np.asarray(layer.data[k]), want, atol=1e-3)
        at = ipp[0] + (ipp[-1] - ipp[0]) / np.linalg.norm(ipp[-1] - ipp[0]) * 0.5 * k
        np.testing.assert_allclose(layer.data_to_world((k, 0, 0)), at[::-1], atol=1e-4)
    log_path = tmp_path / "ct.resampled.clinlabel.jsonl"
    session = get_session(viewer)
    assert session.log_path_for(layer) == log_path
    labels = session.labels_layer_for(layer)
    labels.mode, labels.brush_size, labels.selected_label = "paint", 3, 1
    viewer.dims.set_point(0, float(layer.data_to_world((8, 0, 0))[0]))  # slice 8: 4 mm
    layer_drag(viewer, labels, (8, 3, 3), (8, 3, 8))
    assert labels.data[8].any() and not labels.data[7].any()
    recs = list(iter_records(log_path))
    actions = [r["action"] for r in recs]
    # image.open, the PHI check's phi.warning (the synthetic files carry fake identifiers), then
    # the request — before any label record
    assert actions[0] == "image.open" and actions.count("image.resample") == 1
    asked_rec = recs[actions.index("image.resample")]
    assert asked_rec["actor"]["id"] == "rad1" and asked_rec["data"]["to_spacing_mm"] == 0.5
    assert asked_rec["data"]["from_steps_mm"] == [1.0, 2.0]
    assert asked_rec["source"] == {"kind": "tool", "name": "clinlabel.resample_uneven",
                                 "version": "1"}  # fmt: skip
    assert actions.index("image.resample") < actions.index("label.paint")
    assert all(r["actor"]["id"] == "rad1" for r in recs)
    # File > Save the labels layer as NIfTI: one file per even block, on the original slices
    out = tmp_path / "out"
    out.mkdir()
    written = write_labels_nifti(str(out / "lab.nii.gz"), labels.data,
                                 labels.as_layer_data_tuple()[1])  # fmt: skip
    names = sorted(p.rsplit("/", 1)[-1] for p in written if p.endswith(".nii.gz"))
    assert names == ["lab.slices1-4.nii.gz", "lab.slices5-7.nii.gz"]
    img = nib.load(out / "lab.slices1-4.nii.gz")
    arr = np.asarray(img.dataobj)
    for k in range(arr.shape[2]):  # block 1 = the slices at 0, 2, 4, 6 mm
        centre = nib.affines.apply_affine(img.affine, [0, 0, k]) * [-1, -1, 1]  # RAS -> LPS
        np.testing.assert_allclose(centre, ipp[k], atol=1e-3)
        assert bool(arr[:, :, k].any()) == (k == 2)  # 4 mm: where the stroke was drawn
    np.testing.assert_array_equal(arr[:, :, 2].T, labels.data[8])
    assert not np.asarray(nib.load(out / "lab.slices5-7.nii.gz").dataobj).any()
    assert [r["action"] for r in iter_records(log_path)][-1] == "export"
    assert api.verify_log(log_path).ok


def test_a_missing_slice_is_refused_naming_the_way_which_then_opens_it(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("CLINLABEL_USER", "rad1")
    folder = tmp_path / "gap"
    ws = write_series(folder, phantom_stored((7, 6, 5)), offsets_mm=GAPPED)
    viewer = make_napari_viewer()
    widget = SessionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    with pytest.raises(Exception) as exc:  # napari may wrap the reader's error
        viewer.open(folder, plugin=PLUGIN)
    message = str(exc.value)
    assert "a missing slice" in message and "Open DICOM resampled" in message
    assert len(viewer.layers) == 0
    layer, asked = _open_resampled_by_click(qtbot, viewer, widget, folder, monkeypatch)
    assert asked["start"] == ""  # no uneven block active: the dialog starts where Qt likes
    depth, hu, _ = _truth(ws.files)
    assert layer.data.shape == (8, 6, 5)  # 0..7 mm at the smallest step, the gap interpolated
    np.testing.assert_allclose(np.asarray(layer.data[4]), (hu[3] + hu[4]) / 2, atol=1e-3)
    (rec,) = [r for r in iter_records(tmp_path / "gap.resampled.clinlabel.jsonl")
              if r["action"] == "image.resample"]  # fmt: skip
    assert rec["data"]["gaps_bridged"] == 1 and rec["actor"]["id"] == "rad1"


def test_a_folder_that_is_not_uneven_is_refused_in_a_notification(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
):
    monkeypatch.setenv("CLINLABEL_USER", "rad1")
    folder = tmp_path / "even"
    write_series(folder, phantom_stored((4, 6, 5)))
    errors = []
    viewer = make_napari_viewer()
    session = get_session(viewer)
    monkeypatch.setattr(session, "report_error", errors.append)
    widget = SessionWidget(viewer)
    monkeypatch.setattr(session_module.QFileDialog, "getExistingDirectory",
                        lambda *a: str(folder))  # fmt: skip
    qtbot.mouseClick(widget._resample, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(errors), timeout=20000)
    assert "evenly spaced" in str(errors[0]) and "\n" not in str(errors[0])
    assert len(viewer.layers) == 0 and not list(tmp_path.glob("*.clinlabel.jsonl"))
