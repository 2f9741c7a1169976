"""PHI policy: the roster's [policy] phi decides warn or refuse; what a decision logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.identity import Roster
from napari_clinlabel.core.privacy.deid import DeidReport
from napari_clinlabel.core.privacy.phi_scan import Finding
from napari_clinlabel.core.privacy.policy import (
    decide,
    deid_folder,
    deid_record_data,
    phi_policy,
)

FINDINGS = [
    Finding(Path("a/1.dcm"), "PatientName (0010,0010)", "'J***' (8 chars)", "a/1.dcm"),
    Finding(Path("a/2.dcm"), "PatientName (0010,0010)", "'J***' (8 chars)", "a/2.dcm"),
    Finding(Path("a/2.dcm"), "OtherPatientIDsSequence[0].PatientID", "'1***' (7 chars)", "a/2.dcm"),
]


def test_policy_defaults_to_warn_and_reads_the_roster():
    assert phi_policy(None) == "warn"
    assert phi_policy(Roster(policy={})) == "warn"
    assert phi_policy(Roster(policy={"phi": "Refuse"})) == "refuse"
    with pytest.raises(ClinlabelError, match=r"clinlabel-roster.toml: \[policy\] phi = 'block'"):
        phi_policy(Roster(path=Path("clinlabel-roster.toml"), policy={"phi": "block"}))


def test_a_decision_logs_counts_and_field_names_never_values():
    assert decide([], None) is None
    d = decide(FINDINGS, Roster(policy={"phi": "refuse"}))
    assert d.refused and d.record_data() == {
        "findings": 3,
        "files": 2,
        "fields": ["OtherPatientIDsSequence", "PatientName"],
        "policy": "refuse",
    }
    assert "J***" not in str(d.record_data()) and not decide(FINDINGS, None).refused


def test_deid_record_and_folder_name():
    rep = DeidReport(files_in=3, files_written=2, skipped=[{"file": 1, "reason": "x"}],
                     private_removed=4, uids_replaced=5)  # fmt: skip
    rep.actions[("(0010,0010) PatientName", "Z")] = 2
    out = deid_folder("/tmp/parent")
    assert out.parent == Path("/tmp/parent") and out.name[5:].isalpha() and len(out.name) == 13
    assert deid_record_data(rep, out) == {
        "files_in": 3, "files_written": 2, "skipped": 1, "changes": 2,
        "private_tags_removed": 4, "uids_replaced": 5, "out_folder": out.name,
        "options": [], "codes": ["113100"],  # the Basic Profile alone
    }  # fmt: skip
