"""Gold panel: calibrate a new reader against a gold-standard set before production work.

A gold panel is a folder of gold label maps (one file per case) and/or a gold grade table
(CSV ``item,grade``); the reader annotates the same cases. The reader passes when

- the mean Dice over every (case, label) that the gold or the reader has reaches the schema's
  ``thresholds["dice"]`` (default 0.85, the BraTS convention), and
- kappa on the grades reaches ``thresholds["kappa"]`` (default 0.90): quadratic-weighted kappa
  for an ordinal scale, Cohen's kappa for a nominal one (without a schema scale, grades that are
  all numbers are taken as ordinal in numeric order, others as nominal).

Each part is judged only when given; a panel with neither is an error. Cases are matched by file
name; a gold case the reader has not done is an error (not a silent pass or fail). PNG / TIFF
label maps that state no pixel size are scored in pixels (``hd95_px`` …; Dice has no unit); a
gold map in mm against a reader's map in pixels is refused, naming the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.agreement import (
    LABEL_MAP_SUFFIXES,
    _check_same_grid,
    read_grade_table,
    read_label_map,
    resolve_scale,
)
from napari_clinlabel.core.quality.kappa import cohen_kappa, per_class_prf, weighted_kappa
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.core.schema import DEFAULT_THRESHOLDS

__all__ = ["GoldPanelResult", "score_reader", "case_files"]


@dataclass
class GoldPanelResult:
    """Pass/fail of a reader on a gold panel, with the figures behind it."""

    passed: bool
    thresholds: dict[str, float]
    segmentation: dict[str, Any] | None = None  # cases, per_label_mean_dice, mean_dice, passed
    grading: dict[str, Any] | None = None  # kappa, kappa_kind, n, per_class, passed
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _case_name(p: Path) -> str | None:
    low = p.name.lower()
    for suf in sorted(LABEL_MAP_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return p.name[: -len(suf)]
    return None


def case_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """``{case name: path}`` of the label maps in ``folder`` (name = file name without suffix)."""
    f = Path(folder)
    if not f.is_dir():
        raise InputError(f"{f}: not a folder of label maps; check the path")
    out: dict[str, Path] = {}
    for p in sorted(f.iterdir()):
        name = _case_name(p)
        if name is None or not p.is_file():
            continue
        if name in out:
            raise InputError(
                f"{f}: case {name!r} has two label maps ({out[name].name}, {p.name}); keep one"
            )
        out[name] = p
    if not out:
        raise InputError(f"{f}: holds no label maps (.nii, .nii.gz, .nrrd, .mha, .png, .tif)")
    return out


def _segmentation(
    gold_dir: Any, reader_dir: Any, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    gold, reader = case_files(gold_dir), case_files(reader_dir)
    missing = sorted(set(gold) - set(reader))
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise InputError(
            f"{reader_dir}: {len(missing)} gold case(s) have no label map from the reader ({shown})"
        )
    cases: dict[str, Any] = {}
    per_label: dict[str, list[float]] = {}
    for name, gpath in gold.items():
        g, gg = read_label_map(gpath)
        r, gr = read_label_map(reader[name])
        _check_same_grid(g.shape, gg, r.shape, gr, gpath, reader[name])
        res = label_map_agreement(g, r, gg)
        cases[name] = res
        for v, m in res.items():
            per_label.setdefault(v, []).append(m["dice"])
    all_dice = [d for ds in per_label.values() for d in ds]
    mean = float(np.mean(all_dice)) if all_dice else float("nan")
    passed = bool(all_dice) and mean >= threshold
    failures = [] if passed else [f"mean Dice {mean:.3f} is below the threshold {threshold:.2f}"]
    seg = {
        "cases": cases,
        "per_label_mean_dice": {
            v: float(np.mean(ds)) for v, ds in sorted(per_label.items(), key=lambda kv: int(kv[0]))
        },
        "mean_dice": mean,
        "n_cases": len(gold),
        "passed": passed,
    }
    return seg, failures


def _grading(
    gold_csv: Any, reader_csv: Any, values: list[str], ordinal: bool, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    gold, reader = read_grade_table(gold_csv), read_grade_table(reader_csv)
    missing = sorted(set(gold) - set(reader))
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise InputError(
            f"{reader_csv}: {len(missing)} gold item(s) are not graded by the reader ({shown})"
        )
    items = sorted(gold)  # items the reader graded beyond the panel do not count
    g = [gold[i] for i in items]
    r = [reader[i] for i in items]
    for path, grades in ((gold_csv, g), (reader_csv, r)):
        off = sorted({x for x in grades if x not in values})
        if off:
            raise InputError(f"{path}: grade value(s) {off[:3]} are not on the scale {values}")
    kappa = weighted_kappa(g, r, values, "quadratic") if ordinal else cohen_kappa(g, r, values)
    passed = not math.isnan(kappa) and kappa >= threshold
    kind = "weighted_kappa_quadratic" if ordinal else "kappa"
    failures = [] if passed else [f"{kind} {kappa:.3f} is below the threshold {threshold:.2f}"]
    grading = {
        "kappa": kappa,
        "kappa_kind": kind,
        "n": len(items),
        "per_class": {str(v): m for v, m in per_class_prf(g, r, values).items()},
        "scale": values,
        "passed": passed,
    }
    return grading, failures


def _scale_of(schema: Any, scale: str | None) -> tuple[list[str], bool] | None:
    """(values, ordinal) from the schema's scale, a built-in "schema:scale" name, or None."""
    if schema is not None and schema.scales:
        if scale is None and len(schema.scales) == 1:
            sc = next(iter(schema.scales.values()))
        elif scale in schema.scales:
            sc = schema.scales[scale]
        else:
            raise InputError(
                f"schema {schema.id!r} has no scale {scale!r}; choose one of {', '.join(schema.scales)}"
            )
        return sc.value_list(), sc.kind == "ordinal"
    if scale is not None:
        return resolve_scale(scale), True
    return None


def score_reader(
    gold_maps: str | os.PathLike[str] | None = None,
    reader_maps: str | os.PathLike[str] | None = None,
    gold_grades: str | os.PathLike[str] | None = None,
    reader_grades: str | os.PathLike[str] | None = None,
    schema: Any = None,
    scale: str | None = None,
) -> GoldPanelResult:
    """Score a reader's label maps (folder) and/or grade table against the gold panel.

    ``schema`` (a loaded :class:`~.schema.Schema`, or None for the defaults) gives the thresholds
    and, for grades, the scale (``scale`` picks one when the schema has several).
    """
    thresholds = dict(DEFAULT_THRESHOLDS)
    if schema is not None:
        thresholds.update(schema.thresholds)
    if (gold_maps is None) != (reader_maps is None) or (gold_grades is None) != (
        reader_grades is None
    ):
        raise InputError("give the gold AND the reader's version of each part (label maps, grades)")
    if gold_maps is None and gold_grades is None:
        raise InputError("a gold panel needs label maps, a grade table, or both")
    result = GoldPanelResult(passed=True, thresholds=thresholds)
    if gold_maps is not None:
        result.segmentation, fails = _segmentation(gold_maps, reader_maps, thresholds["dice"])
        result.failures += fails
    if gold_grades is not None:
        found = _scale_of(schema, scale)
        if found is None:
            both = set(read_grade_table(gold_grades).values()) | set(
                read_grade_table(reader_grades).values()
            )
            try:
                found = (sorted(both, key=float), True)
            except ValueError:
                found = (sorted(both), False)
        result.grading, fails = _grading(
            gold_grades, reader_grades, found[0], found[1], thresholds["kappa"]
        )
        result.failures += fails
    result.passed = not result.failures
    return result
