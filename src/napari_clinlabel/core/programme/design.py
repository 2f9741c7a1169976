"""The reading design applied to one case: which double-read rule it falls under, whether the
seeded draw selects it, and how many readers it needs."""

from __future__ import annotations

import hashlib
from typing import Any

from napari_clinlabel.core.programme.dataset import Case
from napari_clinlabel.core.programme.reads import ReadState
from napari_clinlabel.core.schema import load_schema

ROUTINE = "routine"


def draw(seed: int, *parts: str) -> float:
    """A reproducible number in [0, 1) from the seed and the parts (sha256, not Python's hash)."""
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


_SCALES: dict[tuple[str, str], dict[str, list[str]]] = {}  # (schema name, sha256) -> scale orders


def _order(manifest: dict[str, Any], scale: str) -> list[str] | None:
    for ref in manifest.get("schemas") or []:
        key = (str(ref["name"]), str(ref.get("sha256")))
        if key not in _SCALES:  # parsing a schema costs ~70 ms: once per schema, not per read
            scales = load_schema(ref["name"]).scales
            _SCALES[key] = {k: [str(v) for v in sc.value_list()] for k, sc in scales.items()}
        if scale in _SCALES[key]:
            return _SCALES[key][scale]
    return None


def _at_least(manifest: dict[str, Any], scale: str, value: str, bound: Any) -> bool:
    order = _order(manifest, scale)
    if order is not None and value in order and str(bound) in order:
        return order.index(value) >= order.index(str(bound))
    digits = "".join(ch for ch in value if ch.isdigit() or ch == ".")
    try:
        return float(digits) >= float(bound)
    except ValueError:
        return False


def matches(
    manifest: dict[str, Any], rule: dict[str, Any], case: Case, reads: list[ReadState]
) -> bool:
    """Does ``rule`` apply to ``case`` given its completed reads?"""
    if "class" in rule:
        return case.cls == rule["class"]
    if "grade" in rule:
        scale = str(rule["grade"])
        for r in reads:
            v = r.grades.get(scale)
            if v is None:
                continue
            if "values" in rule and v in [str(x) for x in rule["values"]]:
                return True
            if "at_least" in rule and _at_least(manifest, scale, v, rule["at_least"]):
                return True
        return False
    if "box_class" in rule:
        return any(str(rule["box_class"]) in r.box_classes for r in reads)
    return True  # a rule without a condition: the routine rate


def case_class(manifest: dict[str, Any], case: Case, reads: list[ReadState]) -> tuple[str, float]:
    """The rule a case falls under (the highest rate among the rules it matches) and its rate."""
    best, rate = (case.cls or ROUTINE), 0.0
    for rule in manifest["reading"].get("double_read") or []:
        if matches(manifest, rule, case, reads) and rule["rate"] > rate:
            best, rate = rule["name"], float(rule["rate"])
    return best, rate


def readers_needed(
    manifest: dict[str, Any], case: Case, reads: list[ReadState]
) -> tuple[int, str, float]:
    """How many readers ``case`` needs now, its class and the class's double-read rate."""
    rd = manifest["reading"]
    n = int(rd["readers_per_case"])
    cls, rate = case_class(manifest, case, reads)
    if rate > 0 and draw(int(rd["seed"]), "double", case.id, cls) < rate:
        n = max(n, 2)
    return n, cls, rate


__all__ = ["draw", "matches", "case_class", "readers_needed"]
