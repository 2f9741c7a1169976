"""The Python API: annotate an image headless, writing the same sidecar log napari writes.

A small facade over ``core`` for scripts, the ``clinlabel`` command line and tests::

    from napari_clinlabel import api

    ann = api.Actor("ana", "Ana Ruiz", role="annotator")
    with api.open_image("ct.nii.gz", ann, schema="abdomen-ct") as image:
        image.paint(liver_mask, 1)
        for proposal in image.prelabel("builtin:baseline"):
            image.reject(proposal)
        image.export("nifti", "ct_labels.nii.gz")
    assert api.verify_log("ct.nii.gz").ok

Every call is one human action and one record (``label.paint``, ``box.add``, ``grade.set``,
``proposal.add`` per proposal, ``proposal.accept|edit|reject``, ``export``), attributed to the
actor given to :func:`open_image`; work a model did names the model in ``source``. Opening writes
the ``image.open`` record napari writes (``core.log.image_open``), labels live in the acting
reader's own labels array as in napari (``"segmentation"``, or ``"segmentation (<id>)"`` for a
later reader of a shared log; another reader's read stays hidden from an annotator until
adjudication), so a log written here replays and verifies like one written in napari. There is no bulk accept: each proposal is decided on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.api.session import LABELS, AnnotationSession, schema_of
from napari_clinlabel.core.annotate.boxes import LesionBox
from napari_clinlabel.core.annotate.grading import Grade
from napari_clinlabel.core.annotate.reads import require_readable, shared_by_readers
from napari_clinlabel.core.annotate.replay import replay_labels as _replay_labels
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.gate import ExportResult
from napari_clinlabel.core.image import samples
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.acting import require_granted
from napari_clinlabel.core.log.audit_log import sidecar_paths
from napari_clinlabel.core.log.authority import verify_trusted
from napari_clinlabel.core.log.identity import (
    Actor,
    Roster,
    current_actor,
    find_roster,
    load_roster,
)
from napari_clinlabel.core.log.reader import iter_records
from napari_clinlabel.core.log.resample import (
    read_resampled,
    record_resample,
    require_recorded_grid,
)
from napari_clinlabel.core.log.verify import VerifyReport
from napari_clinlabel.core.proposals.model import Proposal, ProposalState
from napari_clinlabel.core.schema import Schema, load_schema

SAMPLE_FILES = {  # sample name -> file written by write_sample (the format clinics send it in)
    "ct": "ct_phantom.nii.gz",
    "ct_oblique": "ct_phantom_oblique.nii.gz",
    "mammogram": "mammogram/mammogram.dcm",
    "fundus": "fundus.png",
    "slide": "slide.tif",
}


def write_sample(name: str, folder: str | os.PathLike[str]) -> Path:
    """Write sample image ``name`` (see :data:`SAMPLE_FILES`) into ``folder`` once; its path.

    ``mammogram`` is a DICOM MG file, ``slide`` a tiled TIFF, the others NIfTI/PNG.
    """
    if name not in SAMPLE_FILES:
        raise InputError(f"No sample {name!r}; choose one of {', '.join(SAMPLE_FILES)}.")
    path = Path(folder) / SAMPLE_FILES[name]
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if name == "slide":
        samples.write_slide_tiff(path)
    elif name == "mammogram":
        samples.write_mammogram_dicom(path)
    else:
        tmp = path.with_name(f".tmp-{path.name}")
        sitk.WriteImage(samples.SAMPLES[name]().to_itk(), str(tmp), True)
        tmp.replace(path)
    return path


class UnevenSpacingError(InputError):
    """The series opens as evenly spaced blocks (uneven slice spacing) and none was chosen;
    the message names the API's ways (``series=``, ``resample=``), a CLI names its flags."""


def open_image(
    path: str | os.PathLike[str],
    actor: Actor | None = None,
    *,
    schema: str | os.PathLike[str] | Schema | None = None,
    series: int | None = None,
    resample: bool | float = False,
) -> AnnotationSession:
    """Open an image and its sidecar log as ``actor`` (default: the signed-in user).

    Parameters
    ----------
    path : an image file (NIfTI, NRRD, MHA, DICOM, TIFF, PNG) or a DICOM series folder.
    actor : the human acting; a roster beside the image must grant them their role.
    schema : the segmentation schema in force (a built-in name, a file, or a loaded Schema).
    series : which series, when ``path`` holds several (an uneven series: which even block).
    resample : a DICOM series with uneven spacing (or a missing slice) resampled to even slices:
        ``True`` (the spacing its log last recorded, else the smallest step) or a spacing in mm.
        Its log is ``<folder>.resampled.clinlabel.jsonl``; the request is its ``image.resample``
        record, right after ``image.open``; exports of its labels go back onto the original
        slices, one output per even block.

    Writes the ``image.open`` record; close the session (or use ``with``) when done.
    """
    if resample is not False:
        spacing = None if resample is True else float(resample)
        volume = read_resampled(path, spacing)
        require_recorded_grid(volume)
        base = Path(volume.meta["log_base"])  # its own log: <folder>.resampled.clinlabel.jsonl
        if actor is None:
            actor = current_actor(near=base)
        else:
            require_granted(find_roster(base), actor)
        session = AnnotationSession(volume, base, actor, schema_of(schema))
        record_resample(session.log, volume)
        return session
    volumes = read_volumes(path)
    if series is None and len(volumes) > 1 and all(v.meta.get("slice_block") for v in volumes):
        raise UnevenSpacingError(
            f"{Path(path).name}: uneven slice spacing: the series opens as {len(volumes)} evenly "
            f"spaced blocks; pass series=0..{len(volumes) - 1} for one block, or resample=True "
            "(CLI: --resample) to annotate it as one volume resampled (the request is logged)."
        )
    if series is None and len(volumes) != 1:
        raise InputError(
            f"{Path(path).name}: holds {len(volumes)} images; pass series=0..{len(volumes) - 1} "
            "or the files of one series."
        )
    if series is not None and not 0 <= series < len(volumes):
        raise InputError(f"{Path(path).name}: has no series {series} (0..{len(volumes) - 1}).")
    volume = volumes[series or 0]
    source = volume.source_path or Path(path)
    if actor is None:
        actor = current_actor(near=source)
    else:
        require_granted(find_roster(source), actor)
    return AnnotationSession(volume, source, actor, schema_of(schema))


def verify_log(
    path: str | os.PathLike[str], *, roster: Roster | str | os.PathLike[str] | None = None
) -> VerifyReport:
    """Verify an image's sidecar log (give the image or the ``.clinlabel.jsonl`` itself).

    Exactly what ``clinlabel log verify`` and ``clinlabel report`` check: chain, objects, roles and
    signatures against ``roster`` (default: the roster in force beside the log) and every
    witnessed head of the log.
    """
    log_path = Path(path) if str(path).endswith(".clinlabel.jsonl") else sidecar_paths(path)[0]
    if roster is None:
        roster = find_roster(log_path)
    elif not isinstance(roster, Roster):
        roster = load_roster(roster)
    return verify_trusted(log_path, roster)[0]


def final_labels(
    path: str | os.PathLike[str], name: str = LABELS, actor: Actor | None = None
) -> np.ndarray:
    """The labels array ``name`` as the image's log replays to (after verifying it).

    In a log several readers share, another reader's read is refused to an annotator until the
    image is adjudicated, as everywhere else; ``actor`` defaults to the signed-in user.
    """
    log_path = Path(path) if str(path).endswith(".clinlabel.jsonl") else sidecar_paths(path)[0]
    records = list(iter_records(log_path))
    if actor is not None or shared_by_readers(records):  # a shared log: it depends on who asks
        roster = find_roster(log_path)
        if actor is None:
            who = current_actor(near=log_path)
        else:  # a role is what a signed roster grants, not what the caller claims
            require_granted(roster, actor)
            who = actor
        require_readable(records, name, who, roster, log_path.name, "Nothing was returned.")
    labels = _replay_labels(log_path).labels
    if name not in labels:
        raise InputError(
            f"{log_path.name}: holds no labels {name!r} (it has: {', '.join(labels) or 'none'})."
        )
    return labels[name]


__all__ = [
    "LABELS",
    "SAMPLE_FILES",
    "UnevenSpacingError",
    "Actor",
    "AnnotationSession",
    "ExportResult",
    "Grade",
    "LesionBox",
    "Proposal",
    "ProposalState",
    "VerifyReport",
    "final_labels",
    "load_schema",
    "open_image",
    "verify_log",
    "write_sample",
]
