"""Which double-read rule a case falls under: by its class, by a grade at least a value in the
schema's own order (BI-RADS 4A < 4B < 5), by a box class; the highest matching rate wins. Bad
designs are refused with one line naming the file and the field."""

from __future__ import annotations

import pytest

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.programme.dataset import Case
from napari_clinlabel.core.programme.design import case_class
from napari_clinlabel.core.programme.manifest import read_design
from napari_clinlabel.core.programme.reads import COMPLETED, ReadState

DESIGN = """
schemas = ["birads"]
[guideline]
version = "1.0"
[[reading.double_read]]
name = "routine"
rate = 0.1
[[reading.double_read]]
name = "birads>=4B"
grade = "assessment"
at_least = "4B"
rate = 1.0
[[reading.double_read]]
name = "malignant box"
box_class = "malignant"
rate = 0.9
[[reading.double_read]]
name = "trial"
class = "trial"
rate = 0.5
"""


@pytest.fixture
def manifest(tmp_path):
    p = tmp_path / "design.toml"
    p.write_text(DESIGN)
    return read_design(p)


def _read(grade=None, boxes=()):
    return ReadState(COMPLETED, {"assessment": grade} if grade else {}, set(boxes))


def test_rules(manifest):
    routine = Case("c1", "c1.nii")
    assert case_class(manifest, routine, []) == ("routine", 0.1)
    assert case_class(manifest, routine, [_read("4A")]) == ("routine", 0.1)  # 4A < 4B
    assert case_class(manifest, routine, [_read("5")]) == ("birads>=4B", 1.0)
    assert case_class(manifest, routine, [_read("4C")]) == ("birads>=4B", 1.0)
    assert case_class(manifest, routine, [_read("2", ["benign", "malignant"])]) == (
        "malignant box",
        0.9,
    )
    assert case_class(manifest, Case("c2", "c2.nii", "trial"), []) == ("trial", 0.5)
    assert case_class(manifest, Case("c2", "c2.nii", "trial"), [_read("6")]) == ("birads>=4B", 1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[reading]\nreaders_per_case = 0\n", "readers_per_case must be a whole number"),
        ("[reading]\nhoneypot_rate = -0.1\n", "reading.honeypot_rate: a rate must be"),
        ("[reading]\nhoneypot_min_accuracy = 2\n", "honeypot_min_accuracy: a rate must be"),
        ('[[reading.double_read]]\nname = "x"\nrate = 1.5\n', "double_read 'x': a rate must be"),
        ("[[reading.double_read]]\nrate = 1\nat_least = 4\n", "has at_least but no grade scale"),
        ("[adjudication]\ndice_below = {default = 2}\n", "dice_below.default: a rate must be"),
        ('[guideline]\nversion = ""\n', "guideline.version is required"),
        ("[reading\n", "not valid TOML/JSON"),
    ],
)
def test_bad_designs(tmp_path, text, message):
    p = tmp_path / "design.toml"
    p.write_text(text)
    with pytest.raises(InputError, match="design.toml") as info:
        read_design(p)
    assert message in str(info.value) and "\n" not in str(info.value)
