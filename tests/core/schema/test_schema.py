"""Label schemas: built-ins load with the clinical values; bad files name the line and the problem."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from pydicom.sr.codedict import codes

from napari_clinlabel.core.errors import SchemaError
from napari_clinlabel.core.image import samples
from napari_clinlabel.core.schema import builtin_schema_names, load_schema

GOOD = """\
id: test
version: "2.1"
title: Test schema
signed_off_by: {name: Dr Test, date: "2026-01-02"}
labels:
  - value: 1
    name: liver
    color: "#dd8265"
    category: {scheme: SCT, value: "91723000", meaning: Anatomical Structure}
    type: {scheme: SCT, value: "10200004", meaning: Liver}
scales:
  grade:
    name: Grade
    kind: ordinal
    values:
      - {value: low, label: Low, key: "1"}
      - {value: high, label: High, key: "2"}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "schema.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_builtins_all_load() -> None:
    names = builtin_schema_names()
    assert {"abdomen-ct", "birads", "icdr", "isup", "lesions"} <= set(names)
    for name in names:
        s = load_schema(name)
        assert s.id and s.version and s.signed_off_by.name and s.signed_off_by.date
        assert s.sha256 == hashlib.sha256(Path(s.path).read_bytes()).hexdigest()
        assert s.ref() == {"id": s.id, "version": s.version, "sha256": s.sha256}
    assert load_schema("builtin:icdr").id == "icdr"


def test_abdomen_ct_matches_phantom_and_dicom_codes() -> None:
    s = load_schema("abdomen-ct")
    assert {lab.value: lab.name for lab in s.labels} == samples.CT_LABELS
    # SNOMED CT codes as DICOM's coded concepts (pydicom's CID tables) define them
    anat = codes.SCT.AnatomicalStructure
    for lab in s.labels:
        assert lab.category.scheme == "SCT" and lab.type.scheme == "SCT"
    for name, code in [("liver", codes.SCT.Liver), ("spleen", codes.SCT.Spleen),
                       ("aorta", codes.SCT.Aorta)]:  # fmt: skip
        lab = s.label_by_name(name)
        assert (lab.type.value, lab.type.meaning) == (code.value, code.meaning)
        assert (lab.category.value, lab.category.meaning) == (anat.value, anat.meaning)
    lesion = s.label(samples.LESION)
    assert lesion.category.value == codes.SCT.MorphologicallyAbnormalStructure.value
    assert lesion.type.value == codes.SCT.Neoplasm.value
    assert s.label_by_name("Right Kidney").type.value == "9846003"
    assert s.label_by_name("left kidney").type.value == "18639004"
    assert s.label(99) is None
    assert s.lesion_classes == ["benign", "malignant", "indeterminate"]
    assert s.lesion_attributes["margin"] == ["circumscribed", "ill-defined", "spiculated"]
    assert "liver segment VIII" in s.lesion_attributes["location"]
    assert s.confidence == [1, 2, 3, 4, 5]
    assert s.thresholds == {"dice": 0.85, "kappa": 0.90}
    assert len({lab.color for lab in s.labels}) == len(s.labels)


def test_birads_icdr_isup_scales() -> None:
    b = load_schema("birads")
    a = b.scales["assessment"]
    assert a.value_list() == ["0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]
    assert a.kind == "ordinal" and a.per == "image" and a.required
    assert a.by_key("b").value == "4B" and a.by_key("B").value == "4B"
    assert a.by_key("5").value == "5" and a.by_key("4") is None
    assert a.index("4B") == 5
    with pytest.raises(ValueError, match="4D"):
        a.index("4D")
    assert b.scales["density"].value_list() == ["a", "b", "c", "d"]
    assert b.scales["density"].by_key("c").label.startswith("The breasts are heterogeneously dense")
    i = load_schema("icdr")
    assert [v.label for v in i.scales["dr"].values][2] == (
        "Moderate non-proliferative diabetic retinopathy"
    )
    assert i.scales["dme"].value_list() == ["absent", "non-centre-involving", "centre-involving"]
    p = load_schema("isup")
    assert p.tile_size == 512 and p.scales["isup"].per == "tile"
    assert p.scales["isup"].value_list() == ["benign", "1", "2", "3", "4", "5"]


def test_good_file_and_sha_of_bytes(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    s = load_schema(p)
    assert s.version == "2.1" and s.labels[0].rgb[0] == pytest.approx(0xDD / 255)
    assert s.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()
    assert s.scales["grade"].per == "image" and s.scales["grade"].required


BAD = [
    # (replace this, with that, expected line, message fragment)
    ('- value: 1\n', '- value: 0\n', 6, "label value 0 must be 1..65535"),
    ('color: "#dd8265"', 'color: "#dd826"', 8, "is not #rrggbb"),
    ('    kind: ordinal\n', '    kind: interval\n', 14, "unknown kind 'interval'"),
    ('key: "2"', 'key: "1"', 17, "duplicate key '1'"),
    ('{value: high,', '{value: low,', 17, "duplicate value 'low'"),
    ('    type: {scheme: SCT, value: "10200004", meaning: Liver}\n', '', 6, "lacks type"),
    ('value: "10200004"', 'value: "liver"', 10, "not a SNOMED CT id"),
    ('title: Test schema\n', 'title: Test schema\ntitle: Again\n', 4, "duplicate key 'title'"),
    ('version: "2.1"\n', 'version: "2.1"\ntile_size: 0\n', 3, "tile_size must be positive"),
    ('version: "2.1"\n', 'version: "2.1"\ncolour: red\n', 3, "unknown key 'colour'"),
    ('      - {value: low, label: Low, key: "1"}\n      - {value: high, label: High, key: "2"}\n',
     '      []\n', 16, "is empty"),
    ('signed_off_by: {name: Dr Test, date: "2026-01-02"}', 'signed_off_by: {name: Dr Test}', 4,
     "lacks date"),
    ('    name: Grade\n', '    name: Grade\n    per: tile\n', 14, "tile_size is not set"),
    ('  grade:\n', '  grade: [\n', 14, "not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize("old,new,line,fragment", BAD)
def test_bad_schema_names_line(
    tmp_path: Path, old: str, new: str, line: int, fragment: str
) -> None:
    assert old in GOOD
    p = write(tmp_path, GOOD.replace(old, new, 1))
    before = p.read_bytes()
    with pytest.raises(SchemaError) as info:
        load_schema(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}, line {line}: "), msg
    assert fragment in msg
    assert p.read_bytes() == before  # a bad schema file is never rewritten


def test_duplicate_label_value_and_name(tmp_path: Path) -> None:
    extra = textwrap.dedent("""\
      - value: 1
        name: Liver
        color: "#000000"
        category: {scheme: SCT, value: "91723000", meaning: Anatomical Structure}
        type: {scheme: SCT, value: "10200004", meaning: Liver}
    """)
    text = GOOD.replace("scales:", textwrap.indent(extra, "  ") + "scales:")
    with pytest.raises(SchemaError, match=r"line 11: duplicate label value 1 \(also on line 6\)"):
        load_schema(write(tmp_path, text))
    with pytest.raises(SchemaError, match=r"line 12: duplicate label name 'Liver'"):
        load_schema(
            write(
                tmp_path, text.replace("- value: 1\n    name: Liver", "- value: 2\n    name: Liver")
            )
        )


def test_missing_empty_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="schema file not found"):
        load_schema(tmp_path / "nope.yaml")
    with pytest.raises(SchemaError, match="no such built-in schema; choose one of"):
        load_schema("builtin:nope")
    with pytest.raises(SchemaError, match="line 1: the schema file is empty"):
        load_schema(write(tmp_path, ""))
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00id")
    with pytest.raises(SchemaError, match="not UTF-8"):
        load_schema(tmp_path / "bin.yaml")
    with pytest.raises(SchemaError, match="defines no labels, lesion_classes or scales"):
        load_schema(write(tmp_path, GOOD.split("labels:")[0]))
