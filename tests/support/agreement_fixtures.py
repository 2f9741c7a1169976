"""Builders shared by the agreement, gold-panel and CLI tests: label maps, grade tables, reader logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate.grading import set_grade
from napari_clinlabel.core.annotate.label_edits import (
    diff_between,
    record_label_change,
    record_labels_create,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, accept, add_proposals

GEOM = Geometry((0.8, 0.7, 2.0), (-10.0, 5.0, 30.0), tuple(np.eye(3).ravel()))


def ellipsoid(shape, centre, radii) -> np.ndarray:
    zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in shape)]
    return (
        ((zz - centre[0]) / radii[0]) ** 2
        + ((yy - centre[1]) / radii[1]) ** 2
        + ((xx - centre[2]) / radii[2]) ** 2
    ) <= 1.0


def reader_maps(shape=(16, 32, 36)) -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros(shape, np.uint8)
    b = np.zeros(shape, np.uint8)
    a[ellipsoid(shape, (8, 16, 18), (5, 10, 11))] = 1
    b[ellipsoid(shape, (8, 17, 17), (5, 9, 12))] = 1
    a[ellipsoid(shape, (4, 6, 6), (2, 3, 3))] = 2
    b[ellipsoid(shape, (4, 7, 6), (2, 3, 4))] = 2
    b[ellipsoid(shape, (12, 26, 30), (2, 3, 3))] = 3
    return a, b


def write_map(path: Path, arr: np.ndarray, geom: Geometry = GEOM) -> Path:
    img = geom.apply_to_itk(sitk.GetImageFromArray(arr))
    sitk.WriteImage(img, str(path))
    return path


def write_grades(path: Path, rows: list[tuple[str, str]], header: bool = True) -> Path:
    lines = (["item,grade"] if header else []) + [f"{i},{g}" for i, g in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_reader_log(
    path: Path,
    labels: np.ndarray,
    reader: str,
    image_sha: str = "ab" * 32,
    geom: Geometry = GEOM,
    pending_proposal: bool = False,
    via_model: bool = False,
    grades: dict[str, str] | None = None,
    schema: Any = None,
) -> Path:
    """A reader's log: image.open with geometry, labels.create, then the labels.

    Drawn as one stroke, or (``via_model``) proposed per label by a model and accepted one by one;
    ``pending_proposal`` leaves one more proposal undecided; ``grades`` ({scale id: value}) are
    set per image under ``schema`` (a loaded Schema).
    """
    actor = Actor(reader, reader.title(), "annotator")
    ref = schema.ref() if schema is not None else None
    log = AuditLog(path, {"uid": None, "sha256": image_sha}, actor, ref)
    log.append("image.open", None, {"shape": list(labels.shape), "geometry": geom.to_dict()})
    record_labels_create(log, "Labels", labels.shape, labels.dtype)
    work = np.zeros_like(labels)
    model = {"name": "baseline", "version": "1", "sha256": "cd" * 32}
    if via_model:
        drafts = [
            ProposalDraft("segment", int(v), 0.9, np.flatnonzero(labels == v), labels.shape)
            for v in np.unique(labels[labels > 0])
        ]
        for prop in add_proposals(log, drafts, model):
            accept(log, prop, work, "Labels")
    else:
        idx, old, new = diff_between(work, labels)
        record_label_change(log, work, "Labels", idx, old, new, applied=False)
    if pending_proposal:
        extra = ProposalDraft("segment", 1, 0.5, np.arange(5), labels.shape)
        add_proposals(log, [extra], model)
    for scale_id, value in (grades or {}).items():
        set_grade(log, schema.scales[scale_id], value)
    log.close()
    return path
