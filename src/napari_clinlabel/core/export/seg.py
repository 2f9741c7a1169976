"""DICOM SEG (highdicom) for label maps drawn on a volume read from DICOM.

One segment per label value present (optionally also per empty schema label), coded with the
schema's SNOMED CT category/type, its SegmentAlgorithmType taken from provenance (MANUAL /
SEMIAUTOMATIC / AUTOMATIC, the latter two naming the model and version), the confirming human as
content creator. The SEG is BINARY by default (Debian's ``dciodvfy`` predates the LABELMAP
class); ``seg_type="labelmap"`` writes highdicom's LABELMAP with every frame present.

Frames are matched to source slices by position, never by file order: each source slice's
ImagePositionPatient is mapped into the label grid (oblique directions included), so series whose
instance numbers run either way come out right. The label array is in napari order (z, y, x);
slice ``k`` is ``labels[k]`` with rows along y and columns along x, as in the DICOM pixel data.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from napari_clinlabel import __version__ as version
from napari_clinlabel.core.annotate.provenance import MANUAL, SegmentProvenance
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.privacy.phi_scan import PROFILE_TAGS

SOFTWARE = "napari-clinlabel"
_POS_TOL_VOX = 0.05  # slice positions must fall on the grid to 5 % of a voxel
_DIR_TOL = 1e-4


def source_series_datasets(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], series_uid: str | None
) -> list[Dataset]:
    """Headers (no pixels) of the ``series_uid`` DICOM files under a folder (recursively), beside a
    file, or in a list of files."""
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if not p.exists():
            raise ExportError(f"{p}: the source DICOM series is gone; DICOM SEG needs its files.")
        folder = p if p.is_dir() else p.parent
        pattern = "**/*" if p.is_dir() else "*"  # a study folder may hold series sub-folders
        files = sorted(q for q in folder.glob(pattern) if q.is_file() and q.name[0] != ".")
    else:
        files = [Path(f) for f in source]
    out: list[Dataset] = []
    unplaced: list[str] = []  # the series' files with no position (projection images: MG, DX, CR)
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:
            continue  # not DICOM (a sidecar log, a README): skip
        if "SOPInstanceUID" not in ds:
            continue
        if series_uid is not None and str(ds.get("SeriesInstanceUID", "")) != series_uid:
            continue
        if "ImagePositionPatient" not in ds:
            unplaced.append(str(ds.get("Modality", "?")))
            unplaced_ds = ds
            continue
        out.append(ds)
    if not out and len(unplaced) == 1:  # one projection image (MG, DX, CR): its own frame
        return [unplaced_ds]
    if not out and unplaced:
        raise ExportError(
            f"{source}: the source holds {len(unplaced)} images without a slice position "
            f"({unplaced[0]}); a DICOM SEG of a projection image is made on one file: export "
            "from that file, or as NIfTI, NRRD or PNG."
        )
    if not out:
        raise ExportError(
            f"{source}: no DICOM slices of series {series_uid} found; DICOM SEG needs the source "
            "series files beside the log. Export NIfTI instead, or restore the series."
        )
    return out


def order_by_grid(
    datasets: Sequence[Dataset], geometry: Geometry, shape: tuple[int, ...]
) -> list[Dataset]:
    """Source slices ordered by label-grid slice index k (checked to cover every slice once)."""
    if geometry.ndim != 3 or len(shape) != 3:
        raise ExportError("DICOM SEG export needs a 3D label array on a 3D series.")
    d = geometry.direction_matrix()
    by_k: dict[int, Dataset] = {}
    for ds in datasets:
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        if not (
            np.allclose(iop[:3], d[:, 0], atol=_DIR_TOL)
            and np.allclose(iop[3:], d[:, 1], atol=_DIR_TOL)
        ):
            raise ExportError(
                f"Slice {ds.SOPInstanceUID}: its orientation does not match the label grid (was "
                "the volume resampled or reoriented?); export NIfTI instead."
            )
        if (int(ds.Rows), int(ds.Columns)) != tuple(shape[1:]):
            raise ExportError(
                f"Source slices are {ds.Rows}×{ds.Columns} but the labels are {shape[1]}×{shape[2]}; "
                "labels must be drawn on the series' own grid."
            )
        ipp = np.asarray([float(v) for v in ds.ImagePositionPatient])
        kji = geometry.world_to_index(ipp[::-1])
        k = int(round(float(kji[0])))
        if np.max(np.abs(kji - np.array([k, 0.0, 0.0]))) > _POS_TOL_VOX or not 0 <= k < shape[0]:
            raise ExportError(
                f"Slice {ds.SOPInstanceUID} lies off the label grid; the series has uneven or "
                "missing slices — export NIfTI instead."
            )
        if k in by_k:
            raise ExportError(
                "Two source slices share one position (several volumes in one series); open one "
                "volume per series before exporting DICOM SEG."
            )
        by_k[k] = ds
    missing = [k for k in range(shape[0]) if k not in by_k]
    if missing:
        raise ExportError(
            f"The source series lacks slices for label planes {missing[:5]}…; DICOM SEG needs "
            "every slice. Export NIfTI instead."
        )
    return [by_k[k] for k in range(shape[0])]


def _projection_frame(ds: Dataset, labels: np.ndarray) -> np.ndarray:
    """``labels`` of a projection image as one (1, rows, columns) frame, checked against it."""
    frame = labels.reshape(labels.shape[-2:]) if labels.size and labels.ndim in (2, 3) else labels
    if labels.ndim == 3 and labels.shape[0] != 1:
        raise ExportError("A projection image has one frame; these labels have several slices.")
    if frame.shape != (int(ds.Rows), int(ds.Columns)):
        raise ExportError(
            f"The image is {ds.Rows}×{ds.Columns} but the labels are {frame.shape[0]}×"
            f"{frame.shape[1]}; labels must be drawn on the image's own grid."
        )
    return frame[None]


# Patient/study attributes highdicom copies from the sources (Type 2 in SEG and SR)
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                 "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip


def prepare_sources(datasets: Sequence[Dataset]) -> list[Dataset]:
    """Source headers made fit for highdicom: an empty SpecificCharacterSet (the default
    repertoire, which trips it) removed, Type 2 patient/study attributes present (empty when the
    source left them out, as PACS objects and phantoms sometimes do)."""
    for ds in datasets:
        if "SpecificCharacterSet" in ds and not ds.SpecificCharacterSet:
            del ds.SpecificCharacterSet
        for kw in _TYPE2_COPIED:
            if kw not in ds:
                setattr(ds, kw, "")
    return list(datasets)


def _code(c: Any) -> Any:
    from pydicom.sr.coding import Code  # lazy: loads DICOM's code tables; only SEG/SR need them

    return Code(str(c.value), str(c.scheme), str(c.meaning))


def _description(
    number: int, value: int, schema: Any | None, prov: SegmentProvenance | None
) -> Any:
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it
    from pydicom.sr.codedict import codes  # lazy: loads DICOM's code tables; only SEG/SR need them

    lab = schema.label(value) if schema is not None else None
    if lab is None:
        name = f"label {value}"
        category = codes.SCT.Tissue
        ptype = codes.SCT.Tissue
    else:
        name, category, ptype = lab.name, _code(lab.category), _code(lab.type)
    algo = prov.algorithm_type if prov is not None else MANUAL
    ident = None
    if algo != MANUAL:
        models = prov.models if prov is not None else []
        only_tools = bool(models) and all(m.get("kind") == "tool" for m in models)
        ident = hd.AlgorithmIdentificationSequence(
            name=" + ".join(m["name"] for m in models)[:64],
            # editing tools (watershed, margins, thresholds) are morphological, not AI
            family=(
                codes.cid7162.MorphologicalOperations
                if only_tools
                else codes.cid7162.ArtificialIntelligence
            ),
            version=" + ".join(m["version"] for m in models)[:64],
            source=SOFTWARE,
        )
    color = None
    if lab is not None:
        color = hd.color.CIELabColor.from_rgb(*(int(lab.color[i : i + 2], 16) for i in (1, 3, 5)))
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=name[:64],
        segmented_property_category=category,
        segmented_property_type=ptype,
        algorithm_type=algo,
        algorithm_identification=ident,
        tracking_uid=hd.UID(),
        tracking_id=f"{name}"[:64],
        display_color=color,
    )


def build_seg(
    labels: np.ndarray,
    geometry: Geometry,
    source_datasets: Sequence[Dataset],
    schema: Any | None,
    provenance: dict[int, SegmentProvenance],
    creator_name: str,
    *,
    include_empty: bool = False,
    series_description: str = "clinlabel segmentation",
    seg_type: str = "binary",
) -> Dataset:
    """A BINARY (default) or LABELMAP DICOM SEG of ``labels`` (z, y, x) on ``source_datasets``.

    LABELMAP (highdicom's 2024 class, one frame per source slice, pixel value = segment number)
    is written with every frame present, empty ones included, so no reader has to guess what a
    missing frame holds; ``dciodvfy`` from Debian predates the class (see PITFALLS).

    Refuses segments confirmed by different people (a SEG has one content creator) and an empty
    label map. ``provenance`` maps label value → :class:`SegmentProvenance`.
    """
    import highdicom as hd  # lazy: ~1 s to import; only SEG/SR export needs it

    projection = len(source_datasets) == 1 and "ImagePositionPatient" not in source_datasets[0]
    if projection:  # a mammogram, DX or CR image: one frame, no plane position (highdicom)
        labels = _projection_frame(source_datasets[0], labels)
        ordered = prepare_sources(source_datasets)
    else:
        ordered = prepare_sources(order_by_grid(source_datasets, geometry, labels.shape))
    present = [int(v) for v in np.unique(labels) if v != 0]
    values = sorted(
        set(present) | ({lab.value for lab in schema.labels} if include_empty and schema else set())
    )
    if not present:
        raise ExportError("The label map is empty: nothing to export. Draw or accept labels first.")
    confirmers = set().union(*(provenance[v].confirmed_by for v in present if v in provenance))
    if len(confirmers) > 1:
        raise ExportError(
            f"These labels were confirmed by {len(confirmers)} different people "
            f"({', '.join(sorted(confirmers))}); a DICOM SEG has one content creator. Export each "
            "reader's labels layer separately (--labels NAME), or adjudicate first."
        )
    lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    for number, v in enumerate(present, start=1):
        lut[v] = number
    seg_numbers = {v: i for i, v in enumerate(present, start=1)}
    for v in values:
        if v not in seg_numbers:
            seg_numbers[v] = len(seg_numbers) + 1
    mapped = lut[labels]
    dtype = np.uint8 if len(seg_numbers) < 256 else np.uint16
    descriptions = [
        _description(n, v, schema, provenance.get(v))
        for v, n in sorted(seg_numbers.items(), key=lambda kv: kv[1])
    ]
    if seg_type not in ("binary", "labelmap"):
        raise ExportError(f"Unknown DICOM SEG type {seg_type!r}; choose binary or labelmap.")
    labelmap = seg_type == "labelmap"
    if labelmap:  # segment numbers are pixel values: every described segment is a value
        pixel_array: np.ndarray = mapped.astype(dtype)
    elif len(seg_numbers) > len(present):  # empty segments: stacked style so each has a plane
        stacked = np.zeros((*mapped.shape, len(seg_numbers)), dtype=np.uint8)
        for n in range(1, len(present) + 1):
            stacked[..., n - 1] = mapped == n
        pixel_array = stacked
    else:
        pixel_array = mapped.astype(dtype)
    try:
        with quiet_person_names():
            seg = hd.seg.Segmentation(
                source_images=ordered,
                pixel_array=pixel_array,
                segmentation_type=hd.seg.SegmentationTypeValues.LABELMAP
                if labelmap
                else hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=900,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=SOFTWARE,
                manufacturer_model_name=SOFTWARE,
                software_versions=str(version),
                device_serial_number="0",
                content_description=series_description[:64],
                content_creator_name=_person_name(creator_name),
                content_label="CLINLABEL",
                omit_empty_frames=not (include_empty or labelmap),
            )
    except (ValueError, TypeError) as exc:
        raise ExportError(f"highdicom refused the segmentation: {exc}") from None
    minimize_identifiers(seg)
    if projection and "PatientOrientation" not in seg:  # Type 2C without plane orientation
        seg.PatientOrientation = ordered[0].get("PatientOrientation", "")
    seg.DeviceSerialNumber = "0"  # ours (Type 1 in Enhanced General Equipment), not the scanner's
    seg.SeriesDescription = series_description[:64]
    return seg


_PN_WARNING = r'The string ".*" is unlikely to represent the intended person name'


@contextlib.contextmanager
def quiet_person_names() -> Iterator[None]:
    """Silence highdicom's UserWarning about one-component person names it meets in the source
    (e.g. PatientName "ANONYMOUS"): copied as the PACS stored them, nothing the user can fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PN_WARNING, category=UserWarning)
        yield


def minimize_identifiers(ds: Dataset) -> None:
    """Drop every optional identifying attribute (Basic Profile action X), nested ones included.

    highdicom copies the source's Patient and Study modules and its equipment into the SEG. The
    Type 2 identity a PACS needs to file the SEG with its patient (name, ID, birth date, sex,
    study date/time, accession number, study ID, referring physician: profile actions Z/D) is
    kept; free text, institution, device serials, other names and IDs and the like are not.
    """
    for elem in list(ds):
        rule = PROFILE_TAGS.get(int(elem.tag))
        if rule is not None and rule[1] == "X":
            del ds[elem.tag]
        elif elem.tag.is_private:
            del ds[elem.tag]
        elif elem.VR == "SQ":
            for item in elem.value:
                minimize_identifiers(item)


def _person_name(name: str) -> str:
    """A DICOM PN from a display name: ``"Ann Reader"`` → ``"Reader^Ann"``."""
    name = " ".join(str(name).replace("^", " ").split()) or "Unknown"
    parts = name.split(" ")
    if len(parts) == 1:
        return f"{parts[0][:63]}^"  # a lone family name, unambiguous
    return f"{parts[-1]}^{' '.join(parts[:-1])}"[:64]


def seg_bytes(seg: Dataset) -> bytes:
    """The DICOM file bytes of a SEG dataset (with file meta)."""
    buf = io.BytesIO()
    seg.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def frame_map(seg: Dataset) -> dict[str, int]:
    """Referenced source SOP Instance UID per frame order (used by tests and readers)."""
    out: dict[str, int] = {}
    for i, f in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        out.setdefault(str(uid), i)
    return out
