"""Regenerate ``core/privacy/e11_table.json``: DICOM PS3.15 Table E.1-1 (Basic Profile actions).

Source: the ``dicom-anonymizer`` package (KitwareMedical), whose ``dicomfields_2026c`` module lists
every attribute of the 2026c edition of Table E.1-1 by action code. The vendored JSON is data, not
code typed here; ``tests/core/privacy/test_table.py`` compares it with the installed package.

Run: ``python scripts/gen_deid_table.py`` (needs ``pip install dicom-anonymizer``).
"""

from __future__ import annotations

import importlib
import json
from importlib.metadata import version
from pathlib import Path

from pydicom.datadict import keyword_for_tag

EDITION = "dicomfields_2026c"
# The package's list names -> the action code of Table E.1-1.
CODES = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}  # fmt: skip
OUT = Path(__file__).resolve().parents[1] / "src/napari_clinlabel/core/privacy/e11_table.json"


def build() -> dict:
    """The table as JSON-ready data, read from the installed dicom-anonymizer."""
    mod = importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{EDITION}")
    rules = []
    for list_name, code in CODES.items():
        for entry in getattr(mod, list_name):
            group, elem = entry[0], entry[1]
            mask = [entry[2], entry[3]] if len(entry) == 4 else None
            tag = (group << 16) | elem
            rules.append({
                "tag": f"{tag:08X}",
                "mask": None if mask is None else f"{(mask[0] << 16) | mask[1]:08X}",
                "code": code,
                "keyword": "" if mask else (keyword_for_tag(tag) or ""),
            })  # fmt: skip
    rules.sort(key=lambda r: r["tag"])
    return {
        "source": f"dicom-anonymizer {version('dicom-anonymizer')} {EDITION}",
        "standard": "DICOM PS3.15 2026c Table E.1-1 (Basic Profile)",
        "rules": rules,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"{OUT}: {len(build()['rules'])} rules")
