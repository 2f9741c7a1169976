"""Agreement between two readers' results, whatever form they come in (``clinlabel agreement``).

The kind of input is detected from the files:

- two **label maps** (NIfTI ``.nii``/``.nii.gz``, NRRD, MHA/MHD, PNG, TIFF): same size and
  geometry to 1e-4 mm, else an error naming both files → ``{"labels": {"<value>": {"dice",
  "hd95_mm", "mean_surface_distance_mm", "volume_difference_ml", "voxels_a", "voxels_b"}}}``;
  PNG maps and TIFFs without resolution tags state no pixel size: their figures are in pixels,
  ``hd95_px``, ``mean_surface_distance_px``, ``size_difference_px`` (see :mod:`.metrics`), and a
  map of unknown spacing is never compared with one in mm (refused, naming the file). JPEG is
  refused: its compression changes label values;
- two **grade tables** (CSV with columns ``item,grade``; the same items in both) →
  ``{"kappa", "weighted_kappa_quadratic", "weighted_kappa_linear", "n", "per_class",
  "confusion_matrix", "scale"}``; A is the reference for per-class precision/recall
  (rows of the confusion matrix: A's grade, columns: B's);
- two **sidecar logs** (``*.clinlabel.jsonl``) of the same image (same voxel sha256): the final
  labels of each reader, replayed from the log, compared as label maps. Each log is verified
  first (a broken chain or a missing object is refused). Logs holding undecided
  model proposals are refused unless ``exclude_pending`` (proposals never count as labels).
  Whether the image states its pixel size comes from :func:`log_spacing_known`.

Metric definitions (HD95 convention, empty labels) are in :mod:`.metrics`.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate.reads import readers_in, require_readable
from napari_clinlabel.core.annotate.replay import (
    _TIFF,
    _image_beside,
    _states_pixel_size,
    log_spacing_known,
    replay_labels,
)
from napari_clinlabel.core.errors import (
    InputError,
    LogError,
    LogIntegrityError,
    PendingProposalsError,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry, spacing_known
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.identity import current_actor, find_roster, login_name
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.proposals.lifecycle import pending_count
from napari_clinlabel.core.quality.kappa import (
    cohen_kappa,
    confusion_matrix,
    per_class_prf,
    weighted_kappa,
)
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.core.schema import builtin_schema_names, load_schema

__all__ = [
    "agreement",
    "detect_kind",
    "read_label_map",
    "read_grade_table",
    "resolve_scale",
    "label_maps_agreement",
    "grades_agreement",
    "logs_agreement",
    "final_labels_from_log",
    "log_spacing_known",
]

LABEL_MAP_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".png", ".tif", ".tiff")


def detect_kind(path: str | os.PathLike[str]) -> str:
    """Kind of input from the file name: "label_map", "grades" or "log" (InputError otherwise)."""
    name = Path(path).name.lower()
    if name.endswith(".jsonl"):
        return "log"
    if name.endswith(".csv"):
        return "grades"
    if name.endswith(LABEL_MAP_SUFFIXES):
        return "label_map"
    if name.endswith((".jpg", ".jpeg")):
        raise InputError(
            f"{path}: JPEG compression changes label values, so it cannot hold a label map; "
            "save the labels as PNG or NIfTI"
        )
    raise InputError(
        f"{path}: cannot tell what this is; give two label maps (.nii, .nii.gz, .nrrd, .mha), "
        "two grade tables (.csv with columns item,grade) or two sidecar logs (.clinlabel.jsonl)"
    )


def read_label_map(path: str | os.PathLike[str]) -> tuple[np.ndarray, Geometry]:
    """Integer label array (napari order) and geometry of a label-map file.

    A file that states no pixel size (PNG, a TIFF without resolution tags) gives a
    :class:`~.volume.PixelGeometry`, whatever DPI it carries.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; check the path")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty (0 bytes); export the label map again")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(
            f"{p}: cannot be read as a label map ({first[:160]}); is it truncated or corrupt?"
        ) from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{p}: has {img.GetNumberOfComponentsPerPixel()} components per voxel; a label map has one"
        )
    if img.GetDimension() == 3 and img.GetSize()[2] == 1 and p.name.lower().endswith(_TIFF):
        img = img[:, :, 0]  # a one-page TIFF read as a 3-D stack: the 2-D map it is
    arr = sitk.GetArrayFromImage(img)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(
                f"{p}: holds non-integer values ({arr.dtype}); a label map holds integer labels"
            )
        arr = arr.astype(np.int64)
    geometry = Geometry.from_itk(img)
    if not _states_pixel_size(p):
        geometry = PixelGeometry.like(geometry)
    return arr, geometry


def label_maps_agreement(
    a_path: str | os.PathLike[str], b_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """``{"labels": {...}}`` for two label-map files on the same grid."""
    a, ga = read_label_map(a_path)
    b, gb = read_label_map(b_path)
    _check_same_grid(a.shape, ga, b.shape, gb, a_path, b_path)
    return {"labels": label_map_agreement(a, b, ga, names=(str(a_path), str(b_path)))}


def _check_same_grid(
    sa: tuple, ga: Geometry, sb: tuple, gb: Geometry, a_path: Any, b_path: Any
) -> None:
    if tuple(sa) != tuple(sb):
        raise InputError(
            f"{a_path} is {tuple(sa)} voxels but {b_path} is {tuple(sb)}; both readers' labels must "
            "lie on the same image grid (resample one onto the other first)"
        )
    if spacing_known(ga) != spacing_known(gb):
        px, mm = (a_path, b_path) if not spacing_known(ga) else (b_path, a_path)
        raise InputError(
            f"{px} states no pixel size (PNG, JPEG or a TIFF without resolution tags) but {mm} is "
            "in mm, so distances in the two cannot be compared; save both label maps from the "
            "same image in the same format (both PNG for pixels, or both NIfTI with the image's "
            "spacing for mm)"
        )
    if not ga.close_to(gb, 1e-4):
        raise InputError(
            f"{a_path} and {b_path} have different geometry (spacing {ga.spacing} vs {gb.spacing}, "
            f"origin {ga.origin} vs {gb.origin}); both must carry the image's geometry to 1e-4 mm"
        )


# -- grade tables ---------------------------------------------------------------------------------


def read_grade_table(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{item: grade}`` from a CSV with columns ``item,grade`` (header row optional)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file; check the path") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not UTF-8 text; save the grade table as UTF-8 CSV") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["item", "grade"]:
        rows = rows[1:]
    if not rows:
        raise InputError(f"{p}: holds no grades; expected CSV rows 'item,grade'")
    out: dict[str, str] = {}
    for n, r in enumerate(rows, start=1):
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            raise InputError(
                f"{p}: data row {n} is not 'item,grade' (got {len(r)} field(s) or an empty one)"
            )
        item = r[0].strip()
        if item in out:
            raise InputError(
                f"{p}: item {item!r} is graded twice (data row {n}); keep one grade per item"
            )
        out[item] = r[1].strip()
    return out


def resolve_scale(name: str) -> list[str]:
    """Ordered values of a built-in scale: "schema:scale", a one-scale schema, or a unique scale id."""
    if ":" in name:
        schema_id, scale_id = name.split(":", 1)
        schema = load_schema(schema_id)
        if scale_id not in schema.scales:
            raise InputError(
                f"schema {schema_id!r} has no scale {scale_id!r} (it has: {', '.join(schema.scales)})"
            )
        return schema.scales[scale_id].value_list()
    if name in builtin_schema_names():
        schema = load_schema(name)
        if len(schema.scales) == 1:
            return next(iter(schema.scales.values())).value_list()
        choices = ", ".join(f"{name}:{s}" for s in schema.scales)
        raise InputError(f"schema {name!r} has several scales; choose one of {choices}")
    found = [
        (s, sc)
        for s in builtin_schema_names()
        for sc_id, sc in load_schema(s).scales.items()
        if sc_id == name
    ]
    if len(found) == 1:
        return found[0][1].value_list()
    known = [f"{s}:{sc}" for s in builtin_schema_names() for sc in load_schema(s).scales]
    raise InputError(
        f"no single built-in scale is called {name!r}; choose one of {', '.join(known)}"
    )


def _infer_scale(values: set[str]) -> list[str]:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


def _few(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in sorted(items)[:3])
    return shown + (", …" if len(items) > 3 else "")


def grades_agreement(
    a_path: str | os.PathLike[str], b_path: str | os.PathLike[str], scale: str | None = None
) -> dict[str, Any]:
    """Kappa, quadratic/linear weighted kappa, per-class P/R/F1 of B against A, confusion matrix."""
    ga, gb = read_grade_table(a_path), read_grade_table(b_path)
    only_a, only_b = sorted(set(ga) - set(gb)), sorted(set(gb) - set(ga))
    if only_a or only_b:
        parts = []
        if only_a:
            parts.append(
                f"{len(only_a)} item(s) of {a_path} are missing from {b_path} ({_few(only_a)})"
            )
        if only_b:
            parts.append(f"{len(only_b)} item(s) of {b_path} are not in {a_path} ({_few(only_b)})")
        raise InputError("; ".join(parts) + "; both tables must grade the same items")
    items = sorted(ga)
    a = [ga[i] for i in items]
    b = [gb[i] for i in items]
    values = resolve_scale(scale) if scale else _infer_scale(set(a) | set(b))
    for path, grades in ((a_path, a), (b_path, b)):
        off = sorted({g for g in grades if g not in values})
        if off:
            raise InputError(
                f"{path}: {len(off)} grade value(s) are not on the scale {values} ({_few(off)}); "
                "fix the grades or pick the right --scale"
            )
    return {
        "kappa": cohen_kappa(a, b, values),
        "weighted_kappa_quadratic": weighted_kappa(a, b, values, "quadratic"),
        "weighted_kappa_linear": weighted_kappa(a, b, values, "linear"),
        "n": len(items),
        "per_class": {str(v): m for v, m in per_class_prf(a, b, values).items()},
        "confusion_matrix": confusion_matrix(a, b, values).tolist(),
        "scale": list(values),
    }


# -- sidecar logs ---------------------------------------------------------------------------------


def _image_sha(records: list[dict[str, Any]], path: Any) -> str:
    for r in records:
        sha = (r.get("image") or {}).get("sha256")
        if sha:
            return str(sha)
    raise InputError(
        f"{path}: the log names no image (no record carries image.sha256); is it a clinlabel log?"
    )


def _label_names(records: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for r in records:
        t = r.get("target")
        if isinstance(t, dict) and isinstance(t.get("labels"), str) and t["labels"] not in names:
            names.append(t["labels"])
    return names


def _geometry_beside(log_path: Path) -> Geometry:
    image = _image_beside(log_path)
    if image is not None and image.is_file():
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(image))
        reader.ReadImageInformation()
        geometry = Geometry(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
        return geometry if _states_pixel_size(image) else PixelGeometry.like(geometry)
    raise InputError(
        f"{log_path}: the log records no image geometry and the image is not beside it; "
        "distances in mm need the spacing — open the image once so it is logged"
    )


def final_labels_from_log(
    log_path: str | os.PathLike[str], labels_name: str
) -> tuple[np.ndarray, Geometry]:
    """The final label array ``labels_name`` replayed from a verified log, and the image geometry.

    Only final labels are in the array: proposals reach it only once a human accepted them. The
    geometry is a :class:`~.volume.PixelGeometry` when the image states no pixel size.
    """
    res = replay_labels(log_path)
    labels = res.labels.get(labels_name)
    if labels is None:
        raise InputError(f"{log_path}: labels {labels_name!r} were never created in this log")
    geometry = res.geometry or _geometry_beside(Path(log_path))
    if spacing_known(geometry) and not log_spacing_known(log_path, geometry=geometry):
        geometry = PixelGeometry.like(geometry)
    return labels, geometry


def logs_agreement(
    a_path: str | os.PathLike[str],
    b_path: str | os.PathLike[str],
    labels_name: str | None = None,
    exclude_pending: bool = False,
) -> dict[str, Any]:
    """``{"labels": {...}}`` between the final labels of two readers' logs of the same image."""
    paths = (Path(a_path), Path(b_path))
    recs = []
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: no such log file; check the path")
        try:
            recs.append(list(iter_records(p)))
        except LogError:
            raise
        except (ValueError, KeyError) as exc:
            raise InputError(
                f"{p}: not a readable clinlabel log ({exc}); run 'clinlabel log verify'"
            ) from None
    sha_a, sha_b = _image_sha(recs[0], paths[0]), _image_sha(recs[1], paths[1])
    if sha_a != sha_b:
        raise InputError(
            f"{paths[0]} and {paths[1]} are logs of different images (voxel sha256 {sha_a[:12]}… vs "
            f"{sha_b[:12]}…); compare two readers' logs of the same image"
        )
    for p in paths:
        report = verify_log(p)
        if not report.ok:
            raise LogIntegrityError(
                f"{p}: {report.summary()}; its labels cannot be trusted — restore the log from a "
                "backup (see 'clinlabel log verify')",
                report.first_bad_seq,
            )
        n = pending_count(p)
        if n and not exclude_pending:
            raise PendingProposalsError(
                f"{p}: {n} model proposal(s) are still undecided; decide them, or pass "
                "--exclude-pending to compare final labels only",
                n,
            )
    names = [_label_names(r) for r in recs]
    chosen = []
    for p, ns in zip(paths, names, strict=True):
        if labels_name is not None:
            if labels_name not in ns:
                raise InputError(
                    f"{p}: has no labels called {labels_name!r} (it has: {', '.join(ns) or 'none'})"
                )
            chosen.append(labels_name)
        elif len(ns) == 1:
            chosen.append(ns[0])
        elif not ns:
            raise InputError(f"{p}: holds no labels to compare")
        else:
            common = [n for n in names[0] if n in names[1]]
            if len(common) != 1:
                raise InputError(
                    f"{p}: holds several label layers ({', '.join(ns)}); choose one with --labels NAME"
                )
            chosen.append(common[0])
    _require_may_compare(paths, recs, chosen)
    replayed = [final_labels_from_log(p, n) for p, n in zip(paths, chosen, strict=True)]
    arrays, geoms = [r[0] for r in replayed], [r[1] for r in replayed]
    _check_same_grid(arrays[0].shape, geoms[0], arrays[1].shape, geoms[1], paths[0], paths[1])
    return {"labels": label_map_agreement(arrays[0], arrays[1], geoms[0])}


def _require_may_compare(
    paths: tuple[Path, Path], recs: list[list[dict[str, Any]]], chosen: list[str]
) -> None:
    """A reader of this image may not compare with another reader's read before adjudication
    (someone who read none of it, e.g. a researcher, may; roles that may see reads may)."""
    readers = set().union(*(readers_in(r) for r in recs))
    if (os.environ.get("CLINLABEL_USER") or login_name()) not in readers:
        return
    actor = current_actor(near=paths[0])
    for p, r, name in zip(paths, recs, chosen, strict=True):
        require_readable(r, name, actor, find_roster(p), str(p), "No agreement was computed.",
                         readers=readers)  # fmt: skip


def agreement(
    a_path: str | os.PathLike[str],
    b_path: str | os.PathLike[str],
    scale: str | None = None,
    labels_name: str | None = None,
    exclude_pending: bool = False,
) -> dict[str, Any]:
    """Agreement of two readers' label maps, grade tables or sidecar logs (see module docstring)."""
    ka, kb = detect_kind(a_path), detect_kind(b_path)
    if ka != kb:
        raise InputError(
            f"{a_path} is a {ka.replace('_', ' ')} but {b_path} is a {kb.replace('_', ' ')}; compare like with like"
        )
    if ka == "label_map":
        return label_maps_agreement(a_path, b_path)
    if ka == "grades":
        return grades_agreement(a_path, b_path, scale)
    return logs_agreement(a_path, b_path, labels_name, exclude_pending)
