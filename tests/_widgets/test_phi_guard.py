"""PHI guard: a DICOM layer holding PHI warns (or is refused) with a one-click de-identify; both logged."""

from __future__ import annotations

import numpy as np
import pytest
from support.dicom_factory import canaries, write_ct_series  # noqa: E402

from napari_clinlabel._widgets import phi_guard
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.core.privacy.phi_scan import scan_path

pytestmark = pytest.mark.gui
PHI = canaries("GUARD")
G = Geometry((0.8, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))


def _add(viewer, folder):
    vol = read_volumes(folder)[0]
    meta = {**vol.meta, "geometry": vol.geometry.to_dict()}
    return viewer.add_image(vol.array, name="ct", metadata={"clinlabel": meta})


@pytest.fixture
def notes(monkeypatch):
    seen = []
    monkeypatch.setattr(phi_guard, "_notify", lambda m, s, a: seen.append((m, s, a)))
    return seen


def test_warn_then_one_click_deid(make_napari_viewer, tmp_path, monkeypatch, notes):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), G, phi=PHI)
    viewer = make_napari_viewer()
    layer = _add(viewer, tmp_path / "ct")
    findings = phi_guard.check_layer_for_phi(viewer, layer)
    assert findings and layer in viewer.layers
    msg, severity, actions = notes[-1]
    assert severity == "warning" and "patient identifiers" in msg
    assert not any(v in msg for v in PHI.values())
    log = sidecar_paths(tmp_path / "ct")[0]
    rec = [r for r in iter_records(log) if r["action"] == "phi.warning"][-1]
    assert rec["data"]["policy"] == "warn" and "PatientName" in rec["data"]["fields"]
    assert not any(v in log.read_text() for v in PHI.values())
    # the one click
    (tmp_path / "safe").mkdir()
    monkeypatch.setattr(phi_guard, "_ask_folder", lambda: str(tmp_path / "safe"))
    chosen = phi_guard.DeidOptions(retain_temporal=True)
    monkeypatch.setattr(phi_guard, "_ask_options", lambda: chosen)
    label, callback = actions[0]
    assert label == phi_guard.DEID_ACTION
    n_layers = len(viewer.layers)
    callback(None)
    out = next((tmp_path / "safe").iterdir())
    assert scan_path(out) == []
    rec = [r for r in iter_records(log) if r["action"] == "deid"][-1]
    assert rec["data"]["files_written"] == 3 and rec["data"]["out_folder"] == out.name
    assert rec["data"]["options"] == ["retain_temporal"] and "113107" in rec["data"]["codes"]
    # the de-identified copy is open in place of the original
    assert len(viewer.layers) == n_layers and layer not in viewer.layers


def test_refuse_policy_removes_the_image(make_napari_viewer, tmp_path, monkeypatch, notes):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    (tmp_path / "clinlabel-roster.toml").write_text(
        '[policy]\nphi = "refuse"\n\n[[users]]\nid = "ann"\nname = "Ann"\nroles = ["annotator"]\n'
    )
    write_ct_series(tmp_path / "ct", np.zeros((2, 6, 6), np.int16), G, phi=PHI)
    viewer = make_napari_viewer()
    layer = _add(viewer, tmp_path / "ct")
    assert phi_guard.check_layer_for_phi(viewer, layer)
    assert layer not in viewer.layers
    assert notes[-1][1] == "error" and "refuses annotation" in notes[-1][0]
    rec = [
        r for r in iter_records(sidecar_paths(tmp_path / "ct")[0]) if r["action"] == "phi.warning"
    ]
    assert rec[-1]["data"]["policy"] == "refuse"


def test_clean_or_non_dicom_layers_pass(make_napari_viewer, tmp_path, notes):
    write_ct_series(tmp_path / "ct", np.zeros((2, 6, 6), np.int16), G)
    viewer = make_napari_viewer()
    assert phi_guard.check_layer_for_phi(viewer, _add(viewer, tmp_path / "ct")) == []
    assert phi_guard.check_layer_for_phi(viewer, viewer.add_image(np.zeros((4, 4)))) == []
    assert notes == []


def test_session_checks_every_opened_dicom_layer(make_napari_viewer, tmp_path, monkeypatch, notes):
    """Opening identified DICOM while the plugin's session runs warns without any widget call."""
    from napari_clinlabel.glue.session import get_session

    monkeypatch.setenv("CLINLABEL_USER", "ann")
    write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), G, phi=PHI)
    viewer = make_napari_viewer()
    get_session(viewer)  # what docking any plugin widget does
    layer = viewer.open(str(tmp_path / "ct"), plugin="napari-clinlabel")[0]
    assert layer in viewer.layers
    assert notes and notes[-1][1] == "warning"
    log = sidecar_paths(tmp_path / "ct")[0]
    assert [r["action"] for r in iter_records(log)].count("phi.warning") == 1


def test_session_refuses_identified_dicom_by_policy(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, notes
):
    from napari_clinlabel.glue.session import get_session

    monkeypatch.setenv("CLINLABEL_USER", "ann")
    write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), G, phi=PHI)
    (tmp_path / "clinlabel-roster.toml").write_text(
        '[policy]\nphi = "refuse"\n\n[[users]]\nid = "ann"\nrole = "annotator"\n'
    )
    viewer = make_napari_viewer()
    get_session(viewer)
    viewer.open(str(tmp_path / "ct"), plugin="napari-clinlabel")
    qtbot.waitUntil(lambda: len(viewer.layers) == 0, timeout=5000)
    assert notes[-1][1] == "error" and "refuses annotation" in notes[-1][0]


def test_one_warning_per_image_not_again_for_its_labels_layer(
    make_napari_viewer, qtbot, tmp_path, monkeypatch, notes
):
    """Issue 14 item 6: 'Segment this image' on an identified CT adds its labels layer without a
    second PHI warning; the log holds one phi.warning."""
    from qtpy.QtCore import Qt

    from napari_clinlabel._widgets.segmentation import SegmentationWidget

    monkeypatch.setenv("CLINLABEL_USER", "ann")
    write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), G, phi=PHI)
    viewer = make_napari_viewer()
    _add(viewer, tmp_path / "ct")
    widget = SegmentationWidget(viewer)  # the session starts: the open image is checked
    qtbot.addWidget(widget)
    warned = [m for m, s, _ in notes if "patient identifiers" in m]
    assert len(warned) == 1
    qtbot.mouseClick(widget._start_btn, Qt.MouseButton.LeftButton)
    assert widget._labels is not None and widget._labels in viewer.layers
    assert [m for m, s, _ in notes if "patient identifiers" in m] == warned
    log = sidecar_paths(tmp_path / "ct")[0]
    assert [r["action"] for r in iter_records(log)].count("phi.warning") == 1
