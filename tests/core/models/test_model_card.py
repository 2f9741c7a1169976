"""Model card validation: every bad field is named with the file."""

from __future__ import annotations

import copy
import json

import pytest

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.models.card import card_from_dict, load_card

GOOD = {
    "name": "tiny",
    "version": "0.1",
    "task": "segmentation",
    "schema": "abdomen-ct",
    "in_channels": 1,
    "patch_size": [16, 32, 32],
    "input_spacing": [2.5, 1.0, 1.0],
    "normalization": {"kind": "ct_window", "low": -200, "high": 300},
    "classes": [
        {"index": 0, "name": "background"},
        {"index": 1, "label": 1, "name": "liver"},
    ],
}


def write(tmp_path, data, name="m.pt.json"):
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_good_card_round_trips(tmp_path):
    card = load_card(write(tmp_path, GOOD))
    assert card.name == "tiny" and card.task == "segmentation"
    assert card.patch_size == (16, 32, 32) and card.input_spacing == (2.5, 1.0, 1.0)
    assert card.normalization.low == -200 and card.normalization.high == 300
    assert [c.label for c in card.classes] == [None, 1]
    assert card.classes[0].is_background and card.n_classes == 2
    assert card_from_dict(card.to_dict()).to_dict() == card.to_dict()


def test_grading_card():
    d = copy.deepcopy(GOOD)
    d.update(
        task="grading",
        scale="icdr",
        input_spacing=None,
        patch_size=[64, 64],
        in_channels=3,
        normalization={"kind": "minmax"},
        classes=[{"index": i, "grade": str(i), "name": f"grade {i}"} for i in range(5)],
    )
    card = card_from_dict(d)
    assert card.scale == "icdr" and [c.grade for c in card.classes] == ["0", "1", "2", "3", "4"]


def _mut(fn):
    d = copy.deepcopy(GOOD)
    fn(d)
    return d


@pytest.mark.parametrize(
    "data, field",
    [
        (_mut(lambda d: d.pop("task")), "task"),
        (_mut(lambda d: d.update(task="regression")), "task"),
        (_mut(lambda d: d.update(in_channels=0)), "in_channels"),
        (_mut(lambda d: d.update(in_channels="1")), "in_channels"),
        (_mut(lambda d: d.update(patch_size=[16, 32])), "input_spacing"),
        (_mut(lambda d: d.update(patch_size=[16, -1, 32])), "patch_size"),
        (_mut(lambda d: d.update(input_spacing=[1, 0, 1])), "input_spacing"),
        (
            _mut(lambda d: d.update(normalization={"kind": "ct_window", "low": 5, "high": 1})),
            "normalization",
        ),
        (_mut(lambda d: d.update(normalization={"kind": "histogram"})), "normalization"),
        (_mut(lambda d: d.update(classes=[{"index": 0, "name": "bg"}])), "classes"),
        (_mut(lambda d: d["classes"][1].update(index=3)), "classes[1].index"),
        (_mut(lambda d: d["classes"][1].update(label=0)), "classes[1].label"),
        (_mut(lambda d: d["classes"][1].update(grade="2")), "classes[1].grade"),
        (_mut(lambda d: d["classes"][1].pop("label")), "classes"),
        (_mut(lambda d: d.update(weights="http://example.org/w.pt")), "weights"),
        (_mut(lambda d: d.update(name="")), "name"),
        (
            _mut(
                lambda d: d.update(
                    task="grading",
                    classes=[{"index": i, "grade": str(i), "name": "g"} for i in range(2)],
                )
            ),
            "scale",
        ),
    ],
)
def test_bad_field_is_named(tmp_path, data, field):
    p = write(tmp_path, data)
    with pytest.raises(ModelError) as exc:
        load_card(p)
    msg = str(exc.value)
    assert str(p) in msg and f"'{field}'" in msg


def test_not_json_and_missing(tmp_path):
    p = write(tmp_path, "{name: oops")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_card(p)
    with pytest.raises(ModelError, match="not found"):
        load_card(tmp_path / "absent.json")
    with pytest.raises(ModelError, match="JSON object"):
        load_card(write(tmp_path, "[1, 2]"))
