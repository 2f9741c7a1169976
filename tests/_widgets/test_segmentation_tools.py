"""Editing tools in the Segmentation widget, driven as a user would on dcmqi's real 3-slice CT:
paint seeds with the brush, look at the preview, cancel or apply; the log holds one record per
apply (source kind tool), nothing per preview or cancel; the DICOM SEG says SEMIAUTOMATIC."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from support.viewer_helpers import drag, show_slice

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.annotate.tools import morphology
from napari_clinlabel.core.annotate.tools.grow_seeds import background_seed_value
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import ObjectStore, iter_records
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
LIVER, SPLEEN = 1, 2


@pytest.fixture
def errors():
    seen: list[str] = []

    def keep(n):
        if str(n.severity).lower().endswith("error"):
            seen.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


@pytest.fixture
def ct(shared_data, make_napari_viewer, qtbot, tmp_path):
    """dcmqi's 3-slice CT (copied to tmp: the log goes beside it), widget docked, labels on."""
    base = shared_data / "dcmqi_ct3slice_seg"
    shutil.copytree(base / "ct-3slice", tmp_path / "ct")
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(base / "liver_seg.nrrd"))) > 0
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1300, 900)
    vol = read_volumes(tmp_path / "ct")[0]
    image = add_volume(viewer, vol, name="CT")
    widget = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(widget, area="right")
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    labels = widget._labels
    show_slice(viewer, labels, 1)
    viewer.reset_view()
    qtbot.wait(20)
    return viewer, widget, image, labels, get_session(viewer).log_path_for(image), truth, tmp_path


def records(path):
    return list(iter_records(path))


def stroke(qtbot, viewer, layer, value, start, end, size=7):
    layer.selected_label = value
    layer.brush_size = size
    layer.mode = "paint"
    viewer.layers.selection.active = layer
    drag(qtbot, viewer, layer, 1, start, end)


def test_grow_from_seeds_preview_cancel_apply_and_seg(ct, qtbot, tmp_path):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    tools = widget.tools
    tools.select_tool("Grow from seeds")
    qtbot.mouseClick(tools._seed_btn, Qt.MouseButton.LeftButton)
    seeds = tools.seeds
    assert seeds is not None and seeds.data.shape == labels.data.shape
    bg = background_seed_value(seeds.data.dtype)
    before = len(records(log_path))
    stroke(qtbot, viewer, seeds, LIVER, (230, 130), (260, 170))  # one stroke in the liver
    for a, b in (
        ((140, 200), (150, 215)),
        ((243, 345), (255, 350)),
        ((313, 200), (318, 215)),
        ((280, 240), (285, 250)),
        ((354, 90), (360, 100)),
        ((169, 128), (175, 135)),
    ):
        stroke(qtbot, viewer, seeds, bg, a, b, size=5)  # background around it
    # each seed change updates the preview (3 slices: smoothed slice by slice, no ITK error)
    qtbot.waitUntil(lambda: tools.preview.layer is not None and not tools.preview.busy,
                    timeout=60000)  # fmt: skip
    qtbot.wait(600)
    qtbot.waitUntil(lambda: not tools.preview.busy, timeout=60000)
    preview = np.asarray(tools.preview.layer.data) == LIVER
    dice = 2 * (preview & truth).sum() / (preview.sum() + truth.sum())
    assert dice > 0.8, dice
    assert len(records(log_path)) == before  # previews record nothing
    qtbot.mouseClick(tools._cancel_btn, Qt.MouseButton.LeftButton)
    assert tools.preview.layer is None and len(records(log_path)) == before
    assert not labels.data.any()
    qtbot.mouseClick(tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tools.preview.layer is not None and not tools.preview.busy,
                    timeout=60000)  # fmt: skip
    viewer.screenshot(str(tmp_path / "grow_preview.png"), canvas_only=False)
    qtbot.mouseClick(tools._apply_btn, Qt.MouseButton.LeftButton)
    recs = records(log_path)
    assert len(recs) == before + 1
    rec = recs[-1]
    assert rec["action"] == "label.paint" and rec["data"]["tool"] == "grow_seeds"
    assert rec["source"] == {"kind": "tool", "name": "grow_seeds", "version": "1"}
    assert rec["data"]["params"]["method"] == "watershed"
    assert rec["data"]["seeds"]["labels"]["1"]["voxels"] > 0
    assert rec["data"]["seeds"]["labels"]["background"]["voxels"] > 0
    stored = ObjectStore(log_path.with_suffix("").parent / (log_path.name[: -len(".jsonl")])
                         / "objects").get_arrays(rec["data"]["objects"]["seeds"])  # fmt: skip
    assert np.array_equal(np.flatnonzero(seeds.data), stored["indices"])
    assert rec["data"]["voxels"] == int((labels.data == LIVER).sum()) > 0
    assert not (labels.data[np.asarray(image.data) < -500]).any()  # no voxel in the air
    # exported SEG: a tool made these voxels -> SEMIAUTOMATIC, the tool named
    res = export(tmp / "ct", "dicom-seg", tmp / "seg.dcm", actor=get_session(viewer).actor)
    ds = pydicom.dcmread(res.outputs[0].path)
    seg = ds.SegmentSequence[0]
    assert seg.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert seg.SegmentAlgorithmName == "grow_seeds"
    ident = seg.SegmentationAlgorithmIdentificationSequence[0]
    assert ident.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Morphological Operations"


def test_margin_with_a_locked_label_and_cancel(ct, qtbot):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    session = get_session(viewer)
    a = np.zeros(labels.data.shape, bool)
    a[:, 200:240, 200:240] = True
    b = np.zeros_like(a)
    b[:, 200:240, 242:260] = True
    session.edit_labels(labels, np.flatnonzero(a), SPLEEN, tool="brush")
    session.edit_labels(labels, np.flatnonzero(b), 3, tool="brush")
    labels.selected_label = 3
    qtbot.mouseClick(widget.tools._lock, Qt.MouseButton.LeftButton)  # lock label 3
    assert widget.tools.locked() == {3}
    labels.selected_label = SPLEEN
    widget._overwrite.setChecked(True)
    widget.tools.select_tool("Margin")
    widget.tools._margin.setValue(5.0)
    before = len(records(log_path))
    qtbot.mouseClick(widget.tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.tools.preview.layer is not None, timeout=30000)
    qtbot.mouseClick(widget.tools._cancel_btn, Qt.MouseButton.LeftButton)
    assert len(records(log_path)) == before
    qtbot.mouseClick(widget.tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.tools.preview.layer is not None, timeout=30000)
    qtbot.mouseClick(widget.tools._apply_btn, Qt.MouseButton.LeftButton)
    rec = records(log_path)[-1]
    assert rec["data"]["tool"] == "margin" and rec["data"]["locked"] == [3]
    assert rec["data"]["params"]["margin_mm"] == 5.0
    assert (labels.data[b] == 3).all()  # locked label untouched although overwrite is on
    # oracle: scipy distance in mm, in-plane spacing 0.81 mm (3 slices 1 mm apart)
    from scipy import ndimage as ndi

    d = ndi.distance_transform_edt(~a, sampling=(1.0, 0.810547, 0.810547))
    grown = labels.data == SPLEEN
    expect = (d <= 5.0) & ~b
    assert (grown != expect).sum() <= 0.01 * expect.sum()
    # the brush cannot paint over the locked label either
    n = len(records(log_path))
    stroke(qtbot, viewer, labels, SPLEEN, (220, 245), (220, 255), size=5)
    assert (labels.data[b] == 3).all()
    assert len(records(log_path)) >= n


def test_worker_error_is_one_notification_and_the_widget_recovers(ct, qtbot, errors, monkeypatch):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    session = get_session(viewer)
    m = np.zeros(labels.data.shape, bool)
    m[:, 200:240, 200:240] = True
    session.edit_labels(labels, np.flatnonzero(m), SPLEEN, tool="brush")
    labels.selected_label = SPLEEN
    widget.tools.select_tool("Smoothing")

    def itk_fails(*args, **kwargs):  # what an ITK filter raises on bad input
        raise RuntimeError("ITK ERROR: number of pixels along dimension 2 is less than 4")

    monkeypatch.setattr(morphology, "smoothing", itk_fails)
    before = len(records(log_path))
    n_err = len(errors)
    qtbot.mouseClick(widget.tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(errors) > n_err and not widget.tools.preview.busy, timeout=30000)
    qtbot.wait(200)
    assert len(errors) == n_err + 1 and "nothing changed" in errors[-1]
    assert "Tool failed" in widget.tools._status.text()
    assert widget.tools.preview.layer is None and len(records(log_path)) == before
    monkeypatch.undo()
    # recovered: the real smoothing on the 3-slice stack works and applies
    qtbot.mouseClick(widget.tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.tools.preview.layer is not None, timeout=30000)
    qtbot.mouseClick(widget.tools._apply_btn, Qt.MouseButton.LeftButton)
    assert records(log_path)[-1]["data"]["tool"] == "smoothing"
