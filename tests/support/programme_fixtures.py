"""A tiny programme: roster (owner, 3 annotators, reviewer, adjudicator), design, cases, reads.

Reads are written the way napari writes them (``image.open``, ``labels.create``, a ``label.paint``
diff, a BI-RADS ``grade.set`` and ``image.done``) into the dataset's ``reads/`` folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from napari_clinlabel.core.annotate.grading import mark_done, set_grade
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.image_open import image_open_data, record_image_open
from napari_clinlabel.core.schema import load_schema
from support.trusted_roster import write_roster

USERS = {
    "olga": ["reviewer"],  # the owner is on the roster too (she acts on the dataset log)
    "ann": ["annotator"], "ben": ["annotator"], "cat": ["annotator"],
    "rev": ["reviewer"], "adj": ["adjudicator"],
}  # fmt: skip

DESIGN = """
schemas = ["birads"]
[guideline]
name = "screening"
version = "2.0"
[reading]
readers_per_case = 1
seed = 11
honeypot_rate = 0.1
[[reading.double_read]]
name = "high-risk"
class = "high-risk"
rate = 1.0
[[reading.double_read]]
name = "birads>=4"
grade = "assessment"
at_least = "4A"
rate = 1.0
[[reading.double_read]]
name = "routine"
rate = 0.1
[adjudication]
dice_below = {default = 0.8}
high_stakes_grades = ["assessment"]
"""


def make_programme(
    root: Path, n_cases: int = 20, n_honeypots: int = 2
) -> tuple[Path, list[Path], list[Path]]:
    """The dataset folder (roster signed, design written) and the case files (routine, honeypots)."""
    ds = root / "ds"
    write_roster(ds, USERS, owner="olga")
    (root / "design.toml").write_text(DESIGN)
    images = root / "images"
    images.mkdir()
    cases = []
    for i in range(n_cases):
        p = images / f"case{i:03d}.nii.gz"
        p.write_bytes(b"synthetic %d" % i)  # cases are named files; reads carry the grid
        cases.append(p)
    gold = []
    for i in range(n_honeypots):
        p = images / f"gold{i:02d}.nii.gz"
        p.write_bytes(b"gold %d" % i)
        gold.append(p)
    return ds, cases, gold


def write_read(
    log_path: Path, reader: str, case: str, box: tuple[int, int], grade: str, done: bool = True
) -> None:
    """``reader``'s read of ``case``: a square of label 1 at ``box`` (y0, x0), a grade, done."""
    schema = load_schema("birads")
    image = {"uid": None, "sha256": hashlib.sha256(case.encode()).hexdigest()}
    log = AuditLog(log_path, image, Actor(reader, reader, "annotator"), schema.ref())
    try:
        shape = (16, 16)
        record_image_open(log, image_open_data(shape, np.uint8, geometry=Geometry.identity(2),
                                               modality="MG", source=case + ".nii.gz"))  # fmt: skip
        record_labels_create(log, "labels", shape, np.uint8)
        labels = np.zeros(shape, np.uint8)
        sl = (slice(box[0], box[0] + 6), slice(box[1], box[1] + 6))
        flat = np.ravel_multi_index(np.mgrid[sl].reshape(2, -1), shape)
        old = labels.ravel()[flat].copy()
        labels.ravel()[flat] = 1
        record_label_change(log, labels, "labels", flat, old, np.ones_like(old))
        set_grade(log, schema.scales["assessment"], grade)
        set_grade(log, schema.scales["density"], "b")
        if done:
            mark_done(log, schema)
    finally:
        log.close()
