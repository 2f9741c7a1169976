"""YAML reading of label schemas from the composed node tree, so every error names its line.

Private to :mod:`napari_clinlabel.core.schema.model` (use :func:`~napari_clinlabel.core.schema.model.load_schema`).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from napari_clinlabel.core.errors import SchemaError
from napari_clinlabel.core.schema.model import (
    DEFAULT_THRESHOLDS,
    KINDS,
    PER,
    Code,
    LabelDef,
    Scale,
    ScaleValue,
    Schema,
    SignOff,
)

_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_TOP_KEYS = {
    "id", "version", "title", "signed_off_by", "description", "labels", "lesion_classes",
    "lesion_attributes", "confidence", "scales", "tile_size", "thresholds",
}  # fmt: skip


class SchemaParser:
    """Validates the composed YAML node tree; every error carries the node's line."""

    def __init__(self, path: Path, text: str, sha256: str) -> None:
        self.path = path
        self.text = text
        self.sha256 = sha256
        self.per_nodes: dict[str, yaml.Node] = {}

    def fail(self, node: yaml.Node | None, what: str) -> SchemaError:
        line = node.start_mark.line + 1 if node is not None else 1
        return SchemaError(f"{self.path}, line {line}: {what}")

    # -- node helpers --------------------------------------------------------------------------
    def mapping(self, node: yaml.Node, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping (key: value lines).")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, f"{what} has a key that is not plain text.")
            if k.value in out:
                first = out[k.value][0].start_mark.line + 1
                raise self.fail(k, f"duplicate key {k.value!r} in {what} (first on line {first}).")
            out[k.value] = (k, v)
        return out

    def seq(self, node: yaml.Node, what: str, *, nonempty: bool = True) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list.")
        if nonempty and not node.value:
            raise self.fail(node, f"{what} is empty; give at least one item.")
        return list(node.value)

    def text_of(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            raise self.fail(node, f"{what} must be text.")
        value = str(node.value).strip()
        if not value:
            raise self.fail(node, f"{what} is empty.")
        return value

    def int_of(self, node: yaml.Node, what: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            raise self.fail(node, f"{what} must be a whole number, not {_show(node)}.")
        return int(yaml.safe_load(node.value))

    def number_of(self, node: yaml.Node, what: str) -> float:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            raise self.fail(node, f"{what} must be a number, not {_show(node)}.")
        return float(yaml.safe_load(node.value))

    def bool_of(self, node: yaml.Node, what: str) -> bool:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            raise self.fail(node, f"{what} must be true or false, not {_show(node)}.")
        return bool(yaml.safe_load(node.value))

    def require(self, m: dict, keys: tuple[str, ...], node: yaml.Node, what: str) -> None:
        missing = [k for k in keys if k not in m]
        if missing:
            raise self.fail(node, f"{what} lacks {', '.join(missing)}; add it.")

    def only(self, m: dict, allowed: set[str], what: str) -> None:
        for key, (knode, _) in m.items():
            if key not in allowed:
                raise self.fail(
                    knode, f"unknown key {key!r} in {what} (allowed: {', '.join(sorted(allowed))})."
                )

    # -- sections -----------------------------------------------------------------------------
    def parse(self) -> Schema:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            raise SchemaError(
                f"{self.path}, line {line}: not valid YAML ({exc.problem or exc.context})."
            ) from None
        except yaml.YAMLError as exc:
            raise SchemaError(f"{self.path}: not valid YAML ({exc}).") from None
        if root is None:
            raise SchemaError(f"{self.path}, line 1: the schema file is empty.")
        top = self.mapping(root, "the schema")
        self.only(top, _TOP_KEYS, "the schema")
        self.require(top, ("id", "version", "title", "signed_off_by"), root, "the schema")
        g = {k: v for k, (_, v) in top.items()}
        schema = Schema(
            id=self.text_of(g["id"], "id"),
            version=self.text_of(g["version"], "version"),
            title=self.text_of(g["title"], "title"),
            signed_off_by=self.sign_off(g["signed_off_by"]),
            sha256=self.sha256,
            path=self.path,
            description=self.text_of(g["description"], "description") if "description" in g else "",
        )
        if not any(k in g for k in ("labels", "lesion_classes", "scales")):
            raise self.fail(root, "the schema defines no labels, lesion_classes or scales.")
        if "labels" in g:
            schema.labels = self.labels(g["labels"])
        if "lesion_classes" in g:
            schema.lesion_classes = self.names(g["lesion_classes"], "lesion_classes")
        if "lesion_attributes" in g:
            attrs = self.mapping(g["lesion_attributes"], "lesion_attributes")
            schema.lesion_attributes = {
                name: self.names(v, f"lesion attribute {name!r}") for name, (_, v) in attrs.items()
            }
        if "confidence" in g:
            schema.confidence = self.confidence(g["confidence"])
        if "tile_size" in g:
            size = self.int_of(g["tile_size"], "tile_size")
            if size <= 0:
                raise self.fail(g["tile_size"], f"tile_size must be positive, not {size}.")
            schema.tile_size = size
        if "scales" in g:
            schema.scales = self.scales(g["scales"])
            for sc_id, sc in schema.scales.items():
                if sc.per == "tile" and schema.tile_size is None:
                    raise self.fail(
                        self.per_nodes[sc_id],
                        f"scale {sc_id!r} is graded per tile but tile_size is not set; add "
                        "tile_size (pixels) at the top level.",
                    )
        if "thresholds" in g:
            schema.thresholds = self.thresholds(g["thresholds"])
        return schema

    def sign_off(self, node: yaml.Node) -> SignOff:
        m = self.mapping(node, "signed_off_by")
        self.only(m, {"name", "date"}, "signed_off_by")
        self.require(m, ("name", "date"), node, "signed_off_by")
        date_node = m["date"][1]
        date = self.text_of(date_node, "signed_off_by date")
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
            raise self.fail(
                date_node, f"signed_off_by date {date!r} is not an ISO date (YYYY-MM-DD)."
            )
        return SignOff(self.text_of(m["name"][1], "signed_off_by name"), date)

    def code(self, node: yaml.Node, what: str) -> Code:
        m = self.mapping(node, what)
        self.only(m, {"scheme", "value", "meaning"}, what)
        self.require(m, ("scheme", "value", "meaning"), node, what)
        scheme = self.text_of(m["scheme"][1], f"{what} scheme")
        value = self.text_of(m["value"][1], f"{what} value")
        if scheme == "SCT" and not value.isdigit():
            raise self.fail(
                m["value"][1], f"{what} value {value!r} is not a SNOMED CT id (digits)."
            )
        return Code(scheme, value, self.text_of(m["meaning"][1], f"{what} meaning"))

    def labels(self, node: yaml.Node) -> list[LabelDef]:
        out: list[LabelDef] = []
        seen_v: dict[int, int] = {}
        seen_n: dict[str, int] = {}
        for item in self.seq(node, "labels"):
            m = self.mapping(item, "a label")
            self.only(m, {"value", "name", "color", "category", "type"}, "a label")
            self.require(m, ("value", "name", "color", "category", "type"), item, "a label")
            vnode = m["value"][1]
            value = self.int_of(vnode, "label value")
            if not 1 <= value <= 65535:
                raise self.fail(vnode, f"label value {value} must be 1..65535 (0 is background).")
            line = item.start_mark.line + 1
            if value in seen_v:
                raise self.fail(
                    vnode, f"duplicate label value {value} (also on line {seen_v[value]})."
                )
            name = self.text_of(m["name"][1], "label name")
            if name.lower() in seen_n:
                raise self.fail(
                    m["name"][1],
                    f"duplicate label name {name!r} (also on line {seen_n[name.lower()]}).",
                )
            color = self.text_of(m["color"][1], "label color")
            if not _COLOR.match(color):
                raise self.fail(m["color"][1], f"colour {color!r} of {name!r} is not #rrggbb.")
            seen_v[value], seen_n[name.lower()] = line, line
            cat = self.code(m["category"][1], f"category of {name!r}")
            typ = self.code(m["type"][1], f"type of {name!r}")
            out.append(LabelDef(value, name, color.lower(), cat, typ))
        return out

    def names(self, node: yaml.Node, what: str) -> list[str]:
        out: list[str] = []
        for item in self.seq(node, what):
            name = self.text_of(item, f"an item of {what}")
            if name in out:
                raise self.fail(item, f"duplicate item {name!r} in {what}.")
            out.append(name)
        return out

    def confidence(self, node: yaml.Node) -> list[int]:
        out: list[int] = []
        for item in self.seq(node, "confidence"):
            level = self.int_of(item, "a confidence level")
            if level in out:
                raise self.fail(item, f"duplicate confidence level {level}.")
            out.append(level)
        return out

    def scales(self, node: yaml.Node) -> dict[str, Scale]:
        out: dict[str, Scale] = {}
        for sc_id, (_k, vnode) in self.mapping(node, "scales").items():
            what = f"scale {sc_id!r}"
            m = self.mapping(vnode, what)
            self.only(m, {"name", "kind", "values", "per", "required", "description"}, what)
            self.require(m, ("name", "kind", "values"), vnode, what)
            kind = self.text_of(m["kind"][1], f"kind of {what}")
            if kind not in KINDS:
                raise self.fail(
                    m["kind"][1], f"unknown kind {kind!r} of {what} (use ordinal or nominal)."
                )
            per = self.text_of(m["per"][1], f"per of {what}") if "per" in m else "image"
            self.per_nodes[sc_id] = m["per"][1] if "per" in m else vnode
            if per not in PER:
                raise self.fail(
                    m["per"][1], f"{what}: per must be image, study or tile, not {per!r}."
                )
            required = (
                self.bool_of(m["required"][1], f"required of {what}") if "required" in m else True
            )
            values: list[ScaleValue] = []
            for item in self.seq(m["values"][1], f"values of {what}"):
                im = self.mapping(item, f"a value of {what}")
                self.only(im, {"value", "label", "key"}, f"a value of {what}")
                self.require(im, ("value", "label", "key"), item, f"a value of {what}")
                val = self.text_of(im["value"][1], f"a value of {what}")
                key = self.text_of(im["key"][1], f"the key of {val!r}")
                if len(key) != 1 or not key.isalnum():
                    raise self.fail(
                        im["key"][1], f"key {key!r} of {val!r} must be one letter or digit."
                    )
                for other in values:
                    if other.value == val:
                        raise self.fail(im["value"][1], f"duplicate value {val!r} in {what}.")
                    if other.key.lower() == key.lower():
                        raise self.fail(
                            im["key"][1],
                            f"duplicate key {key!r} in {what} ({other.value!r} has it).",
                        )
                values.append(
                    ScaleValue(val, self.text_of(im["label"][1], f"label of {val!r}"), key)
                )
            out[sc_id] = Scale(
                sc_id, self.text_of(m["name"][1], f"name of {what}"), kind, values, per, required
            )
        return out

    def thresholds(self, node: yaml.Node) -> dict[str, float]:
        out = dict(DEFAULT_THRESHOLDS)
        for name, (_, v) in self.mapping(node, "thresholds").items():
            x = self.number_of(v, f"threshold {name!r}")
            if not 0.0 <= x <= 1.0:
                raise self.fail(v, f"threshold {name!r} = {x} must lie in 0..1.")
            out[name] = x
        return out


def _show(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
