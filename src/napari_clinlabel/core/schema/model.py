"""Label schemas: versioned, signed-off YAML guideline files (labels, lesion classes, scales).

A schema is read from the YAML node tree (``yaml.compose``) rather than from plain Python values,
so that every error names the file and the line of the offending key or item. Built-in schemas
live in ``napari_clinlabel/schemas/<name>.yaml`` and load by name (``"abdomen-ct"`` or
``"builtin:abdomen-ct"``). The schema in force is on every log record as :meth:`Schema.ref`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("ordinal", "nominal")
PER = ("image", "study", "tile")
DEFAULT_THRESHOLDS = {"dice": 0.85, "kappa": 0.90}
BUILTIN_DIR = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class Code:
    """A coded concept (SNOMED CT: scheme ``"SCT"``), as DICOM SEG needs it."""

    scheme: str
    value: str
    meaning: str

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"scheme": self.scheme, "value": self.value, "meaning": self.meaning}


@dataclass
class LabelDef:
    """One segmentation label: its value in the label map, name, colour and DICOM codes."""

    value: int
    name: str
    color: str  # "#rrggbb"
    category: Code
    type: Code

    @property
    def rgb(self) -> tuple[float, float, float]:
        """Colour as RGB floats in 0..1."""
        return tuple(int(self.color[i : i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass
class ScaleValue:
    """One grade of a scale: the stored ``value``, its human ``label`` and its keyboard ``key``."""

    value: str
    label: str
    key: str


@dataclass
class Scale:
    """An ordinal or nominal grading scale, graded per image, per study or per tile."""

    id: str
    name: str
    kind: str  # "ordinal" | "nominal"
    values: list[ScaleValue]
    per: str = "image"  # "image" | "study" | "tile"
    required: bool = True

    def index(self, value: str) -> int:
        """Position of ``value`` in the scale (the ordinal rank); ValueError if absent."""
        for i, v in enumerate(self.values):
            if v.value == str(value):
                return i
        allowed = ", ".join(v.value for v in self.values)
        raise ValueError(f"{value!r} is not a grade of scale {self.id!r} (allowed: {allowed}).")

    def by_key(self, key: str) -> ScaleValue | None:
        """The grade bound to keyboard ``key`` (letters match either case), or None."""
        k = str(key).lower()
        for v in self.values:
            if v.key.lower() == k:
                return v
        return None

    def value_list(self) -> list[str]:
        """All grade values in scale order (pass as ``labels=`` to kappa computations)."""
        return [v.value for v in self.values]


@dataclass(frozen=True)
class SignOff:
    """Who signed the schema off as the guideline in force, and when (ISO date)."""

    name: str
    date: str


@dataclass
class Schema:
    """A loaded label schema; ``sha256`` is the digest of the file's bytes."""

    id: str
    version: str
    title: str
    signed_off_by: SignOff
    sha256: str
    path: Path | None
    labels: list[LabelDef] = field(default_factory=list)
    lesion_classes: list[str] = field(default_factory=list)
    lesion_attributes: dict[str, list[str]] = field(default_factory=dict)
    confidence: list[int] = field(default_factory=list)
    scales: dict[str, Scale] = field(default_factory=dict)
    tile_size: int | None = None
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    description: str = ""

    def ref(self) -> dict[str, str]:
        """The log's ``schema`` field: ``{"id", "version", "sha256"}``."""
        return {"id": self.id, "version": self.version, "sha256": self.sha256}

    def label(self, value: int) -> LabelDef | None:
        """The label with map value ``value``, or None."""
        for lab in self.labels:
            if lab.value == int(value):
                return lab
        return None

    def label_by_name(self, name: str) -> LabelDef | None:
        """The label called ``name`` (case-insensitive), or None."""
        n = name.strip().lower()
        for lab in self.labels:
            if lab.name.lower() == n:
                return lab
        return None

    def max_label(self) -> int:
        """Largest label value (0 when the schema has no labels)."""
        return max((lab.value for lab in self.labels), default=0)
