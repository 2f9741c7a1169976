"""Read a DICOM SR TID 1500 (Measurement Report) back into lesion boxes, and import them into a log.

Parsing is highdicom's (``Comprehensive3DSR.from_dataset`` — ``EnhancedSR`` / ``ComprehensiveSR``
for those classes — and the ``MeasurementReport`` accessors),
never by hand. What comes back, per ROI measurement group (TID 1410 planar, TID 1411 volumetric):

- the box id (``box <id>`` tracking identifiers written by :mod:`.sr`; another writer's groups get
  an id derived from their Tracking Unique Identifier), the tracking UID;
- class, confidence and attributes from the qualitative evaluations (the SNOMED CT classes and the
  private ``99CLINLABEL`` codes :mod:`.sr` writes; another writer's evaluations become attributes
  named by their concept's meaning), finding type and site as the ``finding`` / ``location``
  attributes where :mod:`.sr` has a name for them;
- per referenced image, the SCOORD outline in that image's pixel coordinates, and the sizes (mm)
  the group states; the person and device observers, the group's algorithm.

Placing (:func:`place_boxes`): the outlines are in pixel coordinates of the referenced instances
(PS3.3 C.18.6.1.1: (0, 0) is the top-left corner of the top-left pixel, napari's voxel centre ``v``
is ``v + 0.5``), so a box is placed on a series only through the slice index of each referenced
SOP instance on that series' grid; its in-plane extent is the outline's bounding box (a rectangle
written by :mod:`.sr` comes back exactly). Along z a planar group lies on its slice (``z_min ==
z_max``, as a box on one slice is stored); a volumetric group over slices ``a..b`` is as deep as
its stated Depth (mm), centred on those slices: boxes store continuous z edges (a box drawn over
whole slices spans ``a - 0.5 .. b + 0.5``, one made through the API may span ``a .. b``), and
:mod:`.sr` writes Depth from those edges, so the size and volume come back as exported (and the
extent exactly for any box centred on its slices); without a usable Depth, whole slices. Groups without an image outline (a segmentation reference, SCOORD3D)
and distance/RECIST groups are listed in ``skipped`` / ``measurements``, not made into boxes.

Importing (:func:`import_boxes`): opening an SR is not a human decision about each box, so the
import is **one** ``box.import`` record attributed to the human who imported, its ``source`` the
tool (``dicom-sr``) naming the SR's SOP Instance UID, its data every box as ``box.add`` would
hold it plus the SR's provenance of each (tracking UID, observers, algorithm). A box the log
already knows (its box id or its tracking UID, in force or deleted since) is neither imported again
nor re-attributed to the tool: only the others are, and nothing is recorded when none is left (a
report already imported, or this image's own export).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel import __version__ as version
from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    box_record_data,
    boxes_from_records,
    validate_box,
)
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.seg import quiet_person_names
from napari_clinlabel.core.export.sr import _CLASS, _FINDING, _SITE, PRIVATE, box_tracking_uid
from napari_clinlabel.core.image.dicom.seg_read import objects_only
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records

IMPORT_ACTION = "box.import"
TOOL = "dicom-sr"
SR_CLASSES = {  # SOP class -> highdicom's class that parses it
    "1.2.840.10008.5.1.4.1.1.88.22": "EnhancedSR",  # what dcmqi's tid1500writer writes
    "1.2.840.10008.5.1.4.1.1.88.33": "ComprehensiveSR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive3DSR",  # what core.export.sr writes
}
_MEASURE_PREFIXES = ("measurement ", "distance ", "recist ")


@dataclass
class SrOutline:
    """One SCOORD outline: the referenced instance and its (column, row) points."""

    sop_instance_uid: str
    points: np.ndarray


@dataclass
class SrFinding:
    """One ROI measurement group of the report, before it is placed on a series."""

    box_id: str
    tracking_uid: str | None
    outlines: list[SrOutline]
    cls: str | None
    confidence: int | None
    attributes: dict[str, str]
    sizes_mm: dict[str, float]
    algorithm: dict[str, str] | None
    volumetric: bool


@dataclass
class SrReport:
    """What a TID 1500 report holds for boxes (see the module docstring)."""

    path: Path
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    referenced_series_uids: list[str]
    person: str | None
    device: str | None
    findings: list[SrFinding]
    measurements: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def provenance(self, f: SrFinding) -> dict[str, Any]:
        """The SR's account of one finding, as the import record keeps it."""
        return {"tracking_uid": f.tracking_uid, "person_observer": self.person,
                "device_observer": self.device, "algorithm": f.algorithm}  # fmt: skip


def is_sr(ds: Any) -> bool:
    """True when a pydicom dataset is a structured report this module can read."""
    return str(ds.get("SOPClassUID", "")) in SR_CLASSES


def sr_files(path: str | os.PathLike[str]) -> list[Path]:
    """The SR files ``path`` stands for: itself, or every file of a folder holding only SR
    objects (an SR series pulled from a PACS); empty when it is anything else."""
    return objects_only(path, is_sr)


def _key(c: Any) -> tuple[str, str]:
    return (str(c.value), str(c.scheme_designator))


def _reverse(table: dict[str, str]) -> dict[tuple[str, str], str]:
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    out = {}
    for name, kw in table.items():
        code = getattr(codes.SCT, kw, None)
        if code is not None:
            out[(str(code.value), "SCT")] = name
    return out


def _outline(region: Any) -> SrOutline | None:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR need it

    if not isinstance(region, hd.sr.ImageRegion):
        return None  # SCOORD3D or a segmentation reference: no pixel outline
    ref = region.ContentSequence[0].ReferencedSOPSequence[0]
    return SrOutline(str(ref.ReferencedSOPInstanceUID), np.asarray(region.value, dtype=float))


def _algorithm(group: Any) -> dict[str, str] | None:
    vals = {}
    for item in group[0].ContentSequence:
        name = item.ConceptNameCodeSequence[0]
        if (str(name.CodeValue), str(name.CodingSchemeDesignator)) == ("111001", "DCM"):
            vals["name"] = str(item.TextValue)
        elif (str(name.CodeValue), str(name.CodingSchemeDesignator)) == ("111003", "DCM"):
            vals["version"] = str(item.TextValue)
    return vals or None


def _finding(group: Any, volumetric: bool, tables: dict[str, Any]) -> SrFinding | str:
    ident = str(group.tracking_identifier or "")
    uid = None if group.tracking_uid is None else str(group.tracking_uid)
    roi = group.roi
    regions = roi if isinstance(roi, list | tuple) else [roi]
    outlines = [o for o in (_outline(r) for r in regions if r is not None) if o is not None]
    if not outlines:
        return f"{ident or uid}: no image outline (SCOORD) to place a box from"
    if ident.startswith("box "):
        box_id = ident[4:]
    else:
        box_id = hashlib.sha1(str(uid or ident).encode()).hexdigest()[:8]
    cls, conf, attrs = None, None, {}
    for e in group.get_qualitative_evaluations():
        name, value = e.name, e.value
        if _key(name) == ("lesion-class", PRIVATE):
            cls = tables["class"].get(_key(value)) or str(value.meaning)
        elif _key(name) == ("confidence", PRIVATE) and str(value.value).startswith("confidence-"):
            conf = int(str(value.value).split("-", 1)[1])
        else:
            attrs[str(name.meaning)] = str(value.meaning)
    if group.finding_type is not None:
        found = tables["finding"].get(_key(group.finding_type))
        if found:
            attrs["finding"] = found
    for site in group.finding_sites or []:
        found = tables["site"].get(_key(site.value))
        if found:
            attrs["location"] = found
    sizes = {str(m.name.meaning): float(m.value) for m in group.get_measurements()}
    return SrFinding(box_id, uid, outlines, cls, conf, attrs, sizes, _algorithm(group), volumetric)


def _observer(content: Any, kind: Any) -> str | None:
    ctx = content.get_observer_contexts(observer_type=kind)
    if not ctx:
        return None
    for item in ctx[0].observer_identifying_attributes:
        if str(item.name.meaning) in ("Person Observer Name", "Device Observer Name"):
            return str(item.value)
    return None


def read_sr(path: str | os.PathLike[str]) -> SrReport:
    """The boxes (unplaced) and provenance of the TID 1500 report at ``path``."""
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR need it
    import pydicom
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    p = Path(path)
    try:
        ds = pydicom.dcmread(p)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise InputError(f"{p}: not a readable DICOM file ({type(exc).__name__}).") from None
    if not is_sr(ds):
        raise InputError(f"{p}: not a DICOM structured report; open it as an image instead.")
    try:
        with quiet_person_names():  # "Reader1"-style one-component names are the writer's affair
            sr = getattr(hd.sr, SR_CLASSES[str(ds.SOPClassUID)]).from_dataset(ds, copy=False)
        content = sr.content
        planar = content.get_planar_roi_measurement_groups()
        volumetric = content.get_volumetric_roi_measurement_groups()
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise InputError(
            f"{p}: not a TID 1500 measurement report highdicom can read ({exc}); only "
            "measurement reports hold lesion boxes."
        ) from None
    tables = {"class": _reverse(_CLASS), "finding": _reverse(_FINDING), "site": _reverse(_SITE)}
    findings, skipped, measurements = [], [], []
    for groups, vol in ((planar, False), (volumetric, True)):
        for g in groups:
            ident = str(g.tracking_identifier or "")
            if ident.startswith(_MEASURE_PREFIXES):
                measurements.append({
                    "id": ident.split(" ", 1)[1],
                    "lengths_mm": {str(m.name.meaning): float(m.value) for m in g.get_measurements()},
                })  # fmt: skip
                continue
            got = _finding(g, vol, tables)
            (skipped if isinstance(got, str) else findings).append(got)
    for g in content.get_image_measurement_groups():  # distances, RECIST (core.export.sr)
        ident = str(g.tracking_identifier or "")
        if ident.startswith(_MEASURE_PREFIXES):
            measurements.append({
                "id": ident.split(" ", 1)[1],
                "lengths_mm": {str(m.name.meaning): float(m.value) for m in g.get_measurements()},
            })  # fmt: skip
    refs = [str(s.SeriesInstanceUID) for st in ds.get("CurrentRequestedProcedureEvidenceSequence", [])
            for s in st.ReferencedSeriesSequence]  # fmt: skip
    return SrReport(
        path=p,
        sop_instance_uid=str(ds.SOPInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        referenced_series_uids=refs,
        person=_observer(content, codes.DCM.Person),
        device=_observer(content, codes.DCM.Device),
        findings=findings,
        measurements=measurements,
        skipped=skipped,
    )


def _z_extent(f: SrFinding, ks: list[int], spacing_z: float | None) -> tuple[float, float]:
    """z edges of a finding on slices ``ks`` (see the module docstring): its Depth centred on
    them when that is consistent with them, else whole slices."""
    a, b = min(ks), max(ks)
    if a == b and not f.volumetric:
        return float(a), float(a)  # a box on one slice: z_min == z_max == that slice
    whole = (a - 0.5, b + 0.5)
    depth = f.sizes_mm.get("Depth")
    if depth is None or not spacing_z or spacing_z <= 0 or depth <= 0:
        return whole
    n = depth / spacing_z  # slices deep, as box_size_mm computed it on export
    if abs(n - (b - a + 1)) < 1e-3:  # whole slices (a drawn box): exactly, not off by rounding
        return whole
    c = (a + b) / 2
    z0, z1 = round(c - n / 2, 6), round(c + n / 2, 6)
    probe = LesionBox((z0, 0.0, 0.0), (z1, 0.0, 0.0))
    return (z0, z1) if probe.is_3d and probe.slice_range == (a, b) else whole


def place_boxes(
    report: SrReport, sop_uids: list[str], ndim: int, spacing_z: float | None = None
) -> list[LesionBox]:
    """The report's boxes on a series whose slice ``k`` is the instance ``sop_uids[k]`` (one
    instance for a 2D image, ``ndim`` 2) and whose slices are ``spacing_z`` mm apart (gives a
    volumetric box its stated Depth; None: whole slices). Raises :class:`InputError` when a box
    references an instance that is not in that series."""
    index = {uid: k for k, uid in enumerate(sop_uids)}
    boxes = []
    for f in report.findings:
        ks = []
        for o in f.outlines:
            if o.sop_instance_uid not in index:
                raise InputError(
                    f"{report.path.name}: box {f.box_id} is drawn on an image that is not in this "
                    "series; open the series the report was made on."
                )
            ks.append(index[o.sop_instance_uid])
        pts = np.concatenate([o.points for o in f.outlines])
        x0, y0 = pts.min(axis=0) - 0.5
        x1, y1 = pts.max(axis=0) - 0.5
        if ndim == 2:
            lo, hi = (y0, x0), (y1, x1)
        else:
            z0, z1 = _z_extent(f, ks, spacing_z)
            lo, hi = (z0, y0, x0), (z1, y1, x1)
        boxes.append(LesionBox(tuple(map(float, lo)), tuple(map(float, hi)), f.cls, f.confidence,
                               dict(f.attributes), f.box_id))  # fmt: skip
    return boxes


def already_imported(log_path: str | os.PathLike[str], sop_instance_uid: str) -> bool:
    """True when the log holds an import of the report ``sop_instance_uid``."""
    return any(
        r.get("action") == IMPORT_ACTION and (r.get("target") or {}).get("sr") == sop_instance_uid
        for r in iter_records(log_path)
    )


def known_boxes(log_path: str | os.PathLike[str]) -> tuple[set[str], set[str]]:
    """Box ids and tracking UIDs the log knows: every box it ever held (in force or deleted
    since), the UID :mod:`.sr` derives from each id, and the UIDs earlier imports recorded."""
    records = list(iter_records(log_path)) if Path(log_path).exists() else []
    ids = set(boxes_from_records(r for r in records if r.get("action") != "box.delete"))
    uids = {box_tracking_uid(i) for i in ids}
    for r in records:
        if r.get("action") == IMPORT_ACTION:
            for d in (r.get("data") or {}).get("boxes") or []:
                uid = (d.get("sr") or {}).get("tracking_uid")
                if uid:
                    uids.add(str(uid))
    return ids, uids


def new_boxes(
    log_path: str | os.PathLike[str], report: SrReport, boxes: list[LesionBox]
) -> list[LesionBox]:
    """Those of the report's placed ``boxes`` the log does not know yet (:func:`known_boxes`)."""
    ids, uids = known_boxes(log_path)
    by_id = {f.box_id: f for f in report.findings}
    return [b for b in boxes if b.id not in ids and (by_id[b.id].tracking_uid or "") not in uids]


def import_boxes(
    log: AuditLog, report: SrReport, boxes: list[LesionBox], volume: Volume, schema: Any = None
) -> dict[str, Any] | None:
    """Record the report's placed ``boxes`` as one ``box.import`` record (actor: the log's human;
    source: this tool naming the SR's SOP Instance UID) holding only the boxes the log does not
    know yet (:func:`new_boxes`); None, nothing recorded, when it knows them all.

    Every new box is checked as a drawn one would be; one refused box refuses the import, nothing
    recorded."""
    if log.path.exists() and already_imported(log.path, report.sop_instance_uid):
        return None
    fresh = new_boxes(log.path, report, boxes)
    if not fresh:
        return None
    by_id = {f.box_id: f for f in report.findings}
    rows = []
    for b in fresh:
        validate_box(b, volume, schema)
        rows.append({**box_record_data(b, volume.geometry), "sr": report.provenance(by_id[b.id])})
    data = {
        "boxes": rows,
        "sr": {
            "sop_instance_uid": report.sop_instance_uid,
            "series_uid": report.series_uid,
            "file": report.path.name,
            "skipped": report.skipped,
            "already_in_log": sorted({b.id for b in boxes} - {b.id for b in fresh}),
        },  # fmt: skip
    }
    source = {"kind": "tool", "name": TOOL, "version": str(version),
              "sop_instance_uid": report.sop_instance_uid}  # fmt: skip
    return log.append(IMPORT_ACTION, {"sr": report.sop_instance_uid}, data, source)
