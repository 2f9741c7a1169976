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
from support.viewer_helpers import canvas_pos, drag, show_slice

from napari_clinlabel._widgets._common import add_volume
from napari_clinlabel._widgets.segmentation import SegmentationWidget
from napari_clinlabel.core.annotate.tools import morphology
from napari_clinlabel.core.annotate.tools.grow_seeds import background_seed_value
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import ObjectStore, iter_records
from napari_clinlabel.core.quality.report import _segment_origins as report_origins
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
    assert rec["data"]["params"]["method"] == "auto"  # the default: chosen per image
    assert rec["data"]["params"]["method_used"] in ("watershed", "watershed_gradient")
    assert "background_in_band" in rec["data"]["params"]
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
    # undo then redo the margin: the report and the SEG both still say a tool made its voxels
    recorder = session.recorder_for(labels)
    recorder.undo()
    recorder.redo()
    undo, redo = records(log_path)[-2:]
    assert undo["data"]["undoes"] == rec["seq"] and redo["data"]["redoes"] == undo["seq"]
    assert ((labels.data == SPLEEN) == grown).all()
    res = export(tmp / "ct", "dicom-seg", tmp / "seg_redo.dcm", actor=session.actor,
                 labels_name=recorder.name)  # fmt: skip
    seg = pydicom.dcmread(res.outputs[0].path)
    kinds = [str(s.SegmentAlgorithmType) for s in seg.SegmentSequence]  # labels 2, 3 in order
    origins = report_origins(log_path, recorder.name)
    assert origins == {SPLEEN: "tool", 3: "manual"}, origins
    assert kinds == ["SEMIAUTOMATIC", "MANUAL"], kinds  # the SEG says what the report says
    recorder.undo()  # undone for good: the spleen is the brush's again, manual
    assert report_origins(log_path, recorder.name)[SPLEEN] == "manual"
    recorder.redo()
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


def _seg_types(viewer, tmp):
    res = export(tmp / "ct", "dicom-seg", tmp / "seg.dcm", actor=get_session(viewer).actor)
    ds = pydicom.dcmread(res.outputs[0].path)
    return {int(s.SegmentNumber): s for s in ds.SegmentSequence}, ds


def test_scissors_rectangle_drawn_on_the_canvas_cuts_and_keeps_locks(ct, qtbot):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    session = get_session(viewer)
    a = np.zeros(labels.data.shape, bool)
    a[:, 150:300, 150:300] = True
    b = np.zeros_like(a)
    b[:, 200:220, 310:360] = True
    session.edit_labels(labels, np.flatnonzero(a), LIVER, tool="brush")
    session.edit_labels(labels, np.flatnonzero(b), SPLEEN, tool="brush")
    labels.selected_label = SPLEEN
    qtbot.mouseClick(widget.tools._lock, Qt.MouseButton.LeftButton)  # spleen locked
    labels.selected_label = LIVER
    tools = widget.tools
    tools.select_tool("Scissors")
    tools._sc_shape.setCurrentText("rectangle")
    tools._sc_extent.setCurrentIndex(1)  # through the volume
    tools._sc_all.setChecked(True)  # every label: the lock still protects the spleen
    qtbot.mouseClick(tools._sc_draw, Qt.MouseButton.LeftButton)
    shapes = tools.shapes
    assert shapes is not None and shapes.mode == "add_rectangle"
    before = len(records(log_path))
    # draw the rectangle with the mouse: press at one corner, drag, release at the other
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    p0 = canvas_pos(viewer, labels, (1, 180, 240))
    p1 = canvas_pos(viewer, labels, (1, 260, 340))
    from vispy.app.canvas import MouseEvent

    press = MouseEvent(pos=p0, type="mouse_press", button=1)
    canvas.events.mouse_press(pos=p0, modifiers=(), button=1)
    for t in np.linspace(0, 1, 6):
        qtbot.wait(10)
        pos = np.round(p0 + t * (p1 - p0)).astype(int)
        canvas.events.mouse_move(pos=pos, modifiers=(), button=1, press_event=press)
    canvas.events.mouse_release(pos=p1, modifiers=(), button=1)
    assert len(shapes.data) == 1 and shapes.shape_type[0] == "rectangle"
    qtbot.waitUntil(lambda: tools.preview.layer is not None and not tools.preview.busy,
                    timeout=30000)  # fmt: skip  # drawing previews the cut
    assert len(records(log_path)) == before
    viewer.screenshot(str(tmp / "scissors_preview.png"), canvas_only=False)
    qtbot.mouseClick(tools._apply_btn, Qt.MouseButton.LeftButton)
    recs = records(log_path)
    assert len(recs) == before + 1
    rec = recs[-1]
    assert rec["action"] == "label.paint" and rec["data"]["tool"] == "scissors"
    assert rec["source"] == {"kind": "tool", "name": "scissors", "version": "1"}
    p = rec["data"]["params"]
    assert (p["shape"], p["side"], p["extent"], p["label"]) == ("rectangle", "inside", "volume",
                                                                None)  # fmt: skip
    assert rec["data"]["locked"] == [SPLEEN] and len(rec["data"]["seeds"]["vertices"]) == 4
    v = np.asarray(rec["data"]["seeds"]["vertices"])
    y0, y1 = int(np.ceil(v[:, 1].min())), int(np.floor(v[:, 1].max()))
    x0, x1 = int(np.ceil(v[:, 2].min())), int(np.floor(v[:, 2].max()))
    inside = np.zeros(a.shape, bool)
    inside[:, y0 : y1 + 1, x0 : x1 + 1] = True
    assert abs(y0 - 180) <= 2 and abs(x1 - 340) <= 2  # where the mouse went
    assert not (labels.data[inside & a] == LIVER).any()  # cut on every slice
    assert (labels.data[a & ~inside] == LIVER).all()
    assert (labels.data[b] == SPLEEN).all()  # locked: untouched
    # now fill: an ellipse added to the Shapes layer, "fill inside", this slice, label 3
    labels.selected_label = 3
    tools._sc_side.setCurrentIndex(2)  # fill inside
    tools._sc_extent.setCurrentIndex(0)  # this slice
    tools._sc_all.setChecked(False)
    shapes.add_ellipses(np.array([[1, 200, 270], [1, 200, 310], [1, 240, 310], [1, 240, 270]]))
    qtbot.waitUntil(lambda: tools.preview.layer is not None and not tools.preview.busy,
                    timeout=30000)  # fmt: skip
    qtbot.mouseClick(tools._apply_btn, Qt.MouseButton.LeftButton)
    rec = records(log_path)[-1]
    assert rec["data"]["tool"] == "scissors" and rec["data"]["params"]["operation"] == "fill"
    assert rec["data"]["params"]["shape"] == "ellipse" and rec["data"]["params"]["label"] == 3
    filled = labels.data == 3
    assert filled[1].any() and not filled[0].any() and not filled[2].any()
    yy, xx = np.mgrid[: filled.shape[1], : filled.shape[2]]
    disk = ((yy - 220) / 20.0) ** 2 + ((xx - 290) / 20.0) ** 2 <= 1.0
    assert (filled[1] != disk).sum() <= 0.05 * disk.sum()
    # the erase made no voxels: the liver's remaining voxels are the reader's -> MANUAL; the
    # filled label is the tool's -> SEMIAUTOMATIC
    segs, _ = _seg_types(viewer, tmp)
    by_label = {str(s.SegmentLabel): s for s in segs.values()}
    assert len(by_label) == 3
    types = sorted(str(s.SegmentAlgorithmType) for s in segs.values())
    assert types == ["MANUAL", "MANUAL", "SEMIAUTOMATIC"]
    semi = [s for s in segs.values() if s.SegmentAlgorithmType == "SEMIAUTOMATIC"][0]
    assert semi.SegmentAlgorithmName == "scissors"


def test_joint_smoothing_of_all_labels_applies_as_one_tool_record(ct, qtbot):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    session = get_session(viewer)
    rng = np.random.default_rng(3)
    lab = np.zeros(labels.data.shape, np.uint8)
    lab[:, 150:300, 150:230] = LIVER
    lab[:, 150:300, 230:300] = SPLEEN
    noise = (rng.random(lab.shape) < 0.05) & (lab > 0)
    lab[noise] = np.where(lab[noise] == LIVER, SPLEEN, LIVER)  # speckles of the other label
    for v in (LIVER, SPLEEN):
        session.edit_labels(labels, np.flatnonzero(lab == v), v, tool="brush")
    labels.selected_label = LIVER
    tools = widget.tools
    tools.select_tool("Smoothing")
    tools._smooth.setCurrentText("joint")
    tools._smooth_radius.setValue(1.5)
    before = len(records(log_path))
    qtbot.mouseClick(tools._preview_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tools.preview.layer is not None and not tools.preview.busy,
                    timeout=30000)  # fmt: skip
    assert len(records(log_path)) == before
    qtbot.mouseClick(tools._apply_btn, Qt.MouseButton.LeftButton)
    rec = records(log_path)[-1]
    assert rec["data"]["tool"] == "joint_smoothing"
    assert rec["source"] == {"kind": "tool", "name": "joint_smoothing", "version": "1"}
    assert rec["data"]["params"]["sigma_mm"] == 1.5
    assert rec["data"]["params"]["labels"] == [LIVER, SPLEEN]
    out = labels.data
    clean = np.zeros_like(lab)
    clean[:, 150:300, 150:230] = LIVER
    clean[:, 150:300, 230:300] = SPLEEN
    assert (out != clean).sum() < 0.2 * (lab != clean).sum()  # speckles mostly gone
    segs, _ = _seg_types(viewer, tmp)
    assert {str(s.SegmentAlgorithmType) for s in segs.values()} == {"SEMIAUTOMATIC"}
    assert {str(s.SegmentAlgorithmName) for s in segs.values()} == {"joint_smoothing"}


def test_hide_a_label_is_a_view_change_and_never_recorded(ct, qtbot):
    viewer, widget, image, labels, log_path, truth, tmp = ct
    session = get_session(viewer)
    m = np.zeros(labels.data.shape, bool)
    m[:, 200:240, 200:240] = True
    session.edit_labels(labels, np.flatnonzero(m), SPLEEN, tool="brush")
    labels.selected_label = SPLEEN
    shown = np.asarray(labels.colormap.map(np.array([SPLEEN], labels.data.dtype)))[0]
    assert shown[3] > 0
    before = len(records(log_path))
    qtbot.mouseClick(widget.tools._hide, Qt.MouseButton.LeftButton)
    hidden = np.asarray(labels.colormap.map(np.array([SPLEEN], labels.data.dtype)))[0]
    assert hidden[3] == 0 and widget.tools.hidden() == {SPLEEN}
    assert "Hidden: [2]" in widget.tools._locked_info.text()
    liver = np.asarray(labels.colormap.map(np.array([LIVER], labels.data.dtype)))[0]
    assert liver[3] > 0  # the others still shown
    qtbot.mouseClick(widget.tools._hide, Qt.MouseButton.LeftButton)
    again = np.asarray(labels.colormap.map(np.array([SPLEEN], labels.data.dtype)))[0]
    assert np.allclose(again, shown)
    assert len(records(log_path)) == before  # showing/hiding is not a labelling decision
    assert (labels.data[m] == SPLEEN).all()
