"""Model cards: the JSON that says what a TorchScript file is, what it expects and what it outputs.

A card is strict: unknown or missing fields, wrong types and impossible values raise
:class:`ModelError` naming the file and the field. Example (segmentation)::

    {"name": "phantom-unet", "version": "1.0", "task": "segmentation", "schema": "abdomen-ct",
     "in_channels": 1, "patch_size": [32, 64, 64], "input_spacing": [2.5, 1.6, 1.6],
     "normalization": {"kind": "ct_window", "low": -200, "high": 300},
     "classes": [{"index": 0, "name": "background"}, {"index": 1, "label": 1, "name": "liver"}]}

``classes`` map each output channel ``index`` to a schema ``label`` value (segmentation,
detection) or a ``grade`` (grading); a channel without ``label``/``grade`` is background.
``input_spacing`` is in millimetres, (z, y, x), or null for "whatever the image has".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.log.audit_log import model_source

TASKS = ("segmentation", "detection", "grading", "interactive")
NORMALIZATIONS = ("ct_window", "zscore", "minmax", "none")
_FIELDS = {
    "name",
    "version",
    "task",
    "classes",
    "input_spacing",
    "normalization",
    "patch_size",
    "in_channels",
    "schema",
    "scale",
    "description",
    "params",
    "postprocess",
    "input_domain",
}
_REQUIRED = ("name", "version", "task", "classes", "normalization", "patch_size", "in_channels")


@dataclass(frozen=True)
class ModelClass:
    """One output channel: its index, schema label value or grade, and name."""

    index: int
    name: str
    label: int | None = None
    grade: str | None = None

    @property
    def is_background(self) -> bool:
        """True for a channel that maps to nothing (background)."""
        return self.label is None and self.grade is None


@dataclass(frozen=True)
class Normalization:
    """Intensity normalisation: ``ct_window`` (clip to [low, high] → [0, 1]), ``zscore``, ``minmax``."""

    kind: str
    low: float | None = None
    high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "ct_window":
            d.update(low=self.low, high=self.high)
        return d


@dataclass(frozen=True)
class ModelCard:
    """What a model is and expects; ``classes`` ordered by channel index."""

    name: str
    version: str
    task: str
    classes: tuple[ModelClass, ...]
    normalization: Normalization
    patch_size: tuple[int, ...]
    in_channels: int
    input_spacing: tuple[float, ...] | None = None
    schema: str | None = None
    scale: str | None = None
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    # applied before proposals are logged: {"min_component_mm3": {class name: mm³} | mm³,
    # "largest_component": [class names], "max_components": {class name: N (the N largest)}}
    postprocess: dict[str, Any] = field(default_factory=dict)
    # what the model was trained on: {"intensity_p50": [lo, hi], "spacing_mm": [[lo, hi] per
    # axis z, y, x], "field_of_view_mm": [[lo, hi] per axis]}; a run outside it is warned about
    input_domain: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        """Number of output channels."""
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (as read; ``path`` left out)."""
        d: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "task": self.task,
            "classes": [
                {
                    k: v
                    for k, v in (
                        ("index", c.index),
                        ("name", c.name),
                        ("label", c.label),
                        ("grade", c.grade),
                    )
                    if v is not None
                }
                for c in self.classes
            ],
            "normalization": self.normalization.to_dict(),
            "patch_size": list(self.patch_size),
            "in_channels": self.in_channels,
            "input_spacing": list(self.input_spacing) if self.input_spacing else None,
        }
        for key in ("schema", "scale"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if self.description:
            d["description"] = self.description
        if self.params:
            d["params"] = self.params
        for key in ("postprocess", "input_domain"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        return d


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate a model card JSON file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"{p}: model card not found; put the card JSON beside the model as '<model>.json' "
            "or pass --card."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{p}: model card cannot be read ({exc}); fix the file.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(
            f"{p}: model card is not valid JSON (line {exc.lineno}: {exc.msg}); fix the file."
        ) from None
    return card_from_dict(data, p)


def card_from_dict(data: Any, path: Path | None = None) -> ModelCard:
    """Validate a card given as a dict (``path`` only names the source in messages)."""
    where = str(path) if path else "model card"

    def fail(fld: str, problem: str) -> ModelError:
        return ModelError(f"{where}: field '{fld}' {problem}; fix the model card.")

    if not isinstance(data, dict):
        raise ModelError(f"{where}: a model card must be a JSON object; fix the model card.")
    for key in _REQUIRED:
        if key not in data:
            raise fail(key, "is missing")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise fail(unknown[0], f"is not a model card field (known: {', '.join(sorted(_FIELDS))})")
    for key in ("name", "version"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise fail(key, "must be a non-empty string")
    task = data["task"]
    if task not in TASKS:
        raise fail("task", f"is {task!r}, not one of {', '.join(TASKS)}")
    in_ch = data["in_channels"]
    if not isinstance(in_ch, int) or isinstance(in_ch, bool) or in_ch < 1:
        raise fail("in_channels", "must be a positive integer")
    patch = _int_tuple(data["patch_size"], "patch_size", fail)
    spacing = data.get("input_spacing")
    if spacing is not None:
        spacing = _float_tuple(spacing, "input_spacing", fail)
        if len(spacing) != len(patch):
            raise fail(
                "input_spacing", f"has {len(spacing)} values but patch_size has {len(patch)}"
            )
    norm = _normalization(data["normalization"], fail)
    classes = _classes(data["classes"], task, fail)
    scale = data.get("scale")
    if task == "grading" and not isinstance(scale, str):
        raise fail("scale", "must name the grading scale (e.g. 'icdr') for a grading model")
    schema = data.get("schema")
    if schema is not None and not isinstance(schema, str):
        raise fail("schema", "must be a schema id string")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise fail("params", "must be an object")
    post = _postprocess(data.get("postprocess", {}), classes, fail)
    domain = _input_domain(data.get("input_domain", {}), fail)
    return ModelCard(
        postprocess=post,
        input_domain=domain,
        name=data["name"],
        version=data["version"],
        task=task,
        classes=classes,
        normalization=norm,
        patch_size=patch,
        in_channels=in_ch,
        input_spacing=spacing,
        schema=schema,
        scale=scale,
        description=str(data.get("description", "")),
        params=params,
        path=path,
    )


def _postprocess(value: Any, classes: tuple[ModelClass, ...], fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("postprocess", "must be an object")
    names = {c.name for c in classes if not c.is_background}
    unknown = sorted(set(value) - {"min_component_mm3", "largest_component", "max_components"})
    if unknown:
        raise fail(
            f"postprocess.{unknown[0]}",
            "is not known (min_component_mm3, largest_component, max_components)",
        )
    mins = value.get("min_component_mm3", {})
    per = mins if isinstance(mins, dict) else dict.fromkeys(names, mins)
    for name, mm3 in per.items():
        if name not in names:
            raise fail(f"postprocess.min_component_mm3.{name}", f"names no class ({sorted(names)})")
        if isinstance(mm3, bool) or not isinstance(mm3, int | float) or mm3 < 0:
            raise fail(f"postprocess.min_component_mm3.{name}", "must be a number ≥ 0 (mm³)")
    largest = value.get("largest_component", [])
    if not isinstance(largest, list) or any(n not in names for n in largest):
        raise fail("postprocess.largest_component", f"must list class names ({sorted(names)})")
    most = value.get("max_components", {})
    if not isinstance(most, dict):
        raise fail("postprocess.max_components", "must map class names to a count")
    for name, n in most.items():
        if name not in names:
            raise fail(f"postprocess.max_components.{name}", f"names no class ({sorted(names)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise fail(f"postprocess.max_components.{name}", "must be a whole number ≥ 1")
    out: dict[str, Any] = {}
    if per:
        out["min_component_mm3"] = {k: float(v) for k, v in per.items()}
    if most:
        out["max_components"] = dict(most)
    if largest:
        out["largest_component"] = list(largest)
    return out


def _input_domain(value: Any, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail("input_domain", "must be an object")
    out: dict[str, Any] = {}
    for key, nested in (("intensity_p50", False), ("spacing_mm", True), ("field_of_view_mm", True)):
        if key not in value:
            continue
        ranges = value[key] if nested else [value[key]]
        ok = isinstance(ranges, list) and all(
            isinstance(r, list) and len(r) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in r)
            and r[0] <= r[1]
            for r in ranges
        )  # fmt: skip
        if not ok:
            raise fail(f"input_domain.{key}", "must be [low, high] (per axis z, y, x for mm)")
        out[key] = value[key]
    unknown = sorted(set(value) - set(out))
    if unknown:
        raise fail(
            f"input_domain.{unknown[0]}",
            "is not known (intensity_p50, spacing_mm, field_of_view_mm)",
        )
    return out


def _int_tuple(value: Any, fld: str, fail: Any) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise fail(fld, "must be a list of 2 or 3 positive integers (z, y, x)")
    return tuple(value)


def _float_tuple(value: Any, fld: str, fail: Any) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or len(value) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise fail(fld, "must be null or a list of 2 or 3 positive numbers in mm (z, y, x)")
    return tuple(float(v) for v in value)


def _normalization(value: Any, fail: Any) -> Normalization:
    if not isinstance(value, dict) or value.get("kind") not in NORMALIZATIONS:
        raise fail(
            "normalization", f"must be an object with kind one of {', '.join(NORMALIZATIONS)}"
        )
    kind = value["kind"]
    if kind != "ct_window":
        return Normalization(kind)
    lo, hi = value.get("low"), value.get("high")
    if (
        not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi))
        or lo >= hi
    ):
        raise fail("normalization", "of kind ct_window needs numbers low < high (HU)")
    return Normalization(kind, float(lo), float(hi))


def _classes(value: Any, task: str, fail: Any) -> tuple[ModelClass, ...]:
    if not isinstance(value, list) or len(value) < 2:
        raise fail("classes", "must list at least two output channels")
    out = []
    for i, c in enumerate(value):
        fld = f"classes[{i}]"
        if not isinstance(c, dict) or set(c) - {"index", "label", "name", "grade"}:
            raise fail(fld, "must be an object with index, name and label or grade")
        if c.get("index") != i:
            raise fail(f"{fld}.index", f"must be {i} (channels listed in order)")
        if not isinstance(c.get("name"), str) or not c["name"]:
            raise fail(f"{fld}.name", "must be a non-empty string")
        label, grade = c.get("label"), c.get("grade")
        if label is not None and (
            not isinstance(label, int) or isinstance(label, bool) or not 0 < label < 65536
        ):
            raise fail(f"{fld}.label", "must be a label value 1…65535")
        if grade is not None and not isinstance(grade, str):
            raise fail(f"{fld}.grade", "must be a string (a value of the grading scale)")
        if task == "grading" and label is not None:
            raise fail(f"{fld}.label", "is for segmentation/detection; grading classes use 'grade'")
        if task != "grading" and grade is not None:
            raise fail(f"{fld}.grade", "is for grading models; use 'label' for a schema label")
        out.append(ModelClass(i, c["name"], label, grade))
    if task == "grading" and any(c.grade is None for c in out):
        raise fail("classes", "of a grading model must each name a 'grade'")
    if task != "grading" and all(c.is_background for c in out):
        raise fail("classes", "map no channel to a schema label")
    return tuple(out)


@dataclass(frozen=True)
class ModelIdentity:
    """Name, version and sha256 of a model: what the log records as ``source``."""

    name: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        """``{"name", "version", "sha256"}``."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}

    def source(self) -> dict[str, str]:
        """The log's ``source`` field for this model's work."""
        return model_source(self.name, self.version, self.sha256)
