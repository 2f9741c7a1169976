"""Review by keys alone: five proposals — accept two, edit one, reject two — give exactly five
decision records, the expected final label array (also by replaying the log), a log that verifies,
and a napari writer that refuses while any proposal is undecided."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from qtpy.QtCore import Qt
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets._proposal_layers import BOXES, CURRENT_VALUE, PENDING
from napari_clinlabel._widgets.review import ReviewWidget
from napari_clinlabel._writer import write_labels_layer
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import PendingProposalsError
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.filterwarnings("error::FutureWarning")  # private access via the proxy
SHAPE = (12, 64, 64)
MODEL = {"name": "test-net", "version": "0.3", "sha256": "ab" * 32}
# five cubes (z, y, x start; edge) with their labels: liver, spleen, lesion, kidney, aorta
CUBES = [
    ((1, 5, 5), 4, 1),
    ((3, 30, 30), 5, 2),
    ((5, 40, 8), 6, 6),
    ((7, 8, 44), 3, 3),
    ((9, 48, 48), 3, 5),
]


def _cube(start, edge):
    m = np.zeros(SHAPE, bool)
    m[tuple(slice(s, s + edge) for s in start)] = True
    return m


def _drafts():
    return [
        ProposalDraft(
            "segment", lab, 0.9 - 0.1 * k, np.flatnonzero(_cube(s, e)), SHAPE, name=f"p{k}"
        )
        for k, (s, e, lab) in enumerate(CUBES)
    ]


def _keys(qtbot, viewer, *keys):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    for k in keys:
        qtbot.keyClick(canvas, k)


@pytest.fixture
def review(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    vol = ct_phantom(shape=SHAPE)  # the image file itself, which the export writers read
    sitk.WriteImage(vol.to_itk(vol.array), str(tmp_path / "ct.nii.gz"))
    session = get_session(viewer)
    log = session.log_for(image)
    add_proposals(log, _drafts(), MODEL, labels_name="segmentation")
    # docked as from the Plugins menu: the widget gets napari's public-only proxy of the viewer
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    assert isinstance(widget, ReviewWidget)
    return viewer, image, widget, log.path


def _decisions(log_path):
    return [
        r
        for r in iter_records(log_path)
        if r["action"] in ("proposal.accept", "proposal.edit", "proposal.reject")
    ]


def test_five_proposals_by_keys(review, qtbot, tmp_path):
    viewer, image, w, log_path = review
    labels = viewer.layers["segmentation"]
    pending = viewer.layers[PENDING]
    assert w._count.text().startswith("0 of 5 decided")
    assert np.array_equal(pending.data > 0, np.any([_cube(s, e) for s, e, _ in CUBES], axis=0))
    assert not labels.data.any()  # proposals never show in the final labels
    assert np.array_equal(pending.data == CURRENT_VALUE, _cube(*CUBES[0][:2]))  # under review
    assert "test-net 0.3" in w._info.text() and "64 voxels" in w._info.text()
    # the view is centred on the first proposal: its slice is shown
    assert viewer.dims.point[0] == pytest.approx(image.data_to_world((2, 0, 0))[0], abs=1e-3)

    # the napari writer refuses while proposals are undecided, and writes nothing
    out = tmp_path / "labels.nii.gz"
    with pytest.raises(PendingProposalsError, match="5 proposals are still undecided"):
        labels.save(str(out), plugin="napari-clinlabel")
    _data, attributes, _kind = labels.as_layer_data_tuple()
    with pytest.raises(PendingProposalsError, match="5 proposals are still undecided"):
        write_labels_layer(str(out), labels.data, attributes)  # the plain labels writer too
    assert not list(tmp_path.glob("labels*"))

    _keys(qtbot, viewer, Qt.Key.Key_A, Qt.Key.Key_A)  # accept #1 and #2
    assert w.current.name == "p2"
    assert viewer.dims.point[0] == pytest.approx(image.data_to_world((7, 0, 0))[0], abs=1e-3)

    _keys(qtbot, viewer, Qt.Key.Key_E)  # edit #3: erase its slice z=5, add one voxel
    edit = w.edit_layer
    assert viewer.layers.selection.active is edit or viewer.layers.selection.active == edit
    assert np.array_equal(edit.data > 0, _cube(*CUBES[2][:2]))
    viewer.dims.set_point(0, float(image.data_to_world((5, 0, 0))[0]))
    edit.fill((5, 42, 10), 0)
    edit.brush_size = 1
    edit.paint((8, 47, 14), 1)
    expected_edit = _cube(*CUBES[2][:2])
    expected_edit[5] = False
    expected_edit[8, 47, 14] = True
    assert np.array_equal(edit.data > 0, expected_edit)
    _keys(qtbot, viewer, Qt.Key.Key_E)  # confirm the edit
    assert not edit.data.any() and not edit.visible

    _keys(qtbot, viewer, Qt.Key.Key_R)  # reject #4 from the canvas …
    w.setFocus()
    qtbot.keyClick(w, Qt.Key.Key_R)  # … and #5 with the widget focused
    assert w.current is None and w._count.text().startswith("5 of 5 decided")

    recs = _decisions(log_path)
    accepts, edits, rejects = ["proposal.accept"] * 2, ["proposal.edit"], ["proposal.reject"] * 2
    assert [r["action"] for r in recs] == accepts + edits + rejects
    assert all(r["source"]["kind"] == "model" and r["source"]["name"] == "test-net" for r in recs)
    assert all(r["actor"]["id"] for r in recs)
    # one 6×6 slice erased, one voxel added
    assert recs[2]["data"]["changed_vs_proposal"] == 6 * 6 + 1
    expected = np.zeros(SHAPE, np.uint8)
    expected[_cube(*CUBES[0][:2])] = 1
    expected[_cube(*CUBES[1][:2])] = 2
    expected[expected_edit] = 6
    assert np.array_equal(labels.data, expected)
    assert not pending.data.any()
    report = verify_log(log_path)
    assert report.ok, report.summary()
    replayed = replay_labels(log_path).labels["segmentation"]
    assert np.array_equal(replayed, expected)  # the log alone gives the same labels
    # nothing was logged twice: no untracked label.paint crept in
    assert not [r for r in iter_records(log_path) if r["action"] == "label.paint"]

    labels.save(str(out), plugin="napari-clinlabel")  # all decided: the writers save
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert np.array_equal(written, expected)
    plain = tmp_path / "plain.nii.gz"
    write_labels_layer(str(plain), labels.data, labels.as_layer_data_tuple()[1])
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(plain))), expected)


def test_navigation_skips_decided_and_no_bulk_accept(review, qtbot):
    viewer, _image, w, log_path = review
    _keys(qtbot, viewer, Qt.Key.Key_N, Qt.Key.Key_N)
    assert w.current.name == "p2"
    _keys(qtbot, viewer, Qt.Key.Key_P)
    assert w.current.name == "p1"
    _keys(qtbot, viewer, Qt.Key.Key_R)  # reject p1 → p2 shown
    assert w.current.name == "p2"
    _keys(qtbot, viewer, Qt.Key.Key_P)  # p1 is decided: previous skips to p0
    assert w.current.name == "p0"
    assert len(_decisions(log_path)) == 1
    # an edit started and discarded decides nothing; while editing, A/R/N/P do nothing
    _keys(qtbot, viewer, Qt.Key.Key_E)
    assert w.edit_layer.data.any()
    _keys(qtbot, viewer, Qt.Key.Key_A, Qt.Key.Key_N)
    assert "Finish the edit first" in w._info.text() and w.current.name == "p0"
    qtbot.mouseClick(w._discard_btn, Qt.MouseButton.LeftButton)
    assert not w.edit_layer.data.any() and not w.edit_layer.visible
    assert len(_decisions(log_path)) == 1 and w.current.name == "p0" and w.current.pending
    # no accept-all: one key press is one decision
    assert not [b for b in w.findChildren(type(w._accept_btn)) if "all" in b.text().lower()]


def test_refused_log_write_changes_nothing(review, qtbot, monkeypatch):
    viewer, _image, w, log_path = review
    from napari_clinlabel.core.errors import LogError

    log = get_session(viewer).log_for(_image)
    before = log_path.read_bytes()

    def refuse(*_a, **_k):
        raise LogError(f"{log_path.name}: disk full; free space and try again.")

    monkeypatch.setattr(log, "append", refuse)
    errors = []
    monkeypatch.setattr(get_session(viewer), "report_error", errors.append)
    _keys(qtbot, viewer, Qt.Key.Key_A)
    assert errors and "disk full" in str(errors[0])
    assert log_path.read_bytes() == before
    assert not viewer.layers["segmentation"].data.any()
    assert w.current.name == "p0" and w.current.pending  # still shown, still undecided


def test_box_and_grade_proposals(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)
    log = get_session(viewer).log_for(image)
    box = {"zyx_min": [2, 10, 12], "zyx_max": [4, 20, 30], "class": "malignant", "label": 6}
    grade = {"scale": "icdr", "value": "2", "probabilities": {"0": 0.1, "2": 0.9}}
    add_proposals(
        log,
        [
            ProposalDraft("box", 6, 0.8, payload=box, name="lesion"),
            ProposalDraft("grade", "2", 0.9, payload=grade),
        ],
        MODEL,
    )
    w = ReviewWidget(viewer)
    qtbot.addWidget(w)
    boxes = viewer.layers[BOXES]
    assert len(boxes.data) == 3  # one rectangle per slice of the box (z 2..4)
    assert "Box: 7.5 × 8.8 × 15.2 mm" in w._info.text()  # 3 × 11 × 19 voxels of 2.5/0.8/0.8 mm
    errors = []
    w._session.report_error = errors.append
    _keys(qtbot, viewer, Qt.Key.Key_E)  # E on a box left as proposed: told to use A, nothing logged
    assert not errors and "Press A to accept it" in w._info.text()
    assert not _decisions(log.path) and w._count.text().startswith("0 of 2 decided")
    _keys(qtbot, viewer, Qt.Key.Key_A)
    assert len(boxes.data) == 0
    assert "Grade: 2 on icdr" in w._info.text()
    _keys(qtbot, viewer, Qt.Key.Key_R)
    recs = _decisions(log.path)
    assert [r["action"] for r in recs] == ["proposal.accept", "proposal.reject"]
    assert recs[0]["data"]["box"] == box
    assert "segmentation" not in viewer.layers  # no label array was needed


def test_reviews_proposals_made_by_the_cli(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_clinlabel.cli import main

    monkeypatch.setenv("CLINLABEL_USER", "rad1")
    vol = ct_phantom(shape=(24, 96, 96))
    path = tmp_path / "phantom.nii.gz"
    sitk.WriteImage(vol.to_itk(vol.array), str(path))
    assert main(["prelabel", str(path), "--model", "builtin:baseline", "--device", "cpu"]) == 0
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-clinlabel")
    _dock, w = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Review proposals")
    added = [
        r
        for r in iter_records(path.with_name(path.name + ".clinlabel.jsonl"))
        if r["action"] == "proposal.add"
    ]
    assert added and w.current is not None
    assert w.current.id == added[0]["target"]["proposal"]
    assert w._count.text().startswith(f"0 of {len(added)} decided")
    for _ in added:
        _keys(qtbot, viewer, Qt.Key.Key_R)
    assert w.current is None
    assert verify_log(path.with_name(path.name + ".clinlabel.jsonl")).ok


def test_order_by_size_or_score_and_next_large(review, qtbot):
    """Sorting changes only what is shown next; "Next large" skips small proposals; no record."""
    viewer, image, w, log_path = review
    before = len(list(iter_records(log_path)))
    row = w._order_row
    row.order_combo.setCurrentIndex(row.order_combo.findData("size"))
    # cube edges 4, 5, 6, 3, 3 → voxels 64, 125, 216, 27, 27: largest first is p2, then p1
    assert w.current.name == "p2" and w._count.text().endswith("showing #1")
    assert [p.name for p in w.queue.proposals] == ["p2", "p1", "p0", "p3", "p4"]
    assert np.array_equal(viewer.layers[PENDING].data == CURRENT_VALUE, _cube(*CUBES[2][:2]))
    row.order_combo.setCurrentIndex(row.order_combo.findData("score"))
    assert w.current.name == "p0"  # scores 0.9, 0.8, … : p0 is the surest
    row.order_combo.setCurrentIndex(row.order_combo.findData("added"))
    row.large_spin.setValue(100)
    qtbot.mouseClick(row.large_btn, Qt.MouseButton.LeftButton)
    assert w.current.name == "p1"  # the next of 100 voxels or more after p0
    qtbot.mouseClick(row.large_btn, Qt.MouseButton.LeftButton)
    assert w.current.name == "p2"
    row.large_spin.setValue(1000)
    qtbot.mouseClick(row.large_btn, Qt.MouseButton.LeftButton)
    assert w.current.name == "p2" and "No undecided proposal of 1000 voxels" in w._info.text()
    assert len(list(iter_records(log_path))) == before  # walking and sorting record nothing
    assert [p.name for p in w.proposals] == ["p0", "p1", "p2", "p3", "p4"]  # as added
