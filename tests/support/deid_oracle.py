"""Table E.1-1 leftovers judged by the table's source package (dicom-anonymizer's lists), not
by this project's own copy: shared by the de-identification tests on real files."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.uid import UID_dictionary

dba = pytest.importorskip("dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c")
CODES = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}  # fmt: skip
EXACT: dict[int, str] = {}
MASKED: list[tuple[int, int, str]] = []
for _name, _code in CODES.items():
    for _e in getattr(dba, _name):
        if len(_e) == 4:
            MASKED.append(((_e[0] << 16) | _e[1], (_e[2] << 16) | _e[3], _code))
        else:
            EXACT[(_e[0] << 16) | _e[1]] = _code
CONSTANT_DUMMIES = {"ANONYMOUS", "19000101", "000000", "19000101000000", "000Y", "0"}


def _oracle(tag: int) -> str | None:
    if tag in EXACT:
        return EXACT[tag]
    return next((c for t, m, c in MASKED if tag & m == t), None)


def _values_by_tag(ds: pydicom.Dataset) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for elem in ds.iterall():
        if elem.VR != "SQ":
            v = elem.value
            vals = list(v) if isinstance(v, list | pydicom.multival.MultiValue) else [v]
            out.setdefault(int(elem.tag), set()).update(str(x) for x in vals if x not in (None, ""))
    return out


def empty(elem: pydicom.DataElement) -> bool:
    v = elem.value
    return (
        v is None
        or v == ""
        or v == b""
        or (elem.VR == "SQ" and len(v) == 0)
        or (isinstance(v, list | pydicom.multival.MultiValue) and not any(str(x) for x in v))
    )


def leftovers(out: pydicom.Dataset, original: pydicom.Dataset) -> list[str]:
    """What Table E.1-1 (the source package's lists) says should not be there."""
    orig = _values_by_tag(original)
    bad = []
    for elem in out.iterall():
        tag = int(elem.tag)
        if elem.tag.is_private:
            bad.append(f"{elem.tag} private")
            continue
        code = _oracle(tag)
        if code is None or empty(elem):
            continue
        vals = {
            str(x)
            for x in (
                elem.value
                if isinstance(elem.value, list | pydicom.multival.MultiValue)
                else [elem.value]
            )
        }
        if code == "X":
            bad.append(f"{elem.tag} {elem.keyword} X present")
        elif code in ("Z", "X/Z") and not (
            elem.VR == "SQ" and elem.keyword.startswith("Referenced")
        ):
            bad.append(f"{elem.tag} {elem.keyword} {code} not empty")
        elif code == "U":
            kept = {v for v in vals if v in orig.get(tag, set()) and v not in UID_dictionary}
            if kept:
                bad.append(f"{elem.tag} {elem.keyword} U not replaced")
        elif "D" in code and elem.VR != "SQ":
            kept = vals & orig.get(tag, set()) - CONSTANT_DUMMIES
            if kept:
                bad.append(f"{elem.tag} {elem.keyword} {code} original value kept")
    return bad
