"""Gold-panel scoring: Dice against SimpleITK, kappa against sklearn, thresholds from the schema."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import cohen_kappa_score
from support.agreement_fixtures import reader_maps, write_grades, write_map

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.gold_panel import score_reader
from napari_clinlabel.core.schema import load_schema


def _panel(tmp_path, reader_shift=0):
    gold, reader = tmp_path / "gold", tmp_path / "reader"
    gold.mkdir()
    reader.mkdir()
    a, b = reader_maps()
    for i in range(3):
        write_map(gold / f"case{i}.nii.gz", a)
        write_map(
            reader / f"case{i}.nii.gz", np.roll(a, reader_shift, axis=2) if reader_shift else b
        )
    return gold, reader


def _sitk_dice(pa, pb, label):
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.ReadImage(str(pa)), sitk.ReadImage(str(pb)))
    return f.GetDiceCoefficient(label)


def test_segmentation_fails_default_threshold_and_figures_match_simpleitk(tmp_path):
    gold, reader = _panel(tmp_path)
    res = score_reader(gold, reader)
    assert res.thresholds == {"dice": 0.85, "kappa": 0.90}
    seg = res.segmentation
    assert seg["n_cases"] == 3 and set(seg["cases"]) == {"case0", "case1", "case2"}
    for v in ("1", "2"):
        ref = _sitk_dice(gold / "case0.nii.gz", reader / "case0.nii.gz", int(v))
        assert seg["cases"]["case0"][v]["dice"] == pytest.approx(ref, abs=1e-9)
    # label 3 exists only in the reader's maps: Dice 0 counts against them
    dices = [m["dice"] for c in seg["cases"].values() for m in c.values()]
    assert seg["mean_dice"] == pytest.approx(np.mean(dices)) and seg["mean_dice"] < 0.85
    assert not res.passed and res.failures == [
        f"mean Dice {seg['mean_dice']:.3f} is below the threshold 0.85"
    ]


def test_identical_reader_passes(tmp_path):
    gold, _ = _panel(tmp_path)
    res = score_reader(gold, gold)
    assert res.passed and res.segmentation["mean_dice"] == 1.0 and res.failures == []


def test_schema_thresholds_apply(tmp_path):
    gold, reader = _panel(tmp_path)
    schema = dataclasses.replace(load_schema("abdomen-ct"), thresholds={"dice": 0.3, "kappa": 0.5})
    res = score_reader(gold, reader, schema=schema)
    assert res.passed and res.thresholds["dice"] == 0.3


def test_grades_quadratic_kappa_on_ordinal_schema_scale(tmp_path):
    schema = load_schema("icdr")
    scale_id, scale = next((k, s) for k, s in schema.scales.items() if s.kind == "ordinal")
    values = scale.value_list()
    rng = np.random.default_rng(1)
    gi = rng.integers(0, len(values), 50)
    ri = np.clip(gi + rng.choice([-1, 0, 0, 0, 0, 1], 50), 0, len(values) - 1)
    g, r = [values[i] for i in gi], [values[i] for i in ri]
    items = [f"eye{i}" for i in range(50)]
    pg = write_grades(tmp_path / "gold.csv", list(zip(items, g, strict=True)))
    # the reader graded two extra images beyond the panel: ignored
    pr = write_grades(
        tmp_path / "reader.csv",
        list(zip(items, r, strict=True)) + [("x1", values[0]), ("x2", values[1])],
    )
    res = score_reader(gold_grades=pg, reader_grades=pr, schema=schema, scale=scale_id)
    ref = cohen_kappa_score(g, r, labels=values, weights="quadratic")
    assert res.grading["kappa"] == pytest.approx(ref, abs=1e-9)
    assert res.grading["kappa_kind"] == "weighted_kappa_quadratic" and res.grading["n"] == 50
    assert res.passed == (ref >= 0.90)


def test_grades_nominal_inferred_uses_cohen(tmp_path):
    g = ["cyst", "solid", "cyst", "mixed", "solid", "cyst"]
    r = ["cyst", "solid", "mixed", "mixed", "solid", "solid"]
    items = [f"l{i}" for i in range(6)]
    res = score_reader(
        gold_grades=write_grades(tmp_path / "g.csv", list(zip(items, g, strict=True))),
        reader_grades=write_grades(tmp_path / "r.csv", list(zip(items, r, strict=True))),
    )
    assert res.grading["kappa_kind"] == "kappa"
    assert res.grading["kappa"] == pytest.approx(
        cohen_kappa_score(g, r, labels=sorted(set(g))), abs=1e-9
    )
    assert not res.passed and "kappa" in res.failures[0]


def test_bad_input(tmp_path):
    gold, reader = _panel(tmp_path)
    (reader / "case2.nii.gz").unlink()
    with pytest.raises(
        InputError, match=r"1 gold case\(s\) have no label map from the reader \(case2\)"
    ):
        score_reader(gold, reader)
    with pytest.raises(InputError, match="needs label maps"):
        score_reader()
    with pytest.raises(InputError, match="AND"):
        score_reader(gold, None)
    pg = write_grades(tmp_path / "g.csv", [("a", "1"), ("b", "2")])
    pr = write_grades(tmp_path / "r.csv", [("a", "1")])
    with pytest.raises(InputError, match=r"1 gold item\(s\) are not graded by the reader \(b\)"):
        score_reader(gold_grades=pg, reader_grades=pr)
    with pytest.raises(InputError, match="not a folder"):
        score_reader(tmp_path / "nope", reader)
