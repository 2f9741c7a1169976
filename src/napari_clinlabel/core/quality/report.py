"""Dataset report, the numbers: every sidecar log under a folder, verified, summarised, compared.

:func:`collect_dataset` walks a dataset folder for ``*.clinlabel.jsonl`` logs and gathers

- the result of verifying each log exactly as ``clinlabel log verify`` does (chain, fields,
  objects, roles and signatures against the roster in force, every witnessed head), and the
  authority (roster, owner) it used;
- who read each image (the human who made its label/grade records), the schema versions in force;
- how each final segment came about — ``manual``, ``tool``, ``model accepted unchanged``,
  ``model edited`` or ``adjudicated`` — from the per-voxel provenance walk, and the fate of every
  model proposal;
- inter-reader agreement for images read by two or more readers: Dice / HD95 per label and
  reader pair (final labels only; HD95 in pixels, ``hd95_px`` …, for images that state no pixel
  size — PNG, JPEG, a TIFF without resolution tags), kappa / quadratic-weighted kappa per scale and reader pair
  over the images both graded, with confusion matrices;
- the distribution of cases by sex, age band, site and scanner from DICOM headers (never names,
  IDs or birth dates; ages only as 10-year bands).

:mod:`.report_html` renders the result as one self-contained HTML page.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from napari_clinlabel.core.annotate.provenance import TOOL_PREFIX, walk_provenance
from napari_clinlabel.core.annotate.replay import LOG_SUFFIX, log_spacing_known, replay_labels
from napari_clinlabel.core.errors import ClinlabelError, InputError, LogIntegrityError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry, spacing_known
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.authority import summary_line, verify_trusted
from napari_clinlabel.core.proposals.lifecycle import load_proposals
from napari_clinlabel.core.quality.kappa import (
    cohen_kappa,
    confusion_matrix,
    per_class_prf,
    weighted_kappa,
)
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.core.schema import load_schema

__all__ = ["LogSummary", "DatasetReport", "collect_dataset", "dicom_demographics", "age_band"]

ORIGINS = ("manual", "tool", "model accepted unchanged", "model edited", "adjudicated")
_UNKNOWN = "unknown"


@dataclass
class LogSummary:
    """One image's log: verification, reader, schemas, provenance, proposals, grades."""

    path: str  # relative to the dataset folder
    image_sha: str
    verified: bool
    verify_summary: str
    reader: str
    actors: list[str]
    schemas: list[str]
    segment_origins: dict[str, str] = field(default_factory=dict)  # "<layer>:<value>" -> origin
    authority: str = ""  # the roster (and its owner) the log was verified against
    proposals: dict[str, int] = field(default_factory=dict)  # state -> count
    grades: dict[str, dict[str, str]] = field(default_factory=dict)  # scale -> {item: value}
    demographics: dict[str, str] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    geometry: Geometry | None = None  # a PixelGeometry when the image states no pixel size


@dataclass
class DatasetReport:
    """Everything the HTML report shows."""

    root: str
    logs: list[LogSummary]
    seg_pairs: list[dict[str, Any]]  # image, reader_a, reader_b, label, dice, hd95_mm|hd95_px, …
    grade_pairs: list[dict[str, Any]]  # scale, reader_a, reader_b, n, kappa, wk, cm, values
    origins: dict[str, int]
    proposals: dict[str, int]
    schema_versions: dict[str, int]
    demographics: dict[str, dict[str, int]]  # field -> value -> number of images
    # the programme view (core.programme.report.programme_view) when the folder is a dataset
    programme: dict[str, Any] | None = None

    @property
    def acceptance_rate(self) -> float:
        """(accepted + edited) / decided proposals; NaN when none was decided."""
        p = self.proposals
        decided = p.get("accepted", 0) + p.get("edited", 0) + p.get("rejected", 0)
        return (p.get("accepted", 0) + p.get("edited", 0)) / decided if decided else float("nan")

    @property
    def unchanged_rate(self) -> float:
        """accepted unchanged / decided proposals; NaN when none was decided."""
        p = self.proposals
        decided = p.get("accepted", 0) + p.get("edited", 0) + p.get("rejected", 0)
        return p.get("accepted", 0) / decided if decided else float("nan")


def age_band(patient_age: str | None) -> str:
    """10-year band ("40-49") of a DICOM Age String ("045Y", "006M"); "unknown" if absent."""
    if not patient_age:
        return _UNKNOWN
    s = str(patient_age).strip().upper()
    try:
        n, unit = int(s[:-1]), s[-1]
    except ValueError:
        return _UNKNOWN
    years = {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}.get(unit)
    if years is None:
        return _UNKNOWN
    lo = (years // 10) * 10
    return f"{lo}-{lo + 9}" if lo < 90 else "90+"


def _first_dicom(image: Path) -> Path | None:
    if image.is_file():
        return image
    if image.is_dir():
        for p in sorted(image.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                return p
    return None


def dicom_demographics(image: Path) -> dict[str, str]:
    """Sex, age band, site and scanner of a DICOM file or series folder ("unknown" if not DICOM)."""
    out = {"sex": _UNKNOWN, "age band": _UNKNOWN, "site": _UNKNOWN, "scanner": _UNKNOWN}
    f = _first_dicom(image)
    if f is None:
        return out
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
    except Exception:  # not DICOM (NIfTI, PNG, …): nothing to report, not an error
        return out
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    out["sex"] = {"M": "M", "F": "F", "O": "O"}.get(sex, _UNKNOWN)
    out["age band"] = age_band(ds.get("PatientAge", None))
    out["site"] = str(ds.get("InstitutionName", "") or "").strip() or _UNKNOWN
    scanner = " ".join(
        str(ds.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")
    ).strip()
    out["scanner"] = scanner or _UNKNOWN
    return out


def _origin_of(kinds: set[str]) -> str:
    if "adjudicated" in kinds:
        return "adjudicated"
    if kinds == {"model"}:
        return "model accepted unchanged"
    if kinds & {"model", "edited"}:
        return "model edited"
    if "tool" in kinds:  # a semi-automatic editing tool made some of its voxels
        return "tool"
    return "manual"


def _segment_origins(log_path: Path, layer: str) -> dict[int, str]:
    st = walk_provenance(log_path, layer)
    if st.labels is None or st.tag_of_voxel is None:
        return {}
    flat, tflat = st.labels.reshape(-1), st.tag_of_voxel.reshape(-1)
    nz = np.flatnonzero(flat)
    out = {}
    for v in np.unique(flat[nz]):
        tags = np.unique(tflat[nz[flat[nz] == v]])
        kinds = {st.tags[int(t)][0] for t in tags}
        touched = [m for m in st.touched.get(int(v), ()) if not m[0].startswith(TOOL_PREFIX)]
        if touched:  # a human changed some of the model's voxels of this label
            kinds.add("edited")
        out[int(v)] = _origin_of(kinds)
    return out


def _readable_records(log_path: Path) -> list[dict]:
    """Records up to the first line that is not a JSON object (all of them in a sound log)."""
    out: list[dict] = []
    try:
        for rec in iter_records(log_path):
            if not isinstance(rec, dict):
                break
            out.append(rec)
    except (ValueError, LogIntegrityError):
        pass
    return out


def _summarise(root: Path, log_path: Path) -> LogSummary:
    # exactly as `clinlabel log verify` does: the roster in force, every witnessed head
    report, trust = verify_trusted(log_path)
    records = _readable_records(log_path)  # a broken log is listed as broken, not fatal
    actors = Counter()
    schemas: list[str] = []
    sha = ""
    for r in records:
        sha = sha or str((r.get("image") or {}).get("sha256") or "")
        sc = r.get("schema")
        if isinstance(sc, dict) and sc.get("id"):
            tag = f"{sc['id']} {sc.get('version', '?')}"
            if tag not in schemas:
                schemas.append(tag)
        a = r.get("actor") or {}
        t = r.get("target")
        is_reading = (isinstance(t, dict) and "labels" in t) or r.get("action") == "grade.set"
        if is_reading and a.get("role") != "adjudicator":
            actors[str(a.get("id"))] += 1
    all_actors = sorted({str((r.get("actor") or {}).get("id")) for r in records})
    # "" when no one read here (an adjudicator's or another non-reader's log): never a reader
    reader = actors.most_common(1)[0][0] if actors else ""
    s = LogSummary(
        str(log_path.relative_to(root)),
        sha,
        report.ok,
        summary_line(report, trust),
        reader,
        all_actors,
        schemas,
    )
    states = Counter(p.state.value for p in load_proposals(log_path)) if report.ok else Counter()
    s.authority = trust.authority()
    s.proposals = {k: states.get(k, 0) for k in ("proposed", "accepted", "edited", "rejected")}
    for r in records:
        if r.get("action") == "grade.set":
            t = r.get("target") or {}
            s.grades.setdefault(str(t.get("scale")), {})[str(t.get("item") or "image")] = str(
                (r.get("data") or {}).get("value")
            )
    if report.ok:  # numbers from a broken log would be evidence of nothing
        rep = replay_labels(log_path)
        s.labels, s.geometry = rep.labels, rep.geometry
        if not log_spacing_known(log_path, records, rep.geometry) and rep.labels:
            ndim = next(iter(rep.labels.values())).ndim
            s.geometry = PixelGeometry.like(rep.geometry or PixelGeometry.identity(ndim))
        for layer in rep.labels:
            for v, origin in _segment_origins(log_path, layer).items():
                s.segment_origins[f"{layer}:{v}"] = origin
    image = Path(str(log_path)[: -len(LOG_SUFFIX)])
    s.demographics = dicom_demographics(image)
    return s


def _seg_pairs(logs: list[LogSummary]) -> list[dict[str, Any]]:
    rows = []
    by_image: dict[str, list[LogSummary]] = defaultdict(list)
    for s in logs:
        if s.verified and s.labels and s.reader:
            by_image[s.image_sha].append(s)
    for sha, group in sorted(by_image.items()):
        for a, b in itertools.combinations(sorted(group, key=lambda x: x.reader), 2):
            if a.reader == b.reader:
                continue
            for layer in sorted(set(a.labels) & set(b.labels)):
                la, lb = a.labels[layer], b.labels[layer]
                ka = a.geometry is None or spacing_known(a.geometry)
                kb = b.geometry is None or spacing_known(b.geometry)
                if la.shape != lb.shape or ka != kb:  # not one grid: nothing to compare
                    continue
                res = label_map_agreement(la, lb, a.geometry)
                names = label_names(a.schemas + b.schemas)
                for v, m in res.items():
                    rows.append(
                        {"image": sha[:12], "reader_a": a.reader, "reader_b": b.reader,
                         "layer": layer, "label": int(v),
                         "name": names.get(int(v), f"label {int(v)}"), **m}
                    )  # fmt: skip
    return rows


def label_names(schemas: list[str]) -> dict[int, str]:
    """Label value → name from the first of ``schemas`` ("id version" tags) that defines labels."""
    for tag in schemas:
        try:
            sch = load_schema(tag.split()[0])
        except ClinlabelError:
            continue
        if sch.labels:
            return {int(lab.value): str(lab.name) for lab in sch.labels}
    return {}


def _scale_values(scale_id: str, schemas: list[str], seen: set[str]) -> tuple[list[str], bool]:
    for tag in schemas:
        try:
            sch = load_schema(tag.split()[0])
        except ClinlabelError:
            continue
        sc = sch.scales.get(scale_id)
        if sc is not None and seen <= set(sc.value_list()):
            return sc.value_list(), sc.kind == "ordinal"
    try:
        return sorted(seen, key=float), True
    except ValueError:
        return sorted(seen), False


def _grade_pairs(logs: list[LogSummary]) -> list[dict[str, Any]]:
    per: dict[str, dict[str, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    schemas: list[str] = []
    for s in logs:
        if not s.verified or not s.reader:  # an adjudicator's settled grades are no reading
            continue
        schemas += [t for t in s.schemas if t not in schemas]
        for scale, items in s.grades.items():
            for item, value in items.items():
                per[scale][s.reader][f"{s.image_sha}/{item}"] = value
    rows = []
    for scale, readers in sorted(per.items()):
        seen = {v for r in readers.values() for v in r.values()}
        values, ordinal = _scale_values(scale, schemas, seen)
        for ra, rb in itertools.combinations(sorted(readers), 2):
            common = sorted(set(readers[ra]) & set(readers[rb]))
            if not common:
                continue
            a = [readers[ra][k] for k in common]
            b = [readers[rb][k] for k in common]
            rows.append({
                "scale": scale, "reader_a": ra, "reader_b": rb, "n": len(common),
                "kappa": cohen_kappa(a, b, values),
                "weighted_kappa_quadratic": weighted_kappa(a, b, values) if ordinal else float("nan"),
                "confusion_matrix": confusion_matrix(a, b, values).tolist(),
                "per_class": per_class_prf(a, b, values), "values": values,
            })  # fmt: skip
    return rows


def collect_dataset(dataset: str | os.PathLike[str]) -> DatasetReport:
    """Verify, summarise and compare every sidecar log under ``dataset``."""
    root = Path(dataset)
    if not root.is_dir():
        raise InputError(
            f"{root}: not a folder; give the dataset folder holding images and their logs"
        )
    paths = sorted(root.rglob(f"*{LOG_SUFFIX}"))
    if not paths:
        raise InputError(
            f"{root}: holds no sidecar logs (*{LOG_SUFFIX}); annotate some images first"
        )
    root = root.resolve()
    logs = [_summarise(root, p.resolve()) for p in paths]
    origins = Counter({k: 0 for k in ORIGINS})
    proposals: Counter = Counter()
    versions: Counter = Counter()
    demo: dict[str, Counter] = defaultdict(Counter)
    seen_images: set[str] = set()
    for s in logs:
        origins.update(s.segment_origins.values())
        proposals.update(s.proposals)
        versions.update(s.schemas)
        if s.image_sha not in seen_images:  # one case per image, however many readers
            seen_images.add(s.image_sha)
            for k, v in s.demographics.items():
                demo[k][v] += 1
    return DatasetReport(
        str(root), logs, _seg_pairs(logs), _grade_pairs(logs), dict(origins), dict(proposals),
        dict(versions), {k: dict(sorted(c.items())) for k, c in demo.items()},
    )  # fmt: skip
