"""DICOM SR TID 1500 (Measurement Report, highdicom ``Comprehensive3DSR``) of boxes and grades.

Content, per lesion box, one measurement group:
- a box on one slice → TID 1410 *planar* ROI group, a box over slices ``a..b`` → TID 1411
  *volumetric* ROI group with one rectangle per slice. Rectangles are closed SCOORD POLYLINEs in
  the referenced slice's pixel coordinates (PS3.3 C.18.6.1.1: (0, 0) is the top-left corner of
  the top-left pixel, so napari's voxel centre ``v`` is ``v + 0.5``), so oblique or tilted
  series need no world coordinates;
- Tracking Identifier = the box id, Tracking Unique Identifier derived from it;
- Finding type from the ``finding`` attribute, finding site from ``location`` (SNOMED CT codes
  from pydicom's code dictionary where it holds them, ``Lesion`` / no site otherwise);
- Width (x) and Height (y) in mm, plus Depth in mm and Volume in mL for volumetric boxes;
- qualitative evaluations: class (SNOMED CT Benign / Malignant / Indeterminate), confidence and
  the other attributes (private scheme, below).

Per distance or RECIST measurement (``measure.add``, core.annotate.measurements), one TID 1501
measurement group (tracking identifier ``measurement <id>``; TID 1410 allows no per-measurement
coordinates, and RECIST has two lines): each length a TID 300 measurement of CID 7470 — SCT
410668003 Length for a distance, SCT 103339001 Long axis and SCT 103340004 Short axis for RECIST
(finding type Lesion) — in mm, inferred from its own line. A line on a slice of the series is an
SCOORD POLYLINE on that slice's image (the group's source image); one drawn in a reformatted
(coronal/sagittal) view is an SCOORD3D POLYLINE in patient mm.

Per grade in force on the image or study, one TID 1501 group with a qualitative evaluation:
BI-RADS assessment (concept DCM 111005 "Assessment Category"; categories 0–5 by their SNOMED CT
codes, CID 6026), breast composition (concept SCT 129715009; a–d by SNOMED CT, CID 6000/6001),
ISUP grade groups 1–3 (SNOMED CT 1279715000, 1279714001, 1279716004). Grade groups 4 and 5 exist
in SNOMED CT only per Gleason pattern pair, which the scale does not record, BI-RADS 4A/4B/4C and 6
have no code in those CIDs, ICDR has none at all: those use the private coding scheme
``99CLINLABEL`` (``<scale>-<value>``, e.g. ``icdr-dr-3``), documented in the README.

Observers: the person observer is the human who drew or confirmed every item (a report has one;
items confirmed by several people are refused, as for DICOM SEG); when any item began as a model
proposal, the model is the device observer (UID derived from its sha256) and names itself as the
algorithm of each such group (``algorithm_id``).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from napari_clinlabel import __version__ as version
from napari_clinlabel.core.annotate.boxes import LesionBox, box_size_mm, box_volume_ml, load_boxes
from napari_clinlabel.core.annotate.grading import Grade, is_image_item, load_grades
from napari_clinlabel.core.annotate.measurements import measurements_in_log
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.seg import (
    SOFTWARE,
    _person_name,
    minimize_identifiers,
    order_by_grid,
    prepare_sources,
    quiet_person_names,
    seg_bytes,
    source_series_datasets,
)
from napari_clinlabel.core.image.geometry import Geometry

PRIVATE = "99CLINLABEL"
_MM = Code("mm", "UCUM", "millimeter")
_ML = Code("ml", "UCUM", "milliliter")
_NO_UNIT = Code("1", "UCUM", "no units")

# scale id → (concept name, {value: code}); values missing here are coded in PRIVATE
_BIRADS = {
    "0": ("397138000", "Mammography assessment (Category 0) - Need additional imaging evaluation"),
    "1": ("397140005", "Mammography assessment (Category 1) - Negative"),
    "2": ("397141009", "Mammography assessment (Category 2) - Benign finding"),
    "3": ("397143007", "Mammography assessment (Category 3) - Probably benign finding"),
    "4": ("397144001", "Mammography assessment (Category 4) - Suspicious abnormality"),
    "5": ("397145000", "Mammography assessment (Category 5) - Highly suggestive of malignancy"),
}
_DENSITY = {
    "a": ("129716005", "Almost entirely fat"),
    "b": ("129717001", "Scattered fibroglandular densities"),
    "c": ("129718006", "Heterogeneously dense"),
    "d": ("129719003", "Extremely dense"),
}
_ISUP = {
    "1": ("1279715000", "ISUP grade group 1 (Gleason score 3 + 3 = 6)"),
    "2": ("1279714001", "ISUP grade group 2 (Gleason score 3 + 4 = 7)"),
    "3": ("1279716004", "ISUP grade group 3 (Gleason score 4 + 3 = 7)"),
}
GRADE_CODES: dict[str, tuple[Code, dict[str, tuple[str, str]]]] = {
    "assessment": (Code("111005", "DCM", "Assessment Category"), _BIRADS),
    "density": (Code("129715009", "SCT", "Breast composition"), _DENSITY),
    "isup": (Code("isup", PRIVATE, "ISUP grade group"), _ISUP),
}
# box attributes with SNOMED CT codes in pydicom's dictionary (keyword per value)
_FINDING = {"mass": "Mass", "nodule": "Nodule", "cyst": "Cyst",
            "calcification": "CalcificationOfBreast", "asymmetry": "AsymmetricBreastTissue",
            "architectural distortion": "ArchitecturalDistortionOfBreast"}  # fmt: skip
_SITE = {"liver": "Liver", "lung": "Lung", "kidney": "Kidney",
         "upper outer quadrant": "UpperOuterQuadrantOfBreast",
         "upper inner quadrant": "UpperInnerQuadrantOfBreast",
         "lower outer quadrant": "LowerOuterQuadrantOfBreast",
         "lower inner quadrant": "LowerInnerQuadrantOfBreast",
         "retroareolar": "SubareolarRegion", "axillary tail": "AxillaryTail"}  # fmt: skip
_CLASS = {"benign": "Benign", "malignant": "Malignant", "indeterminate": "Indeterminate"}


def _sct(keyword: str) -> Code | None:
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    try:
        return getattr(codes.SCT, keyword)
    except AttributeError:
        return None


def _private(value: str, meaning: str) -> Code:
    """A code of the private scheme; a value over 16 characters (SH) keeps 7 and a digest."""
    if len(value) > 16:
        value = f"{value[:7]}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"
    return Code(value, PRIVATE, meaning[:64])


@functools.lru_cache(maxsize=4096)
def _concept(value: str, scheme: str, meaning: str) -> Any:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it

    return hd.sr.CodedConcept(value, scheme, meaning)


def _cc(code: Code) -> Any:
    """highdicom's CodedConcept of ``code``, built once per code: highdicom converts every
    pydicom Code it is given (~0.2 ms each, thousands per report); the same concept item may
    appear in many groups, as nothing changes it after construction."""
    return _concept(str(code.value), str(code.scheme_designator), str(code.meaning))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(text).lower()).strip("-")


def grade_code(scale_id: str, value: str, label: str) -> tuple[Code, Code]:
    """(concept name, value code) of one grade: standard codes where they exist, else private."""
    name, table = GRADE_CODES.get(scale_id, (None, {}))
    if name is None:
        name = _private(_slug(scale_id), f"{scale_id} grade")
    hit = table.get(str(value))
    if hit is not None:
        return name, Code(hit[0], "SCT", hit[1])
    return name, _private(f"{_slug(scale_id)}-{_slug(value)}", label or str(value))


@dataclass
class Observed:
    """A box, grade or measurement (a ``measure.add`` row of core.annotate.measurements) with
    who confirmed it and the model it came from (None: drawn by hand)."""

    item: LesionBox | Grade | dict[str, Any]
    actor_id: str
    model: dict[str, Any] | None


def _uid_from(text: str) -> str:
    return str(generate_uid(entropy_srcs=[text]))


def box_tracking_uid(box_id: str) -> str:
    """The Tracking Unique Identifier this module writes for box ``box_id`` (derived from it)."""
    return _uid_from(f"clinlabel-box-{box_id}")


def _algorithm(model: dict[str, Any] | None) -> Any:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it

    if not model:
        return None
    return hd.sr.AlgorithmIdentification(
        name=str(model.get("name", "model"))[:64], version=str(model.get("version", "?"))[:64]
    )


def _rectangle(box: LesionBox) -> np.ndarray:
    """Closed polyline (column, row) of the box's in-plane rectangle, DICOM pixel coordinates."""
    y0, x0 = box.zyx_min[-2] + 0.5, box.zyx_min[-1] + 0.5
    y1, x1 = box.zyx_max[-2] + 0.5, box.zyx_max[-1] + 0.5
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=np.float64)


def _region(templates: dict[str, Any], ds: Dataset, rect: np.ndarray) -> Any:
    """An SCOORD image region on ``ds``: highdicom builds the first one per SOP class (its
    constructor looks the class up in the IOD tables, ~15 ms), later ones are copies of it with
    the instance and the coordinates replaced (a pickle round trip: half a deep copy's time)."""
    import highdicom as hd

    sop_class = str(ds.SOPClassUID)
    if sop_class not in templates:
        templates[sop_class] = pickle.dumps(hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=rect,
            source_image=hd.sr.SourceImageForRegion(sop_class, str(ds.SOPInstanceUID)),
        ))  # fmt: skip
    region = pickle.loads(templates[sop_class])  # noqa: S301 - bytes pickled just above
    region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID = str(
        ds.SOPInstanceUID
    )
    region.GraphicData = [float(v) for v in rect.ravel()]
    return region


def _box_group(
    o: Observed, by_k: Sequence[Dataset], geometry: Geometry, templates: dict[str, Any]
) -> Any:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    box: LesionBox = o.item  # type: ignore[assignment]
    rng = box.slice_range or (0, 0)
    if not (0 <= rng[0] <= rng[1] < len(by_k)):
        raise ExportError(f"Box {box.id} lies on slices {rng} outside the series; redraw it.")
    rect = _rectangle(box)
    regions = [_region(templates, by_k[k], rect) for k in range(rng[0], rng[1] + 1)]
    size = box_size_mm(box, geometry)  # napari order: (z,) y, x
    ms = [
        hd.sr.Measurement(
            name=_cc(codes.SCT.Width), value=round(float(size[-1]), 4), unit=_cc(_MM)
        ),
        hd.sr.Measurement(
            name=_cc(codes.DCM.Height), value=round(float(size[-2]), 4), unit=_cc(_MM)
        ),
    ]
    attrs = dict(box.attributes)
    finding = _sct(_FINDING.get(str(attrs.pop("finding", "")).lower(), "")) or codes.SCT.Lesion
    site_kw = _SITE.get(str(attrs.pop("location", "")).lower())
    sites = [hd.sr.FindingSite(_cc(_sct(site_kw)))] if site_kw and _sct(site_kw) else None
    evals = []
    if box.cls is not None:  # a class no human chose is left out, never written as "None"
        cls = _sct(_CLASS.get(str(box.cls).lower(), ""))
        evals.append(hd.sr.QualitativeEvaluation(
            _cc(_private("lesion-class", "Lesion class")),
            _cc(cls or _private(f"class-{_slug(box.cls)}", str(box.cls)))))  # fmt: skip
    if box.confidence is not None:
        evals.append(hd.sr.QualitativeEvaluation(
            _cc(_private("confidence", "Reader confidence (1-5)")),
            _cc(_private(f"confidence-{int(box.confidence)}", f"Confidence {int(box.confidence)}"))))  # fmt: skip
    for key, val in sorted(attrs.items()):
        evals.append(hd.sr.QualitativeEvaluation(
            _cc(_private(f"attr-{_slug(key)}", str(key))),
            _cc(_private(f"{_slug(key)}-{_slug(val)}", str(val)))))  # fmt: skip
    common = dict(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=box_tracking_uid(box.id), identifier=f"box {box.id}"
        ),
        finding_type=_cc(finding),
        finding_sites=sites,
        algorithm_id=_algorithm(o.model),
        qualitative_evaluations=evals,
    )
    if rng[1] > rng[0]:
        ms.append(hd.sr.Measurement(name=_cc(codes.SCT.Depth), value=round(float(size[0]), 4),
                                    unit=_cc(_MM)))  # fmt: skip
        ms.append(hd.sr.Measurement(name=_cc(codes.SCT.Volume),
                                    value=round(float(box_volume_ml(box, geometry)), 6), unit=_cc(_ML)))  # fmt: skip
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_regions=regions, measurements=ms, **common
        )
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=regions[0], measurements=ms, **common
    )


def _measure_group(o: Observed, by_k: Sequence[Dataset], geometry: Geometry) -> Any:
    """One distance or RECIST measurement (a ``measure.add`` row of core.annotate.measurements)
    as a TID 1501 measurement group: each length a TID 300 measurement (CID 7470: SCT Length, or
    SCT Long axis / Short axis) inferred from its own line. A line in a slice of the series is an
    SCOORD POLYLINE on that slice's image (pixel coordinates; the image is the group's source);
    one drawn in a reformatted view is an SCOORD3D POLYLINE in patient coordinates (mm)."""
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    row: dict[str, Any] = o.item  # type: ignore[assignment]
    mid = str(row.get("id") or "")
    pts = np.asarray(row.get("points_world") or [], dtype=float)
    if pts.ndim == 2:  # a distance: one line
        pts = pts[None]
    if pts.ndim != 3 or pts.shape[1] != 2 or row.get("length_mm") is None:
        raise ExportError(
            f"Measurement {mid} has no line in mm (kind {row.get('kind')!r}); a measurement report "
            "needs lengths in mm: export CSV instead."
        )
    lines = pts[..., -geometry.ndim :]  # napari world (z, y, x) mm, leading axes dropped
    idx = np.stack([geometry.world_to_index(line) for line in lines])  # (lines, 2, ndim)
    k = None
    if geometry.ndim == 2:
        k = 0
    elif np.allclose(idx[..., 0], np.round(idx[0, 0, 0]), atol=1e-3):
        k = int(np.round(idx[0, 0, 0]))
        if not 0 <= k < len(by_k):
            raise ExportError(f"Measurement {mid} lies on slice {k} outside the series.")

    def coords(i: int) -> Any:
        if k is not None:
            cr = idx[i][:, ::-1][:, :2] + 0.5  # (column, row) in DICOM pixel coordinates
            src = hd.sr.SourceImageForRegion(str(by_k[k].SOPClassUID), str(by_k[k].SOPInstanceUID))
            return hd.sr.CoordinatesForMeasurement(hd.sr.GraphicTypeValues.POLYLINE, cr, src)
        lps = lines[i][:, ::-1]  # napari world (z, y, x) -> DICOM patient (x, y, z)
        frame = str(by_k[0].FrameOfReferenceUID)
        return hd.sr.CoordinatesForMeasurement3D(hd.sr.GraphicTypeValues3D.POLYLINE, lps, frame)

    if row.get("kind") == "recist":
        names = [
            (codes.SCT.LongAxis, row["length_mm"]),
            (codes.SCT.ShortAxis, row["short_axis_mm"]),
        ]
    else:
        names = [(codes.SCT.Length, row["length_mm"])]
    ms = [
        hd.sr.Measurement(name=_cc(name), value=round(float(v), 4), unit=_cc(_MM),
                          referenced_coordinates=[coords(i)])
        for i, (name, v) in enumerate(names)
    ]  # fmt: skip
    source = None
    if k is not None:
        ds = by_k[k]
        source = [hd.sr.SourceImageForMeasurementGroup(str(ds.SOPClassUID), str(ds.SOPInstanceUID))]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid_from(f"clinlabel-measurement-{mid}"), identifier=f"measurement {mid}"
        ),
        finding_type=_cc(codes.SCT.Lesion) if row.get("kind") == "recist" else None,
        measurements=ms,
        source_images=source,
    )


def _grade_group(o: Observed, source: Dataset) -> Any:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it

    g: Grade = o.item  # type: ignore[assignment]
    name, value = grade_code(g.scale, g.value, g.label)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=_uid_from(f"clinlabel-grade-{g.scale}-{g.item}-{g.seq}"),
            identifier=f"grade {g.scale}",
        ),
        algorithm_id=_algorithm(o.model),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name, value)],
        source_images=[
            hd.sr.SourceImageForMeasurementGroup(
                str(source.SOPClassUID), str(source.SOPInstanceUID)
            )
        ],  # fmt: skip
    )


def build_sr(
    observed: Sequence[Observed],
    geometry: Geometry,
    shape: tuple[int, ...],
    source_datasets: Sequence[Dataset],
    observer_names: dict[str, str],
) -> Dataset:
    """A Comprehensive 3D SR (TID 1500) of boxes and grades on the series ``source_datasets``.

    ``shape`` is the image grid (z, y, x) or (y, x); ``observer_names`` maps actor ids to names.
    """
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    if not observed:
        raise ExportError("No lesion boxes or grades to report; draw boxes or grade first.")
    people = sorted({o.actor_id for o in observed})
    if len(people) > 1:
        raise ExportError(
            f"These boxes and grades were confirmed by {len(people)} different people "
            f"({', '.join(people)}); a measurement report has one observer here. Adjudicate "
            "first, or export JSON/CSV."
        )
    if len(shape) == 3:
        by_k = order_by_grid(source_datasets, geometry, shape)
    elif len(source_datasets) == 1:
        by_k = list(source_datasets)
    else:
        raise ExportError("A 2D image must come from one DICOM file to be reported in DICOM SR.")
    by_k = prepare_sources(by_k)
    groups = []
    templates: dict[str, Any] = {}
    for o in observed:
        if isinstance(o.item, LesionBox):
            groups.append(_box_group(o, by_k, geometry, templates))
        elif isinstance(o.item, dict):
            groups.append(_measure_group(o, by_k, geometry))
        elif is_image_item(o.item.item):
            groups.append(_grade_group(o, by_k[0]))
    person = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=_person_name(observer_names.get(people[0], people[0])),
            login_name=people[0][:64],
        ),
    )
    models = {(m["name"], m.get("version"), m.get("sha256")): m
              for m in (o.model for o in observed) if m}  # fmt: skip
    device = None
    if models:
        m = next(iter(models.values())) if len(models) == 1 else None
        device = hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=_uid_from(f"clinlabel-model-{m.get('sha256') or m['name']}") if m
                else _uid_from("clinlabel-models-" + "|".join(sorted(map(str, models)))),
                name=(m["name"] if m else " + ".join(sorted(str(k[0]) for k in models)))[:64],
                model_name=(str(m.get("version")) if m else "several")[:64],
                manufacturer_name=SOFTWARE,
            ),
        )  # fmt: skip
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=person, observer_device_context=device
        ),
        procedure_reported=codes.LN.ImagingProcedure
        if hasattr(codes.LN, "ImagingProcedure")
        else Code("363679005", "SCT", "Imaging procedure"),
        imaging_measurements=groups,
    )
    referenced = {str(ds.SOPInstanceUID): ds for ds in by_k}
    root = report[0]
    head = Dataset()  # the report without its measurement groups (see _document)
    for elem in root:
        if elem.keyword != "ContentSequence":
            head.add(elem)
    head.ContentSequence = [it for it in root.ContentSequence if it is not _groups_item(root)]
    try:
        with quiet_person_names():
            sr = hd.sr.Comprehensive3DSR(
                evidence=list(referenced.values()),
                content=head,
                series_instance_uid=hd.UID(),
                series_number=901,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=SOFTWARE,
                is_complete=True,
            )
    except (ValueError, TypeError) as exc:
        raise ExportError(f"highdicom refused the measurement report: {exc}") from None
    # highdicom's constructor deep-copies the whole content tree, parses the copy back into
    # content items and searches it for image references to check them against the evidence:
    # for 100 ROI groups most of the export's time. Every region here references an instance
    # of ``by_k`` (all of it is evidence) by construction, and the groups were built and checked
    # by highdicom's templates, so the document is made around the report's head and the full
    # content (same items, same order) is put in after. Read back by highdicom, dcmqi and
    # dciodvfy in the tests. ``sr.content`` (highdicom's parsed view) shows the head only: read
    # the written file to inspect the groups.
    sr.ContentSequence = root.ContentSequence
    minimize_identifiers(sr)
    sr.ReferencedPerformedProcedureStepSequence = []  # Type 2 in the SR Document Series module
    scheme = Dataset()  # declare the private coding scheme (PS3.3 C.12.1.1.2.1)
    scheme.CodingSchemeDesignator = PRIVATE
    scheme.CodingSchemeName = "napari-clinlabel private codes (see its README)"
    scheme.CodingSchemeResponsibleOrganization = SOFTWARE
    sr.CodingSchemeIdentificationSequence = [scheme]
    sr.SeriesDescription = "clinlabel measurements"
    sr.SoftwareVersions = str(version)
    return sr


def _groups_item(root: Dataset) -> Dataset | None:
    """The Imaging Measurements container (DCM 126010) of a TID 1500 report root."""
    for it in root.ContentSequence:
        name = it.ConceptNameCodeSequence[0]
        if (str(name.CodeValue), str(name.CodingSchemeDesignator)) == ("126010", "DCM"):
            return it
    return None


def observed_from_log(
    records: Sequence[dict[str, Any]],
    boxes: Sequence[LesionBox],
    grades: Sequence[Grade],
    measurements: Sequence[dict[str, Any]] = (),
) -> tuple[list[Observed], dict[str, str]]:
    """Boxes, image/study grades and distance/RECIST measurements with their confirming human
    and originating model."""
    by_seq = {int(r.get("seq", -1)): r for r in records}
    names = {str(r["actor"]["id"]): str(r["actor"].get("name") or r["actor"]["id"])
             for r in records if r.get("actor")}  # fmt: skip
    out: list[Observed] = []
    for b in boxes:
        model = b.source if b.source.get("kind") == "model" else None
        out.append(Observed(b, str(b.created_by or ""), model))
    for g in grades:
        if not is_image_item(g.item):
            continue  # tile grades are not image findings; export them as CSV/COCO
        src = (by_seq.get(g.seq) or {}).get("source") or {}
        out.append(Observed(g, g.grader, src if src.get("kind") == "model" else None))
    for m in measurements:
        out.append(Observed(dict(m), str(m.get("measured_by") or ""), None))
    return out, names


def _mark_written_encoding(ds: Dataset) -> None:
    """Mark every dataset of the content tree as already in Explicit VR Little Endian."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                item.set_original_encoding(False, True, item._character_set)
                _mark_written_encoding(item)


def sr_bytes(sr: Dataset) -> bytes:
    """The DICOM file bytes of an SR dataset.

    pydicom's writer runs its ambiguous-VR correction over the whole subtree of every dataset it
    writes that was built in memory, so a content tree thousands of items deep in nesting is
    corrected again at every level (half of a 100-box report's writing time). Here the
    correction runs once over the whole tree, then each item is marked as encoded the way it is
    written (Explicit VR Little Endian, its own character set) so the writer takes it as is."""
    from pydicom.filewriter import correct_ambiguous_vr  # lazy, as in seg.py's writers

    correct_ambiguous_vr(sr, True)
    _mark_written_encoding(sr)
    return seg_bytes(sr)


def sr_from_log(log_path: Any, volume: Any, records: Sequence[dict[str, Any]]) -> bytes:
    """The SR file bytes of the boxes and image/study grades in force in ``log_path``'s log,
    on the DICOM series ``volume`` was read from (the export gate's ``dicom-sr`` format)."""
    if volume.series_uid is None or volume.source_path is None:
        raise ExportError(
            f"{volume.source_path.name if volume.source_path else 'This image'}: not read from "
            "DICOM, so there is no image for a DICOM SR to reference; export JSON or CSV instead."
        )
    if not volume.spacing_known:
        raise ExportError(
            f"{volume.source_path.name}: the DICOM image states no pixel spacing, so box sizes "
            "have no millimetres for a measurement report; export JSON or CSV instead."
        )
    boxes = list(load_boxes(log_path).values())
    grades = sorted(load_grades(log_path).values(), key=lambda g: (g.scale, g.item))
    observed, names = observed_from_log(records, boxes, grades, measurements_in_log(log_path))
    if not observed:
        raise ExportError(
            f"{getattr(log_path, 'name', log_path)}: no lesion boxes or image grades to report; "
            "draw boxes or grade first."
        )
    files = volume.meta.get("source_files") or volume.source_path
    if volume.geometry.ndim == 2 and Path(volume.source_path).is_file():
        # one image (MG, CR, DX, SC): it has no ImagePositionPatient to order slices by
        source = [pydicom.dcmread(volume.source_path, stop_before_pixels=True)]
    else:
        source = source_series_datasets(files, volume.series_uid)
    sops = volume.meta.get("sop_instance_uids")
    if sops and volume.geometry.ndim == 3:
        wanted = set(sops)
        source = [ds for ds in source if str(ds.SOPInstanceUID) in wanted]
    sr = build_sr(observed, volume.geometry, tuple(volume.spatial_shape), source, names)
    return sr_bytes(sr)
