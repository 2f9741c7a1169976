"""``clinlabel info PATH [--json]``: geometry as SimpleITK reports it, pixel type, UIDs; no PHI."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.resample import read_resampled


def _pixel_type(volume: Volume) -> str:
    """SimpleITK's name for the voxel type (vector types for RGB)."""
    dtype = np.dtype(volume.base.dtype)
    shape = (1,) * volume.geometry.ndim + ((volume.base.shape[-1],) if volume.rgb else ())
    img = sitk.GetImageFromArray(np.zeros(shape, dtype), isVector=volume.rgb)
    return img.GetPixelIDTypeAsString()


def describe(volume: Volume) -> dict[str, Any]:
    """PHI-free description of one volume; size/spacing/origin/direction in ITK order (x, y, z)."""
    g = volume.geometry
    meta = volume.meta
    # no series description: it is free text the PS3.15 Basic Profile removes (it can hold PHI)
    return {
        "size": [int(n) for n in reversed(volume.spatial_shape)],
        "spacing": list(g.spacing),
        "spacing_known": volume.spacing_known,
        "origin": list(g.origin),
        "direction": list(g.direction),
        "pixel_type": _pixel_type(volume),
        "rgb": volume.rgb,
        "n_volumes": int(volume.base.shape[0]) if volume.leading_axes else 1,
        "levels": len(volume.array) if volume.multiscale else 1,
        "modality": meta.get("modality"),
        "study_uid": meta.get("study_uid"),
        "series_uid": meta.get("series_uid"),
        "frame_of_reference_uid": meta.get("frame_of_reference_uid"),
        "sha256": volume.sha256,
        "sha256_of": meta.get("sha256_kind", "voxels"),
        "slice_step": list(g.slice_step) if g.sheared else None,  # gantry tilt: a shear
        "shear_deg": g.shear_angle_deg,
        "gantry_tilt_deg": meta.get("gantry_tilt_deg"),
        "slice_block": meta.get("slice_block"),
        "resampled": {k: v for k, v in (meta.get("resampled") or {}).items()
                      if k in ("from_steps_mm", "to_spacing_mm", "asked_spacing_mm",
                               "gaps_bridged",
                               "original_slices", "resampled_slices")} or None,
    }  # fmt: skip


def _fmt(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.10g}" for v in values) + ")"


def run(args: argparse.Namespace) -> int:
    """Print one block (or one JSON document) describing every volume at PATH."""
    if args.spacing is not None and not args.resample:
        raise ClinlabelError("--spacing applies to --resample only; add --resample or drop it.")
    # info records nothing: --resample only shows the grid an annotation request would get
    volumes = (
        [read_resampled(args.path, args.spacing)] if args.resample else read_volumes(args.path)
    )
    info = [describe(v) for v in volumes]
    if args.json:
        print(json.dumps({"path": str(args.path), "volumes": info}, indent=2))
        return 0
    for i, d in enumerate(info):
        print(f"[{i}] {d['modality'] or 'image'} series {d['series_uid'] or '(no UID)'}")
        print(f"  size        {tuple(d['size'])}  volumes {d['n_volumes']}  levels {d['levels']}")
        unit = "mm" if d["spacing_known"] else "px (the file states no pixel size)"
        print(f"  spacing     {_fmt(d['spacing'])} {unit}")
        print(f"  origin      {_fmt(d['origin'])} mm")
        print(f"  direction   {_fmt(d['direction'])}")
        if d["slice_step"] is not None:
            tilt = d["gantry_tilt_deg"]
            print(
                f"  tilt        sheared {d['shear_deg']:.2f}° off the normal (GantryDetectorTilt "
                f"{'-' if tilt is None else f'{tilt:g}°'}); slice step {_fmt(d['slice_step'])} mm"
            )
        if d["slice_block"]:
            first, last, total = d["slice_block"]
            print(
                f"  block       slices {first}-{last} of {total} (uneven spacing split; "
                "--resample shows it as one volume)"
            )
        if d["resampled"]:
            r = d["resampled"]
            print(
                f"  resampled   {r['original_slices']} slices {r['from_steps_mm']} mm apart -> "
                f"{r['resampled_slices']} at {r['to_spacing_mm']:.10g} mm (asked "
                f"{r['asked_spacing_mm']:.10g} mm; first to last original slice exactly; linear; "
                f"{r['gaps_bridged']} gap(s) bridged)"
            )
        print(f"  pixel type  {d['pixel_type']}{'  (RGB)' if d['rgb'] else ''}")
        print(f"  modality    {d['modality'] or '-'}   series UID {d['series_uid'] or '-'}")
        print(f"  sha256      {d['sha256']} ({d['sha256_of']})")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    p = subparsers.add_parser(
        "info",
        help="describe an image: geometry (ITK order), pixel type, modality, UIDs (no PHI)",
        description=__doc__,
    )
    p.add_argument("path", help="DICOM folder or file, NIfTI, NRRD, MHA/MHD, TIFF/PNG/JPEG")
    p.add_argument("--json", action="store_true", help="machine-readable JSON output")
    p.add_argument(
        "--resample",
        action="store_true",
        help="a DICOM series with uneven spacing or a missing slice: describe it resampled to "
        "even slices (as 'prelabel --resample' would open it; nothing is logged)",
    )
    p.add_argument("--spacing", type=float, metavar="MM", default=None,
                   help="with --resample: the slice spacing in mm")  # fmt: skip
    p.set_defaults(func=run)
