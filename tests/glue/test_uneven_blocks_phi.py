"""An unevenly spaced series opened as its even blocks (napari File > Open) whose files hold
patient identifiers: both blocks stay open under the "warn" policy, the folder's log holds one
``phi.warning`` (the first block's), and the second block — which that log cannot record — says
so in one line naming the ways to annotate it, never "policy refuses annotation".

Oracles: the synthetic writer's known PHI attributes (pydicom reads them back from the files) and
the log's own reader; the block slice ranges from each file's ImagePositionPatient.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from napari.components import ViewerModel
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel._reader import read_layers
from napari_clinlabel.core.errors import ClinlabelError, PermissionRefused
from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths
from napari_clinlabel.glue.session import get_session

OFFSETS = [0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0]  # 2 mm then 1 mm: blocks of 4 and 3 slices


@pytest.fixture
def blocks(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    viewers = []  # the session holds its viewer weakly: the test keeps it alive

    def open_blocks(policy=None):
        if policy:
            (tmp_path / "clinlabel-roster.toml").write_text(
                f'[policy]\nphi = "{policy}"\n\n[[users]]\nid = "ann"\nroles = ["annotator"]\n'
            )
        ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
        assert str(pydicom.dcmread(ws.files[0]).PatientName)  # the files carry identifiers
        viewer = ViewerModel()
        viewers.append(viewer)
        session = get_session(viewer)
        seen, errors = [], []
        session.phi_checked.connect(seen.append)
        session.report_error = errors.append
        layers = [viewer.add_image(d, **kw) for d, kw, _ in read_layers(str(tmp_path / "ct"))]
        return session, layers, seen, errors, sidecar_paths(tmp_path / "ct")[0]

    return open_blocks


def test_second_block_stays_open_and_says_why_it_is_not_logged(blocks):
    session, layers, seen, errors, log_path = blocks()
    assert [ly.data.shape[0] for ly in layers] == [4, 3]
    assert [c.refused for c in seen] == [False]  # told once: the second block repeats it
    second = session.check_phi(layers[1])
    assert second is not None and not second.refused and second.repeat
    recs = list(iter_records(log_path))
    assert [r["action"] for r in recs] == ["image.open", "phi.warning"]  # first block's
    assert len(errors) == 1
    msg = str(errors[0])
    assert "\n" not in msg and "slices 5-7 of 7" in msg and "Open DICOM resampled" in msg
    assert "own series" in msg and "policy refuses" not in msg
    assert "belongs to another image" not in msg
    with pytest.raises(ClinlabelError) as exc:
        session.log_for(layers[1])
    assert "not logged" in str(exc.value) and "Open DICOM resampled" in str(exc.value)
    assert session.log_for(layers[0]) is session.open_log(layers[0])  # the first one annotates
    assert [r["action"] for r in iter_records(log_path)] == ["image.open", "phi.warning"]


def test_refuse_policy_still_refuses_both_blocks(blocks):
    session, layers, seen, _errors, log_path = blocks(policy="refuse")
    assert seen[0].refused and session.check_phi(layers[1]).refused
    for layer in layers:
        with pytest.raises(PermissionRefused):
            session.log_for(layer)
    acts = [r["action"] for r in iter_records(log_path)]
    assert acts == ["image.open", "phi.warning"] and np.all([s.findings for s in seen])
