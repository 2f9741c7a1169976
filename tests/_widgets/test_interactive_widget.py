"""Interactive prompts widget: points on an organ → Run → ONE proposal (source = the model, actor =
the human, prompts in its data) → Enter accepts / Esc rejects / Edit then Enter: one record each,
checked against the phantom's own truth."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import Qt
from scipy import ndimage
from support.viewer_helpers import add_ct

from napari_clinlabel._widgets.interactive import POSITIVE, RESULT, InteractiveWidget
from napari_clinlabel.core.image.samples import ct_phantom_truth
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.models.loader import load_model
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

pytest.importorskip("torch")
pytestmark = pytest.mark.gui
SHAPE = (48, 160, 160)
LEFT = Qt.MouseButton.LeftButton


def _key(qtbot, viewer, key):
    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    qtbot.keyClick(canvas, key)


def _centre(mask):
    return np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(mask))), mask.shape)


def _records(log_path, since=0):
    return list(iter_records(log_path))[since:]


def _decisions(records):
    """Proposal records (the labels layer's own ``labels.create`` may come first, once)."""
    assert {r["action"] for r in records if not r["action"].startswith("proposal.")} <= {
        "labels.create"
    }
    return [r for r in records if r["action"].startswith("proposal.")]


@pytest.fixture
def setup(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path, shape=SHAPE)  # ct_phantom seed 0: never trained on
    _vol, truth = ct_phantom_truth(shape=SHAPE, seed=0)
    _dock, w = viewer.window.add_plugin_dock_widget("napari-clinlabel", "Interactive prompts")
    assert isinstance(w, InteractiveWidget)
    qtbot.mouseClick(w._prompt_btn, LEFT)
    return viewer, image, w, truth, get_session(viewer)


def _run(qtbot, viewer, w, point, label):
    viewer.layers[POSITIVE].add(np.asarray([point], float))
    w.set_label(label)
    qtbot.mouseClick(w._run_btn, LEFT)
    assert w.proposal is not None, w._status.text()
    return w.proposal


def test_point_run_enter_accepts(setup, qtbot):
    viewer, image, w, truth, session = setup
    log_path = session.log_path_for(image)
    p = _run(qtbot, viewer, w, _centre(truth == 3), 3)  # right kidney
    ident = load_model("builtin:phantom-interactive", device="cpu", verify=False).identity
    adds = [r for r in _records(log_path) if r["action"] == "proposal.add"]
    assert len(adds) == 1 and adds[0]["target"]["proposal"] == p.id
    assert adds[0]["source"] == {"kind": "model", **ident.to_dict()}
    assert adds[0]["actor"]["id"] == session.actor.id
    assert len(adds[0]["data"]["prompt"]["positive"]) == 1
    n = len(_records(log_path))
    _key(qtbot, viewer, Qt.Key.Key_Return)
    new = _decisions(_records(log_path, n))
    assert [r["action"] for r in new] == ["proposal.accept"]
    assert new[0]["actor"]["id"] == session.actor.id and new[0]["source"]["kind"] == "model"
    labels = viewer.layers["segmentation"].data
    m, t = labels == 3, truth == 3
    assert 2 * np.logical_and(m, t).sum() / (m.sum() + t.sum()) >= 0.75  # vs phantom truth
    assert w.proposal is None and len(viewer.layers[POSITIVE].data) == 0  # ready for the next
    _key(qtbot, viewer, Qt.Key.Key_Return)  # nothing shown: Enter records nothing
    assert len(_decisions(_records(log_path, n))) == 1
    assert verify_log(log_path).ok


def test_escape_rejects_and_edit_then_enter_edits(setup, qtbot):
    viewer, image, w, truth, session = setup
    log_path = session.log_path_for(image)
    _run(qtbot, viewer, w, _centre(truth == 4), 4)  # left kidney
    n = len(_records(log_path))
    _key(qtbot, viewer, Qt.Key.Key_Escape)
    assert [r["action"] for r in _decisions(_records(log_path, n))] == ["proposal.reject"]
    assert w.proposal is None
    assert (
        "segmentation" not in viewer.layers or not (viewer.layers["segmentation"].data == 4).any()
    )
    p = _run(qtbot, viewer, w, _centre(truth == 3), 3)  # right kidney
    qtbot.mouseClick(w._edit_btn, LEFT)
    layer = viewer.layers[RESULT]
    assert layer.editable and layer.mode == "paint"
    data = layer.data.copy()
    z = int(np.flatnonzero(data.any(axis=(1, 2)))[0])
    data[z] = 0  # the reader erases the top slice of the proposal
    layer.data = data
    n = len(_records(log_path))
    _key(qtbot, viewer, Qt.Key.Key_Return)
    new = _decisions(_records(log_path, n))
    assert [r["action"] for r in new] == ["proposal.edit"]
    assert new[0]["data"]["proposal"] == p.id and new[0]["data"]["changed_vs_proposal"] > 0
    labels = viewer.layers["segmentation"].data
    assert np.array_equal(labels == 3, data > 0)
    assert verify_log(log_path).ok


def test_no_label_is_chosen_for_the_reader(setup, qtbot):
    """The label list names the schema's labels and starts on "choose…": Run without a choice
    records nothing and says why."""
    viewer, image, w, truth, session = setup
    texts = [w._label_combo.itemText(i) for i in range(w._label_combo.count())]
    assert texts[:3] == ["choose the label…", "1", "2"]  # no schema yet: values only
    session.set_schema(image, load_schema("abdomen-ct"))
    w._refresh_labels()
    texts = [w._label_combo.itemText(i) for i in range(w._label_combo.count())]
    names = {lab.value: lab.name for lab in load_schema("abdomen-ct").labels}
    assert texts == ["choose the label…"] + [f"{v} {n}" for v, n in names.items()]
    assert w._label_combo.currentIndex() == 0
    viewer.layers[POSITIVE].add(np.asarray([_centre(truth == 3)], float))
    qtbot.mouseClick(w._run_btn, LEFT)
    assert w.proposal is None and "Choose the label" in w._status.text()
    assert not [r for r in _records(session.log_path_for(image))
                if r["action"].startswith("proposal.")]  # fmt: skip
