"""The session's PHI check (no Qt): it decides by roster policy, logs through its own log, and
tells its listeners; a refused image gets no log to annotate into."""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel
from support.dicom_factory import canaries, write_ct_series

from napari_clinlabel._reader import read_layers
from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.glue.session import get_session

PHI = canaries("GLUE")
G = Geometry((0.8, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))


@pytest.fixture
def opened(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    viewers = []  # the session holds its viewer weakly: the test keeps it alive

    def open_series(phi=PHI, policy=None):
        if policy:
            (tmp_path / "clinlabel-roster.toml").write_text(
                f'[policy]\nphi = "{policy}"\n\n[[users]]\nid = "ann"\nroles = ["annotator"]\n'
            )
        write_ct_series(tmp_path / "ct", np.zeros((3, 8, 8), np.int16), G, phi=phi)
        viewer = ViewerModel()
        viewers.append(viewer)
        session = get_session(viewer)
        seen = []
        session.phi_checked.connect(seen.append)
        data, kwargs, _ = read_layers(str(tmp_path / "ct"))[0]
        layer = viewer.add_image(data, **kwargs)
        return session, layer, seen, sidecar_paths(tmp_path / "ct")[0]

    return open_series


def test_warn_policy_logs_through_the_session_and_annotation_goes_on(opened):
    session, layer, seen, log_path = opened()
    (check,) = seen
    assert check.layer is layer and check.inserting and not check.refused
    assert check.decision.policy == "warn" and "PatientName" in check.decision.fields
    recs = list(iter_records(log_path))
    assert [r["action"] for r in recs] == ["image.open", "phi.warning"]
    assert recs[1]["actor"] == session.actor.to_dict()  # the session's actor, its one log
    assert recs[1]["data"]["findings"] == len(check.findings)
    assert not any(v in log_path.read_text() for v in PHI.values())
    assert session.log_for(layer) is session.open_log(layer)
    assert session.check_phi(layer) is check  # scanned and logged once
    assert [r["action"] for r in iter_records(log_path)].count("phi.warning") == 1


def test_refuse_policy_gives_no_log_but_logs_the_deid(opened, tmp_path):
    session, layer, seen, log_path = opened(policy="refuse")
    assert seen[-1].refused and seen[-1].decision.policy == "refuse"
    with pytest.raises(PermissionRefused, match="'ct' holds patient identifiers.*de-identify"):
        session.log_for(layer)
    with pytest.raises(PermissionRefused):
        session.labels_layer_for(layer)
    assert [r["action"] for r in iter_records(log_path)] == ["image.open", "phi.warning"]
    (tmp_path / "safe").mkdir()
    out, report = session.deidentify(layer, tmp_path / "safe")
    assert out.parent == tmp_path / "safe" and report.files_written == 3
    rec = list(iter_records(log_path))[-1]
    assert rec["action"] == "deid" and rec["data"]["out_folder"] == out.name
    assert rec["data"]["files_written"] == 3


def test_an_unreadable_policy_refuses_without_a_record(opened):
    session, layer, seen, log_path = opened(policy="sometimes")
    assert seen[-1].refused and seen[-1].decision is None
    assert "[policy] phi = 'sometimes'" in seen[-1].error
    assert not log_path.exists() or "phi.warning" not in log_path.read_text()


def test_clean_dicom_is_not_reported(opened):
    session, layer, seen, log_path = opened(phi={})
    assert seen == []
    assert [r["action"] for r in iter_records(log_path)] == ["image.open"]


def test_the_labels_layer_derived_from_an_identified_image_is_not_warned_again(opened):
    """Issue 14 item 6: one PHI warning per image, not a second one for its labels layer."""
    session, layer, seen, log_path = opened()
    assert len(seen) == 1 and seen[0].layer is layer
    labels = session.labels_layer_for(layer)  # inserted into the viewer: checked, not announced
    assert labels in session.viewer.layers
    assert len(seen) == 1
    assert session.check_phi(labels).repeat  # the image's outcome, marked as already told
    assert [r["action"] for r in iter_records(log_path)].count("phi.warning") == 1


def test_a_clean_image_is_scanned_once_for_all_its_layers(opened, monkeypatch):
    from napari_clinlabel.glue import phi_check

    scans = []
    real = phi_check.scan_path
    monkeypatch.setattr(phi_check, "scan_path", lambda p: scans.append(p) or real(p))
    session, layer, seen, _ = opened(phi={})
    session.labels_layer_for(layer)
    assert seen == [] and len(scans) == 1
