"""The one export entry point (CLI and napari writers): gate, final labels, atomic files, a record.

``export(image_path, fmt, out)`` refuses while model proposals are undecided (unless
``exclude_pending``: pending proposals are never in the final labels, and the record says how many
were left out), takes the final labels from the log's replay, renders the format, writes every
output atomically (temporary file, fsync, rename; on any failure nothing new is left behind) and
then appends ONE ``export`` record naming each output's sha256 and size and the log head covered.
If that record cannot be written, the outputs are removed again: no export without its record.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.annotate.boxes import load_boxes
from napari_clinlabel.core.annotate.grading import load_grades
from napari_clinlabel.core.annotate.measurements import measurements_csv, measurements_in_log
from napari_clinlabel.core.annotate.provenance import summarize, walk_provenance
from napari_clinlabel.core.annotate.reads import readable_arrays, require_readable
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.annotate.tiles import is_tile_id, tile_grades_csv_bytes
from napari_clinlabel.core.errors import ClinlabelError, ExportError, LogError
from napari_clinlabel.core.export import labelmap as lm
from napari_clinlabel.core.export import tables as tb
from napari_clinlabel.core.export.formats import (  # noqa: F401 - re-exported
    ALL_FORMATS,
    FORMATS,
    LABEL_FORMATS,
    PHYSICAL_LABEL_FORMATS,
    TABLE_FORMATS,
)
from napari_clinlabel.core.export.seg import build_seg, seg_bytes, source_series_datasets
from napari_clinlabel.core.export.sr import sr_from_log
from napari_clinlabel.core.image.dicom.volume import (
    map_to_original_slices,
    original_blocks,
    original_slice_span,
)
from napari_clinlabel.core.image.io import is_dicom_file, read_volumes
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import (
    AuditLog,
    Head,
    fsync_dir,
    iter_records,
    sidecar_paths,
)
from napari_clinlabel.core.log.identity import Actor, current_actor, find_roster
from napari_clinlabel.core.log.resample import last_resample, read_resampled, resampled_log_base
from napari_clinlabel.core.log.witness import witness_record
from napari_clinlabel.core.proposals.lifecycle import require_no_pending
from napari_clinlabel.core.schema import load_schema

_SUFFIXES = {
    "nifti": (".nii.gz", ".nii"),
    "nrrd": (".nrrd",),
    "mha": (".mha",),
    "png": (".png",),
    "dicom-seg": (".dcm",),
    "dicom-sr": (".dcm",),
    "json": (".json",),
    "csv": (".csv",),
    "coco": (".json",),
    "tiles-csv": (".csv",),
}


@dataclass
class ExportOutput:
    """One file written: where, its sha256 and its size in bytes."""

    path: Path
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """Record form: the file name only (folders may be identifying), digest and size."""
        return {"name": self.path.name, "sha256": self.sha256, "bytes": self.bytes}


@dataclass
class ExportResult:
    """What an export wrote and the ``export`` record that covers it."""

    format: str
    outputs: list[ExportOutput]
    record: dict[str, Any]
    pending_left_out: int = 0
    notes: list[str] = field(default_factory=list)


def output_path(fmt: str, out: str | os.PathLike[str]) -> Path:
    """``out`` with the format's suffix (added when missing)."""
    if fmt not in ALL_FORMATS:
        raise ExportError(f"Unknown export format {fmt!r}; choose one of {', '.join(ALL_FORMATS)}.")
    p = Path(out)
    if p.is_dir():
        raise ExportError(
            f"{p}: is a folder; give a file name (e.g. {p / ('labels' + _SUFFIXES[fmt][0])})."
        )
    if not any(p.name.lower().endswith(s) for s in _SUFFIXES[fmt]):
        p = p.with_name(p.name + _SUFFIXES[fmt][0])
    return p


def _stem(p: Path) -> Path:
    name = p.name
    for s in (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".dcm", ".json", ".csv"):
        if name.lower().endswith(s):
            return p.with_name(name[: -len(s)])
    return p


def export(
    image_path: str | os.PathLike[str],
    fmt: str,
    out: str | os.PathLike[str],
    *,
    exclude_pending: bool = False,
    labels_name: str | None = None,
    actor: Actor | None = None,
    schema: Any | None = None,
    include_empty: bool = False,
    expect_labels: np.ndarray | None = None,
    seg_type: str = "binary",
    log: AuditLog | None = None,
    volume: Volume | None = None,
    scale: str | None = None,
    resample: bool = False,
) -> ExportResult:
    """Export the final labels (or boxes/grades) of ``image_path`` as ``fmt`` to ``out``.

    ``expect_labels`` (napari writers pass the layer's data) must equal the labels the log
    replays to; a layer holding changes the log does not know is refused. A caller that holds
    the image's open log and its voxels (a napari widget) passes ``log`` and ``volume``: the
    ``export`` record is then written through that log, and ``image_path`` may be None.
    ``scale`` (``tiles-csv``) keeps the grades of one tile scale. ``resample``: the log's
    image is its DICOM series resampled on request (``image.resample``); it is read resampled
    again (the recorded spacing) and label maps go back onto the original slices, one output per
    even block (``<name>.slices<first>-<last>.<ext>``); without it such a log is refused.
    """
    out_path = output_path(fmt, out)
    if resample and log is None:
        _require_dicom_series(image_path)
    log_base = resampled_log_base(image_path) if resample and log is None else image_path
    log_path = log.path if log is not None else sidecar_paths(log_base)[0]
    if not log_path.is_file() and log is None and not resample:
        other = sidecar_paths(resampled_log_base(image_path))[0]
        if other.is_file():
            raise ExportError(
                f"{Path(image_path).name}: it was annotated resampled on request (its log is "
                f"{other.name}); pass --resample to export those labels back onto the original "
                "slices."
            )
    if not log_path.is_file():
        raise ExportError(
            f"{Path(image_path or log_path).name}: no sidecar log ({log_path.name}) beside it, so "
            "nothing was annotated to export. Open the image, annotate, then export."
        )
    records = list(iter_records(log_path))
    who = actor or (log.actor if log is not None else current_actor(image_path or log_path))
    if fmt in LABEL_FORMATS:
        labels_name = _layer_name(records, labels_name, log_path, who)
    volume = volume if volume is not None else _volume_of(image_path, records, resample)
    if fmt == "dicom-sr" and volume.meta.get("resampled"):
        raise ExportError(
            f"{Path(image_path or log_path).name}: boxes drawn on a resampled series lie on no "
            "original frame a DICOM SR could reference; export json or csv (positions in mm)."
        )
    if fmt in LABEL_FORMATS:
        _check_format_fits(fmt, out_path, volume)
    left_out = require_no_pending(log_path, exclude_pending)
    schema_obj, notes = _schema_of(
        records,
        schema,
        strict=fmt == "dicom-seg",
        labels_name=labels_name if fmt in LABEL_FORMATS else None,
    )
    schema_ref = schema_obj.ref() if schema_obj is not None else _last_schema_ref(records)
    own_log = log is None
    if own_log:
        log = AuditLog.for_image(log_base, volume.image_ref(), who, schema_ref)
    head = log.head()
    carry: dict[str, Any] = {}  # labels carried between original slices (a resampled image)
    if fmt in LABEL_FORMATS:
        files = _label_outputs(fmt, out_path, log_path, labels_name, volume, schema_obj, head,
                               records, who, include_empty, expect_labels, seg_type,
                               carry)  # fmt: skip
    elif fmt == "tiles-csv":
        files = {out_path: _tile_grades_bytes(log_path, scale)}
    elif fmt == "dicom-sr":
        files = {out_path: sr_from_log(log_path, volume, records)}
    else:
        files = _table_outputs(fmt, out_path, log_path, volume, schema_obj, head)
    outputs = write_outputs_atomically(files)
    data = {
        "format": fmt,
        "outputs": [o.to_dict() for o in outputs],
        "head": head.to_dict(),
        "exclude_pending": bool(exclude_pending),
        "pending_left_out": int(left_out),
    }
    if fmt in LABEL_FORMATS:
        data["labels"] = labels_name
    if carry:
        data["carried_between_slices"] = carry
        notes.extend(carry_notes(carry))
    if scale is not None and fmt == "tiles-csv":
        data["scale"] = scale
    try:
        rec = log.append("export", {"export": fmt, "layer": labels_name}, data, actor=who)
    except LogError:
        for o in outputs:
            o.path.unlink(missing_ok=True)
        raise
    finally:
        if own_log:
            log.close()
    # the head that includes this export record, beside the outputs and in the witness files
    # (the side file can only name the head before it: the record lists its digest)
    anchor = _stem(out_path).with_name(_stem(out_path).name + ".witness.jsonl")
    witness_record(log_path, rec, "export", extra=[anchor])
    if left_out:
        notes.append(f"{left_out} undecided proposal(s) left out (they are not final labels).")
    return ExportResult(fmt, outputs, rec, int(left_out), notes)


def _require_dicom_series(image_path: str | os.PathLike[str] | None) -> None:
    """``resample`` names a DICOM series (its folder or one of its files), nothing else."""
    p = Path(image_path) if image_path is not None else None
    if p is not None and p.is_file() and not is_dicom_file(p):
        raise ExportError(
            f"{p.name}: --resample applies to an unevenly spaced DICOM series only (its folder "
            "or one of its files); export this image without --resample."
        )


def _layer_name(
    records: list[dict[str, Any]], wanted: str | None, log_path: Path, who: Actor
) -> str:
    """``wanted``, else the log's only labels layer ``who`` may read (several: the user must
    choose); another reader's read is refused to an annotator until adjudication."""
    roster = find_roster(log_path)
    if wanted:
        require_readable(records, wanted, who, roster, log_path.name)
        return wanted
    names, _ = readable_arrays(records, who, roster)
    if len(names) == 1:
        return names[0]
    if not names:
        raise ExportError(f"{log_path.name}: the log holds no labels; draw or accept labels first.")
    raise ExportError(
        f"{log_path.name}: the log holds several labels layers ({', '.join(names)}); pass "
        "--labels NAME to choose one (one reader per DICOM SEG)."
    )


def _check_format_fits(fmt: str, out: Path, volume: Volume) -> None:
    """Refuse, before anything is written, a label format that would misstate the image."""
    if fmt in PHYSICAL_LABEL_FORMATS:
        lm.require_physical_spacing(volume.geometry, out)
    elif fmt == "png":
        lm.require_png_shape(volume.spatial_shape, out)
    elif fmt == "dicom-seg" and not volume.spacing_known:
        # highdicom copies PixelSpacing from the source images; there is none to copy
        raise ExportError(
            f"{out}: the DICOM image states no pixel spacing (no PixelSpacing tag), and a DICOM "
            "SEG must declare one. Save the labels as PNG "
            f"({lm.png_name(out)}) instead."
        )


def _volume_of(
    image_path: str | os.PathLike[str], records: list[dict[str, Any]], resample: bool = False
) -> Volume:
    ref = next((r.get("image") for r in records if r.get("image")), None) or {}
    asked = last_resample(records)
    name = Path(image_path).name
    if asked is not None and not resample:
        raise ExportError(
            f"{name}: its labels were drawn on the series resampled on request (image.resample, "
            f"seq {asked['seq']}); pass --resample to export them back onto the original slices."
        )
    if resample:
        if asked is None:
            raise ExportError(
                f"{name}: its log holds no image.resample record (it was never opened "
                "resampled); export without --resample."
            )
        data = asked.get("data") or {}
        v = read_resampled(image_path, float(data["to_spacing_mm"]), data.get("series_uid"))
        if ref.get("sha256") and v.sha256 != ref["sha256"]:
            raise ExportError(
                f"{name}: resampled again, the series gives other voxels (digest "
                f"{v.sha256[:12]}…) than its log records ({str(ref['sha256'])[:12]}…); were "
                "files added or removed? Restore the series the log was made on."
            )
        return v
    volumes = read_volumes(image_path)
    for v in volumes:
        if not ref.get("sha256") or v.sha256 == ref["sha256"]:
            return v
    raise ExportError(
        f"{Path(image_path).name}: the sidecar log belongs to other voxels (digest "
        f"{str(ref.get('sha256'))[:12]}…) than this image; export the image the log was made on."
    )


def _last_schema_ref(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    for r in reversed(records):
        if r.get("schema"):
            return r["schema"]
    return None


def _labels_schema_ref(records: list[dict[str, Any]], labels_name: str) -> dict[str, Any] | None:
    """The latest schema named by a record about labels ``labels_name``: its edits, the model
    proposals meant for it and their decisions (a lesion or grading schema of box or grade
    records names no labels and is passed over)."""
    proposals: set[str] = set()
    found = None
    for r in records:
        target, data = r.get("target") or {}, r.get("data") or {}
        if r.get("action") == "proposal.add" and data.get("labels") == labels_name:
            proposals.add(str(target.get("proposal")))
        about = target.get("labels") == labels_name or str(target.get("proposal")) in proposals
        if about and (r.get("schema") or {}).get("id"):
            found = r["schema"]
    return found


def _schema_of(
    records: list[dict[str, Any]], given: Any, strict: bool, labels_name: str | None = None
) -> tuple[Any, list[str]]:
    """The schema to name labels with: ``given`` (object, file or builtin), else the schema the
    log names for labels ``labels_name``, else the log's latest."""
    if given is not None:
        return (given if hasattr(given, "labels") else load_schema(given)), []
    ref = (_labels_schema_ref(records, labels_name) if labels_name else None) or _last_schema_ref(
        records
    )
    if not ref:
        return None, ["the log names no schema: labels are exported by value only"]
    try:
        s = load_schema(ref["id"])
    except ClinlabelError:
        s = None
    if s is not None and s.sha256 == ref.get("sha256"):
        return s, []
    msg = (
        f"the log's schema {ref.get('id')} {ref.get('version')} (sha256 "
        f"{str(ref.get('sha256'))[:12]}…) is not installed here; pass --schema FILE"
    )
    if strict:
        raise ExportError(f"DICOM SEG needs the label codes: {msg}.")
    return None, [msg]


def _final_labels(log_path: Path, labels_name: str, shape: tuple[int, ...]) -> np.ndarray:
    result = replay_labels(log_path, image_shape=shape)  # record shapes checked against the image
    layers = result.labels
    if labels_name not in layers:
        have = ", ".join(sorted(layers)) or "none"
        raise ExportError(
            f"{log_path.name}: no labels layer named {labels_name!r} (the log has: {have}); pass "
            "--labels NAME."
        )
    labels = np.asarray(layers[labels_name])
    if tuple(labels.shape) != tuple(shape):
        raise ExportError(
            f"Labels {labels_name!r} are {labels.shape} but the image grid is {tuple(shape)}; "
            "export labels drawn on this image."
        )
    if not np.any(labels):
        raise ExportError(
            f"Labels {labels_name!r} are empty: nothing to export. Draw or accept labels first."
        )
    return labels


def _label_outputs(
    fmt: str, out: Path, log_path: Path, labels_name: str, volume: Volume, schema: Any,
    head: Head, records: list[dict[str, Any]], who: Actor, include_empty: bool,
    expect: np.ndarray | None, seg_type: str = "binary", carry: dict | None = None,
) -> dict[Path, bytes]:  # fmt: skip
    labels = _final_labels(log_path, labels_name, volume.spatial_shape)
    if expect is not None and not np.array_equal(np.asarray(expect), labels):
        raise ExportError(
            f"Labels {labels_name!r} hold changes the audit log does not record (the layer "
            "differs from the log's replay); only logged labels are exported. Redo the change "
            "with the clinlabel tools, or reopen the image."
        )
    if volume.meta.get("resampled"):
        return _original_slice_outputs(fmt, out, log_path, labels_name, labels, volume, schema,
                                       head, records, who, include_empty, seg_type,
                                       carry)  # fmt: skip
    if fmt == "dicom-seg":
        return {out: _seg_bytes(labels, log_path, labels_name, volume, schema, records, who,
                                include_empty, seg_type)}  # fmt: skip
    data = lm.render_labelmap(labels, volume.geometry, lm.suffix_for(fmt, out))
    side = lm.side_file(labels, volume.geometry, schema, head.to_dict(), volume.sha256,
                        labels_name, out.name)  # fmt: skip
    # named per output (labels.nii.gz.json, labels.nrrd.json): two formats to one stem never
    # overwrite each other's side file, so each export record's sha256 keeps matching its file
    return {out: data, side_file_path(out): lm.side_file_bytes(side)}


def _original_slice_outputs(
    fmt: str, out: Path, log_path: Path, labels_name: str, labels: np.ndarray, volume: Volume,
    schema: Any, head: Head, records: list[dict[str, Any]], who: Actor, include_empty: bool,
    seg_type: str, carry: dict | None = None,
) -> dict[Path, bytes]:  # fmt: skip
    """Labels drawn on a resampled series, back on its original slices: one output per even
    block (each original slice takes its nearest resampled slice, and where that is 0 the labels
    of the resampled slices nearest to it: nothing drawn is dropped), with the block's geometry
    (label maps, every block) or its original frames (DICOM SEG, blocks holding a label).
    ``carry`` receives what was carried (:func:`map_to_original_slices`) when any was."""
    if fmt == "png":
        raise ExportError(f"{out.name}: PNG holds one 2D slice; export a resampled series as "
                          "nifti, nrrd, mha or dicom-seg.")  # fmt: skip
    files: dict[Path, bytes] = {}
    backs, carried = map_to_original_slices(labels, volume)
    if carry is not None and (carried["voxels"] or carried["shadowed_voxels"]):
        carry.update(carried)
    for (block, geometry, sops), back in zip(original_blocks(volume), backs, strict=True):
        stem = _stem(out)
        path = stem.with_name(
            f"{stem.name}.slices{block[0]}-{block[1]}{out.name[len(stem.name) :]}"
        )
        if fmt == "dicom-seg":
            if not np.any(back):  # a SEG of no segment is not written (a label map is)
                continue
            meta = {k: v for k, v in volume.meta.items() if k != "resampled"}
            meta["sop_instance_uids"] = sops
            block_vol = Volume(np.zeros(back.shape, np.uint8), geometry, meta)
            files[path] = _seg_bytes(back, log_path, labels_name, block_vol, schema, records,
                                     who, include_empty, seg_type, traced=labels)  # fmt: skip
            continue
        files[path] = lm.render_labelmap(back, geometry, lm.suffix_for(fmt, path))
        side = lm.side_file(back, geometry, schema, head.to_dict(), volume.sha256, labels_name,
                            path.name)  # fmt: skip
        files[side_file_path(path)] = lm.side_file_bytes(side)
    if not files:
        raise ExportError(f"Labels {labels_name!r} fall on no original slice; nothing to export.")
    return files


def carry_notes(carry: dict[str, Any]) -> list[str]:
    """The export's lines about labels carried between original slices (a resampled image)."""
    notes = []
    if carry.get("voxels"):
        onto = ", ".join(str(k) for k in carry["onto_slices"])
        notes.append(
            f"{carry['voxels']} labelled voxel(s) drawn on resampled slices between original "
            f"ones were carried onto the nearest original slice(s): {onto}."
        )
    if carry.get("shadowed_voxels"):
        notes.append(
            f"{carry['shadowed_voxels']} labelled voxel(s) of a resampled slice between original "
            "ones were not carried: a nearer resampled slice gives that voxel another label."
        )
    return notes


def side_file_path(out: str | os.PathLike[str]) -> Path:
    """Where the JSON side file of label map ``out`` goes: ``<output>.json`` beside it."""
    p = Path(out)
    return p.with_name(p.name + ".json")


def _seg_bytes(
    labels: np.ndarray, log_path: Path, labels_name: str, volume: Volume, schema: Any,
    records: list[dict[str, Any]], who: Actor, include_empty: bool, seg_type: str = "binary",
    traced: np.ndarray | None = None,
) -> bytes:  # fmt: skip
    if volume.series_uid is None or volume.source_path is None:
        raise ExportError(
            f"{volume.source_path.name if volume.source_path else 'This image'}: not read from "
            "DICOM, so there is no series for a DICOM SEG to reference; export NIfTI instead."
        )
    state = walk_provenance(log_path, labels_name)
    # ``traced``: the labels the log holds when ``labels`` were mapped from them (resampled)
    if state.labels is None or not np.array_equal(
        state.labels, labels if traced is None else traced
    ):
        raise ExportError(
            f"{log_path.name}: the provenance of {labels_name!r} cannot be traced for every voxel "
            "(labels loaded from outside the log?); export NIfTI, or redraw them in clinlabel."
        )
    prov = summarize(state)
    confirmers = set().union(*(p.confirmed_by for p in prov.values())) if prov else set()
    names = {str(r["actor"]["id"]): str(r["actor"].get("name") or r["actor"]["id"])
             for r in records if r.get("actor")}  # fmt: skip
    creator = names.get(next(iter(confirmers)), who.name) if len(confirmers) == 1 else who.name
    files = volume.meta.get("source_files") or volume.source_path
    source = source_series_datasets(files, volume.series_uid)
    sops = volume.meta.get("sop_instance_uids")
    if sops:
        wanted = set(sops)
        source = [ds for ds in source if str(ds.SOPInstanceUID) in wanted]
    seg = build_seg(labels, volume.geometry, source, schema, prov, creator,
                    include_empty=include_empty, seg_type=seg_type)  # fmt: skip
    return seg_bytes(seg)


def _tile_grades_bytes(log_path: Path, scale: str | None) -> bytes:
    """The tile grades in force as CSV; refused when there is none to export."""
    grades = load_grades(log_path)
    if not any((scale is None or sc == scale) and is_tile_id(item) for sc, item in grades):
        raise ExportError(
            f"{log_path.name}: no tile grades{f' on scale {scale}' if scale else ''} to export; "
            "grade tiles first."
        )
    return tile_grades_csv_bytes(grades, scale)


def _table_outputs(
    fmt: str, out: Path, log_path: Path, volume: Volume, schema: Any, head: Head
) -> dict[Path, bytes]:
    boxes = list(load_boxes(log_path).values())
    grades = sorted(load_grades(log_path).values(), key=lambda g: (g.scale, g.item))
    # distance/RECIST measurements travel in the JSON and CSV tables (not in COCO)
    measures = measurements_in_log(log_path) if fmt in ("json", "csv") else []
    if not boxes and not grades and not measures:
        raise ExportError(
            f"{log_path.name}: no lesion boxes or grades to export; draw boxes or grade first."
        )
    extra = {"schema": schema.ref() if schema is not None else None, "log_head": head.to_dict(),
             "image_sha256": volume.sha256}  # fmt: skip
    span, grid = None, ""
    r = volume.meta.get("resampled")
    if r:  # slice indices are on the resampled grid: say so, and give the series' own slices

        def span(first: int, last: int) -> tuple[int, int] | None:
            return original_slice_span(volume, first, last)

        grid = f"resampled {float(r['to_spacing_mm']):.10g} mm"
        extra["slice_grid"] = {
            "resampled": True,
            "spacing_mm": float(r["to_spacing_mm"]),
            "slices": int(volume.spatial_shape[0]),
            "original_slices": int(r["original_slices"]),
            "note": "slice_first/slice_last and voxel z are on the resampled grid; "
            "original_slice_first/original_slice_last are the series' slice numbers (1-based) "
            "the box goes onto, as labels do on export; world mm are unchanged",
        }
    if fmt == "json":
        if measures:
            extra["measurements"] = measures
        return {out: tb.tables_json(boxes, grades, volume.geometry, extra, span)}
    if fmt == "csv":
        grades_path = _stem(out).with_name(_stem(out).name + ".grades.csv")
        outs = {out: tb.boxes_csv(boxes, volume.geometry, span, grid),
                grades_path: tb.grades_csv(grades)}  # fmt: skip
        if measures:
            outs[_stem(out).with_name(_stem(out).name + ".measurements.csv")] = measurements_csv(
                measures
            )
        return outs
    name = volume.source_path.name if volume.source_path else "image"
    return {out: tb.coco(boxes, grades, volume.spatial_shape, name,
                         classes=list(getattr(schema, "lesion_classes", []) or []),
                         tile_size=getattr(schema, "tile_size", None), extra=extra)}  # fmt: skip


def write_outputs_atomically(files: dict[Path, bytes]) -> list[ExportOutput]:
    """Write every file via temp + fsync + rename; on failure remove temps and new files."""
    for p in files:
        if not p.parent.is_dir():
            raise ExportError(
                f"{p}: the folder {p.parent} does not exist; create it or choose another."
            )
        if not os.access(p.parent, os.W_OK):
            raise ExportError(
                f"{p}: the folder {p.parent} is not writable; choose another output folder."
            )
    temps: dict[Path, str] = {}
    done: list[Path] = []
    try:
        for p, data in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
            temps[p] = tmp
            os.fchmod(fd, 0o644)  # exports are meant to be shared (mkstemp makes them 0600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for p, tmp in temps.items():
            os.replace(tmp, p)
            done.append(p)
        for folder in {p.parent for p in files}:
            fsync_dir(folder)
    except OSError as exc:
        for tmp in temps.values():
            Path(tmp).unlink(missing_ok=True)
        for p in done:
            p.unlink(missing_ok=True)
        raise ExportError(
            f"{next(iter(files))}: cannot write the export ({exc.strerror}); free space or choose "
            "a writable folder. Nothing was written."
        ) from None
    return [ExportOutput(p, hashlib.sha256(d).hexdigest(), len(d)) for p, d in files.items()]
