"""Load schemas: a YAML file by path or a built-in one by name (read once and cached)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from napari_clinlabel.core.errors import SchemaError
from napari_clinlabel.core.schema._yaml import SchemaParser
from napari_clinlabel.core.schema.model import BUILTIN_DIR, Schema


def builtin_schema_names() -> list[str]:
    """Names of the schemas shipped with the package (``load_schema(name)`` loads one)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def _resolve(path_or_builtin: str | Path) -> Path:
    s = str(path_or_builtin)
    name = s[len("builtin:") :] if s.startswith("builtin:") else s
    if s.startswith("builtin:") or (
        isinstance(path_or_builtin, str) and "/" not in s and not s.endswith((".yaml", ".yml"))
    ):
        if name in builtin_schema_names():
            return BUILTIN_DIR / f"{name}.yaml"
        if s.startswith("builtin:") or not Path(s).exists():
            raise SchemaError(
                f"{s}: no such built-in schema; choose one of {', '.join(builtin_schema_names())} "
                "or give the path of a schema file."
            )
    return Path(path_or_builtin)


def load_schema(path_or_builtin: str | Path) -> Schema:
    """Load and validate a schema file, or a built-in schema by name.

    Raises :class:`SchemaError` naming the file, the line and what is wrong.
    """
    path = _resolve(path_or_builtin)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SchemaError(f"{path}: schema file not found; check the path.") from None
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read the schema file ({exc.strerror}).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the schema as UTF-8 YAML."
        ) from None
    return SchemaParser(path, text, hashlib.sha256(raw).hexdigest()).parse()


def builtin_schemas() -> dict[str, Schema]:
    """The shipped schemas that load, by name (read once: they are package files). Shared
    objects: read them, do not change them."""
    return dict(_builtin_schemas())


@functools.cache
def _builtin_schemas() -> dict[str, Schema]:
    out = {}
    for name in builtin_schema_names():
        try:
            out[name] = load_schema(name)
        except SchemaError:
            continue
    return out


def builtin_grading_schemas(tiles: bool) -> list[str]:
    """Built-in schemas with a per-tile scale (``tiles``), or with a per-image/per-study scale."""
    return [
        name
        for name, schema in _builtin_schemas().items()
        if any((s.per == "tile") == tiles for s in schema.scales.values())
    ]


def builtin_lesion_schemas() -> list[str]:
    """Built-in schemas with lesion classes or attributes (usable for lesion boxes)."""
    return [
        name
        for name, schema in _builtin_schemas().items()
        if schema.lesion_classes or schema.lesion_attributes
    ]
