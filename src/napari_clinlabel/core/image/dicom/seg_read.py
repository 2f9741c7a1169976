"""Read a DICOM SEG (BINARY, FRACTIONAL or LABELMAP) as label maps with names, codes and colours.

highdicom builds the volume from the SEG's own plane positions (so the SEG needs no source
series at hand); slices are put in the order of increasing position along the slice normal, as
this package's DICOM series reader does, so the labels sit on the series' own grid.

Values: one label value per segment, the segment number. Segments that do not overlap come back
as one label map; when some voxels belong to several segments (dcmqi's ``partial_overlaps``) each
segment is its own binary map (value = its number), as one label map cannot hold both.

Missing frames (a sparse SEG whose empty frames were left out): policy here is *no segment* (0)
everywhere in a frame that is not encoded — for LABELMAP too, whatever PixelPaddingValue says.
A frame that is not there encodes no anatomy, and padding painted over a whole slice would turn
into an unnamed editable label. highdicom reads it the same way; dcmqi's converter fills
PixelPaddingValue instead (its ``sparse_labelmap_ppv5`` reference has 5 on that slice).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry


@dataclass
class SegSegment:
    """One segment: its number (the label value), label, codes, colour and how it was made."""

    number: int
    label: str
    category: tuple[str, str, str]  # (value, scheme, meaning)
    type: tuple[str, str, str]
    color_rgb: tuple[int, int, int] | None
    algorithm_type: str
    algorithm_name: str | None = None


@dataclass
class SegLabels:
    """Label maps (z, y, x) on ``geometry``; ``maps`` holds one map, or one per segment when they
    overlap (``overlapping``). ``segments`` describe the values."""

    maps: list[np.ndarray]
    geometry: Geometry
    segments: list[SegSegment]
    segmentation_type: str
    series_uid: str
    referenced_series_uid: str | None
    overlapping: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


def is_seg(ds: Any) -> bool:
    """True when a pydicom dataset is a Segmentation Storage object."""
    return str(ds.get("SOPClassUID", "")) in (
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
        "1.2.840.10008.5.1.4.1.1.66.7",  # Label Map Segmentation Storage
    )


def _code(seq: Any) -> tuple[str, str, str]:
    c = seq[0]
    return (str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning))


def _segment(item: Any) -> SegSegment:
    import highdicom as hd  # imported lazily: heavy

    rgb = None
    lab = item.get("RecommendedDisplayCIELabValue")
    if lab is not None:
        rgb = tuple(int(v) for v in hd.color.CIELabColor.from_dicom_value(lab).to_rgb())
    ident = item.get("SegmentationAlgorithmIdentificationSequence")
    return SegSegment(
        number=int(item.SegmentNumber),
        label=str(item.get("SegmentLabel", f"segment {item.SegmentNumber}")),
        category=_code(item.SegmentedPropertyCategoryCodeSequence),
        type=_code(item.SegmentedPropertyTypeCodeSequence),
        color_rgb=rgb,  # type: ignore[arg-type]
        algorithm_type=str(item.get("SegmentAlgorithmType", "")),
        algorithm_name=str(ident[0].AlgorithmName) if ident else None,
    )


def read_seg(path: str | os.PathLike[str]) -> SegLabels:
    """The label maps of the DICOM SEG at ``path`` (see the module docstring for the policies)."""
    import highdicom as hd  # imported lazily: heavy

    p = Path(path)
    try:
        seg = hd.seg.segread(p)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise InputError(f"{p}: not a readable DICOM SEG ({type(exc).__name__}).") from None
    segments = [_segment(s) for s in seg.SegmentSequence if int(s.SegmentNumber) > 0]
    numbers = [s.number for s in segments]
    try:
        try:
            vol = seg.get_volume(combine_segments=True, relabel=False, segment_numbers=numbers)
            stacks = [np.asarray(vol.array)]
            overlapping = False
        except RuntimeError:  # overlapping segments: one binary map each
            seg = hd.seg.segread(p)  # a failed combine leaves highdicom's frame index locked
            vol = seg.get_volume(combine_segments=False, segment_numbers=numbers)
            arr = np.asarray(vol.array)
            stacks = [(arr[..., i] > 0).astype(np.uint16) * n for i, n in enumerate(numbers)]
            overlapping = True
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{p}: the SEG's frames do not form a volume ({exc}).") from None
    aff = np.asarray(vol.affine, dtype=float)
    col, row, stack = aff[:3, 2], aff[:3, 1], aff[:3, 0]
    normal = np.cross(col / np.linalg.norm(col), row / np.linalg.norm(row))
    origin = aff[:3, 3]
    if stacks[0].shape[0] > 1 and float(np.dot(stack, normal)) < 0:  # k along the normal
        origin = origin + stack * (stacks[0].shape[0] - 1)
        stack = -stack
        stacks = [s[::-1] for s in stacks]
    sx, sy, sz = (float(np.linalg.norm(v)) for v in (col, row, stack))
    if stacks[0].shape[0] == 1:
        sz = float(seg.get("SharedFunctionalGroupsSequence", [{}])[0].get(
            "PixelMeasuresSequence", [{}])[0].get("SpacingBetweenSlices", 0) or sz or 1.0)  # fmt: skip
    direction = np.stack([col / sx, row / sy, stack / np.linalg.norm(stack) if sz else normal], 1)
    geometry = Geometry((sx, sy, sz), tuple(float(v) for v in origin),
                        tuple(float(v) for v in direction.ravel()))  # fmt: skip
    dtype = np.uint8 if max(numbers, default=0) < 256 else np.uint16
    maps = [np.ascontiguousarray(s).astype(dtype) for s in stacks]
    ref = seg.get("ReferencedSeriesSequence")
    return SegLabels(
        maps=maps,
        geometry=geometry,
        segments=segments,
        segmentation_type=str(seg.SegmentationType),
        series_uid=str(seg.SeriesInstanceUID),
        referenced_series_uid=str(ref[0].SeriesInstanceUID) if ref else None,
        overlapping=overlapping,
    )


def seg_files(path: str | os.PathLike[str]) -> list[Path]:
    """The DICOM SEG files ``path`` stands for: itself, or every file of a folder holding only
    SEG objects (a SEG series pulled from a PACS); empty when it is anything else."""
    return objects_only(path, is_seg)


def objects_only(path: str | os.PathLike[str], accept: Callable[[Any], bool]) -> list[Path]:
    """``path`` itself, or every file of the folder ``path``, when each is a DICOM object
    ``accept`` takes (read up to SOPClassUID); empty when any file is anything else."""
    import pydicom

    p = Path(path)
    files = (
        [p] if p.is_file() else sorted(q for q in p.iterdir() if q.is_file()) if p.is_dir() else []
    )
    out = []
    for f in files:
        if f.name.startswith(".") or f.suffix.lower() not in ("", ".dcm"):
            continue
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:  # noqa: BLE001 - not DICOM: not a folder of such objects
            return []
        if not accept(ds):
            return []
        out.append(f)
    return out


def seg_layer_data(seg: SegLabels, name: str) -> list[tuple[Any, dict[str, Any], str]]:
    """napari layer-data tuples (plain data, no napari import): one ``labels`` layer per map,
    on the SEG's physical affine, coloured by the SEG's recommended colours, segment names,
    codes and algorithm in ``features`` and ``metadata``."""
    colors: dict[Any, Any] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for s in seg.segments:
        if s.color_rgb is not None:
            colors[s.number] = (*(c / 255.0 for c in s.color_rgb), 1.0)
    described = [{"number": s.number, "label": s.label, "category": list(s.category),
                  "type": list(s.type), "algorithm_type": s.algorithm_type,
                  "algorithm_name": s.algorithm_name} for s in seg.segments]  # fmt: skip
    out = []
    for i, m in enumerate(seg.maps):
        segs = seg.segments if not seg.overlapping else [seg.segments[i]]
        features = {"index": [0] + [s.number for s in segs],
                    "label": ["background"] + [s.label for s in segs]}  # fmt: skip
        kwargs = {
            "name": name if not seg.overlapping else f"{name}: {segs[0].label}",
            "affine": seg.geometry.napari_affine(),
            "features": features,
            "metadata": {
                "clinlabel_seg": {
                    "series_uid": seg.series_uid,
                    "referenced_series_uid": seg.referenced_series_uid,
                    "segmentation_type": seg.segmentation_type,
                    "segments": described,
                }
            },  # fmt: skip
        }
        if len(colors) > 2:
            kwargs["colormap"] = colors
        out.append((m, kwargs, "labels"))
    return out
