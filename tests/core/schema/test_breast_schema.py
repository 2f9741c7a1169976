"""The built-in mammography lesion schema: the ACR BI-RADS lexicon, validated like every schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

from napari_clinlabel.core.schema import builtin_lesion_schemas, load_schema


def test_breast_lesions_loads_with_the_birads_lexicon() -> None:
    s = load_schema("breast-lesions")
    assert s.id == "breast-lesions" and s.version and s.signed_off_by.name
    assert s.sha256 == hashlib.sha256(Path(s.path).read_bytes()).hexdigest()
    assert s.lesion_classes == ["benign", "malignant", "indeterminate"]
    assert s.confidence == [1, 2, 3, 4, 5]
    a = s.lesion_attributes
    assert list(a) == [
        "finding",
        "shape",
        "margin",
        "density",
        "calcification morphology",
        "distribution",
        "laterality",
        "location",
        "depth",
    ]
    assert {"mass", "calcifications", "focal asymmetry", "architectural distortion"} <= set(
        a["finding"]
    )
    assert a["shape"] == ["oval", "round", "irregular"]
    assert a["margin"] == [
        "circumscribed",
        "obscured",
        "microlobulated",
        "indistinct",
        "spiculated",
    ]
    assert a["density"] == ["high density", "equal density", "low density", "fat-containing"]
    assert "fine pleomorphic" in a["calcification morphology"]
    assert a["distribution"] == ["diffuse", "regional", "grouped", "linear", "segmental"]
    assert a["laterality"] == ["left", "right"]
    assert "upper outer quadrant" in a["location"] and "axillary tail" in a["location"]
    assert not {"liver", "lung", "kidney"} & set(a["location"])  # no CT organs on a mammogram
    assert a["depth"] == ["anterior", "middle", "posterior"]


def test_lesion_schemas_listed_and_lesions_unchanged() -> None:
    names = builtin_lesion_schemas()
    assert {"breast-lesions", "lesions"} <= set(names)
    assert not {"birads", "icdr", "isup"} & set(names)  # grading-only schemas have no lesions
    assert "liver" in load_schema("lesions").lesion_attributes["location"]
