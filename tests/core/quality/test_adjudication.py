"""Adjudication: reads from reader logs, decision from the data, signed records, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.agreement_fixtures import GEOM, reader_maps, write_reader_log
from support.trusted_roster import write_roster

from napari_clinlabel.core.annotate.provenance import segment_provenance, walk_provenance
from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.signing import load_private_key, public_key_b64
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.quality.adjudication import (
    adjudicate,
    classify_decision,
    disagreement_map,
    is_adjudicated,
    load_reads,
    merge_reads,
    pairwise_agreement,
    visible_reads,
)
from napari_clinlabel.core.quality.metrics import label_map_agreement

SHA = "ab" * 32
ROLES = {
    "alice": ["annotator"],
    "bob": ["annotator"],
    "carol": ["adjudicator"],
    "dave": ["annotator"],
}  # fmt: skip (erin, an adjudicator without a key, added by hand)


def _reads(tmp_path: Path, sha: str = SHA):
    a, b = reader_maps()
    for r in ("alice", "bob"):
        (tmp_path / r).mkdir(exist_ok=True)
    la = write_reader_log(
        tmp_path / "alice" / "ct.nii.gz.clinlabel.jsonl", a, "alice", image_sha=sha
    )
    lb = write_reader_log(
        tmp_path / "bob" / "ct.nii.gz.clinlabel.jsonl", b, "bob", image_sha=sha, via_model=True
    )
    return load_reads([la, lb], image_sha=SHA), a, b


def _adj_log(tmp_path: Path, who: str = "carol", role: str = "adjudicator") -> AuditLog:
    if not (tmp_path / "clinlabel-roster.toml").exists():  # roles need an owner-signed roster
        write_roster(tmp_path, ROLES, extra='[[users]]\nid = "erin"\nroles = ["adjudicator"]\n')
    (tmp_path / "adj").mkdir(parents=True, exist_ok=True)
    log = AuditLog(
        tmp_path / "adj" / "ct.nii.gz.clinlabel.jsonl",
        {"uid": None, "sha256": SHA},
        Actor(who, who.title(), role),
    )
    log.append("image.open", None, {"shape": [16, 32, 36], "geometry": GEOM.to_dict()})
    return log


def test_reads_disagreement_and_metrics(tmp_path):
    reads, a, b = _reads(tmp_path)
    assert [r.reader for r in reads] == ["alice", "bob"]
    np.testing.assert_array_equal(reads[1].labels, b)
    np.testing.assert_array_equal(disagreement_map(reads), (a != b).astype(np.uint8))
    pair = pairwise_agreement(reads)["alice vs bob"]
    assert pair == label_map_agreement(a, b, GEOM)


def test_accept_reader_is_signed_cites_reads_and_tags_adjudicated(tmp_path):
    reads, a, b = _reads(tmp_path)
    log = _adj_log(tmp_path)  # the roster made carol's key
    adj, sign = adjudicate(log, reads, b, "bob's outline follows the capsule on slices 6-10")
    assert adj["action"] == "adjudicate" and adj["data"]["decision"] == "accept"
    assert adj["data"]["reader"] == "bob" and adj["actor"]["role"] == "adjudicator"
    cites = adj["data"]["reads"]
    assert [c["reader"] for c in cites] == ["alice", "bob"]
    for c, r in zip(cites, reads, strict=True):
        assert (c["seq"], c["hash"]) == (r.head["seq"], r.head["hash"])
        last = Path(r.log_path).read_text().splitlines()[-1]
        assert c["hash"] in last  # the cited hash is the reader log's last record
    assert sign["action"] == "sign" and sign["data"]["meaning"] == "adjudication"
    assert sign["target"] == {"seq": adj["seq"], "hash": adj["hash"]}
    report = verify_log(log.path, public_keys={"carol": public_key_b64(load_private_key("carol"))})
    assert report.ok and report.signatures_checked == 1
    assert is_adjudicated(log.path)
    state = walk_provenance(log.path, "adjudicated")
    np.testing.assert_array_equal(state.labels, b)
    assert {state.tags[t][0] for t in np.unique(state.tag_of_voxel[b > 0])} == {"adjudicated"}
    assert set(segment_provenance(log.path, "adjudicated")) == {1, 2, 3}


def test_decisions_from_data(tmp_path):
    reads, a, b = _reads(tmp_path)
    merged = merge_reads(reads)
    assert classify_decision(merged, reads)["decision"] in ("merge", "accept")
    mixed = a.copy()
    mixed[:8] = b[:8]
    assert classify_decision(mixed, reads) == {"decision": "merge"}
    drawn = a.copy()
    drawn[0, 0, :4] = 7
    assert classify_decision(drawn, reads) == {"decision": "redraw", "voxels_redrawn": 4}
    # majority of three: two readers agree -> their label wins
    third = [reads[0], reads[1], reads[1]]
    np.testing.assert_array_equal(merge_reads(third), b)
    assert merge_reads(reads, "staple").shape == a.shape


def test_refusals_write_nothing(tmp_path):
    reads, a, b = _reads(tmp_path)
    log = _adj_log(tmp_path, "alice")
    size = log.path.stat().st_size
    with pytest.raises(PermissionRefused, match="cannot adjudicate their own reads"):
        adjudicate(log, reads, b, "mine is better")
    annot = _adj_log(tmp_path / "x", "dave", "annotator")
    with pytest.raises(PermissionRefused, match="only an adjudicator"):
        adjudicate(annot, reads, b, "reason")
    carol = _adj_log(tmp_path / "y", "carol")
    size_c = carol.path.stat().st_size
    with pytest.raises(InputError, match="reason"):
        adjudicate(carol, reads, b, "  ")
    nokey = _adj_log(tmp_path / "z", "erin")
    size_n = nokey.path.stat().st_size
    with pytest.raises(Exception, match="no signing key"):
        adjudicate(nokey, reads, b, "reason")
    assert log.path.stat().st_size == size and carol.path.stat().st_size == size_c
    assert nokey.path.stat().st_size == size_n


def test_reads_of_another_image_or_too_few(tmp_path):
    reads, a, b = _reads(tmp_path)
    (tmp_path / "other").mkdir()
    lo = write_reader_log(tmp_path / "other" / "x.clinlabel.jsonl", a, "olga", image_sha="cd" * 32)
    with pytest.raises(InputError, match="log of another image"):
        load_reads([reads[0].log_path, lo], image_sha=SHA)
    with pytest.raises(InputError, match="different images"):
        load_reads([reads[0].log_path, lo])
    with pytest.raises(InputError, match="at least two"):
        load_reads([reads[0].log_path])


def test_blinding(tmp_path):
    reads, _, _ = _reads(tmp_path)
    alice = Actor("alice", "Alice", "annotator")
    assert [r.reader for r in visible_reads(reads, alice, adjudicated=False)] == ["alice"]
    assert len(visible_reads(reads, alice, adjudicated=True)) == 2
    assert len(visible_reads(reads, Actor("carol", "Carol", "adjudicator"), adjudicated=False)) == 2
