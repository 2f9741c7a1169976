"""Canary: unique strings in every identifying field; open → annotate → export every format;
no byte written (exports, side files, the sidecar log and its objects, file names) holds one.

The flow the product intends is de-identify first (the PHI guard offers it on open). On the
identified original every non-DICOM output must still be clean; a DICOM SEG of identified data
necessarily repeats the Patient and Study modules (PACS files it with its patient), so there the
canaries may appear in those attributes only — and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from support.dicom_factory import canaries, write_ct_series

from napari_clinlabel._export_writers import write_labels_nifti
from napari_clinlabel._reader import get_reader
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.label_edits import (
    record_label_change,
    record_labels_create,
    record_labels_save,
)
from napari_clinlabel.core.export.gate import FORMATS, export
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.privacy.deid import deidentify
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals
from napari_clinlabel.core.schema import load_schema

CANARY = canaries("QX7K")
SCHEMA = load_schema("abdomen-ct")
ANN = Actor("ann", "Ann Reader", "annotator")
G = Geometry((0.8, 0.8, 2.5), (-40.0, -30.0, 12.0), tuple(np.eye(3).ravel()))
# attributes a SEG must carry over from its source (Patient, General Study modules)
SEG_COPIED = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "OtherPatientIDs", "OtherPatientNames",
    "PatientAge", "PatientWeight", "PatientSize", "PatientComments", "EthnicGroup",
}  # fmt: skip


def _annotate(folder: Path) -> None:
    """Open as napari would (the reader), then paint, accept a proposal, draw a box, save."""
    layers = get_reader(folder)(folder)
    assert layers and layers[0][1]["metadata"]["clinlabel"]["source_path"]
    vol = read_volumes(folder)[0]
    log = AuditLog.for_image(folder, vol.image_ref(), ANN, SCHEMA.ref())
    log.append("image.open", None, {
        "shape": list(vol.spatial_shape), "dtype": str(vol.base.dtype),
        "geometry": vol.geometry.to_dict(), "modality": vol.meta.get("modality"),
        "source": folder.name,
    })  # fmt: skip
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    idx = np.ravel_multi_index(np.nonzero(np.ones((2, 4, 4), bool)), labels.shape) + 50
    record_label_change(log, labels, "labels", idx, labels.reshape(-1)[idx],
                        np.ones(idx.size, np.uint8), applied=False)  # fmt: skip
    mask = np.zeros(labels.shape, bool)
    mask[2:4, 8:12, 8:12] = True
    draft = ProposalDraft("segment", 5, 0.9, np.flatnonzero(mask.reshape(-1)), labels.shape)
    prop = add_proposals(log, [draft], {"name": "seg", "version": "1", "sha256": "f" * 64})[0]
    accept(log, prop, labels, "labels")
    add_box(log, LesionBox((1, 2, 2), (1, 6, 7), "benign", 3, {}, "bx"), vol, SCHEMA)
    record_labels_save(log, labels, "labels")
    log.close()
    return labels, layers[0][1]


def _export_all(folder: Path, out: Path) -> list[Path]:
    out.mkdir()
    written = []
    for fmt in FORMATS:
        if fmt == "tiles-csv":  # per-tile grades of a slide: a CT volume has none to export
            continue
        res = export(folder, fmt, out / f"export-{fmt}", actor=ANN)
        written += [o.path for o in res.outputs]
    return written


def _all_bytes_written(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _hits(paths: list[Path]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in paths:
        raw = p.read_bytes()
        for field, value in CANARY.items():
            if value.encode() in raw or value in str(p):
                found.setdefault(p.name, []).append(field)
    return found


def test_canary_after_deid_every_byte_clean(tmp_path):
    src = tmp_path / "incoming" / "ct"
    write_ct_series(src, np.zeros((4, 16, 16), np.int16), G, phi=CANARY)
    clean = tmp_path / "work" / "deid"
    (tmp_path / "work").mkdir()
    deidentify(src.parent, clean)
    series = clean / "S001"
    labels, attrs = _annotate(series)
    written = _export_all(series, tmp_path / "work" / "out")
    assert {p.suffix for p in written} >= {".gz", ".nrrd", ".mha", ".dcm", ".json", ".csv"}
    attrs["metadata"]["clinlabel_labels"] = {"name": "labels"}
    write_labels_nifti(str(tmp_path / "work" / "out" / "writer.nii.gz"), labels, attrs)
    everything = _all_bytes_written(tmp_path / "work")
    assert any(p.name.endswith(".clinlabel.jsonl") for p in everything)
    assert any(p.parent.name == "objects" for p in everything)
    assert _hits(everything) == {}


def test_canary_identified_source_non_dicom_outputs_and_log_clean(tmp_path):
    src = tmp_path / "ct"
    write_ct_series(src, np.zeros((4, 16, 16), np.int16), G, phi=CANARY)
    _annotate(src)
    written = _export_all(src, tmp_path / "out")
    log_files = [p for p in tmp_path.rglob("*") if p.is_file() and "clinlabel" in str(p)]
    hits = _hits([p for p in written if p.suffix != ".dcm"] + log_files)
    assert hits == {}
    seg_path = next(p for p in written if p.suffix == ".dcm")
    seg = hd.seg.segread(seg_path)
    leaked = {CANARY_FIELD for CANARY_FIELD, v in CANARY.items()
              if v.encode() in seg_path.read_bytes()}  # fmt: skip
    assert leaked <= SEG_COPIED, leaked - SEG_COPIED
    assert str(seg.PatientName) == CANARY["PatientName"]  # the SEG files with its patient


def test_canary_values_are_unique():
    assert len(set(CANARY.values())) == len(CANARY)
