"""Versioned label schemas: labels with codes and colours, lesion classes, grading scales."""

from napari_clinlabel.core.schema.load import (
    builtin_grading_schemas,
    builtin_lesion_schemas,
    builtin_schema_names,
    builtin_schemas,
    load_schema,
)
from napari_clinlabel.core.schema.model import (
    DEFAULT_THRESHOLDS,
    Code,
    LabelDef,
    Scale,
    ScaleValue,
    Schema,
    SignOff,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "Code",
    "LabelDef",
    "Scale",
    "ScaleValue",
    "Schema",
    "SignOff",
    "builtin_grading_schemas",
    "builtin_lesion_schemas",
    "builtin_schema_names",
    "builtin_schemas",
    "load_schema",
]
