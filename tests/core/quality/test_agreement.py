"""agreement(A, B) on label-map files, grade tables and reader logs, against SimpleITK / sklearn."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from sklearn.metrics import cohen_kappa_score
from support.agreement_fixtures import GEOM, reader_maps, write_grades, write_map, write_reader_log

from napari_clinlabel.core.errors import InputError, LogIntegrityError, PendingProposalsError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.quality.agreement import agreement, detect_kind, resolve_scale

BIRADS = ["0", "1", "2", "3", "4A", "4B", "4C", "5", "6"]


def _sitk_dice(pa, pb, label):
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.ReadImage(str(pa)), sitk.ReadImage(str(pb)))
    return f.GetDiceCoefficient(label)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_label_map_files(tmp_path, suffix):
    a, b = reader_maps()
    pa, pb = write_map(tmp_path / f"a{suffix}", a), write_map(tmp_path / f"b{suffix}", b)
    res = agreement(pa, pb)
    assert set(res) == {"labels"} and set(res["labels"]) == {"1", "2", "3"}
    for v in (1, 2):
        rec = res["labels"][str(v)]
        assert set(rec) == {
            "dice",
            "hd95_mm",
            "mean_surface_distance_mm",
            "volume_difference_ml",
            "voxels_a",
            "voxels_b",
        }
        assert rec["dice"] == pytest.approx(_sitk_dice(pa, pb, v), abs=1e-9)
        assert rec["voxels_a"] == int((a == v).sum()) and rec["voxels_b"] == int((b == v).sum())
        assert rec["volume_difference_ml"] == pytest.approx(
            (rec["voxels_b"] - rec["voxels_a"]) * 0.8 * 0.7 * 2.0 / 1000
        )
    assert res["labels"]["3"]["voxels_a"] == 0 and res["labels"]["3"]["hd95_mm"] == float("inf")


def test_label_maps_different_shape_or_geometry_are_refused(tmp_path):
    a, b = reader_maps()
    pa = write_map(tmp_path / "a.nii.gz", a)
    pb = write_map(tmp_path / "b.nii.gz", b[:, :, :-1])
    with pytest.raises(
        InputError, match=r"a\.nii\.gz is \(16, 32, 36\) voxels but .*b\.nii\.gz is \(16, 32, 35\)"
    ):
        agreement(pa, pb)
    shifted = Geometry(GEOM.spacing, (GEOM.origin[0] + 0.5, *GEOM.origin[1:]), GEOM.direction)
    pc = write_map(tmp_path / "c.nii.gz", b, shifted)
    before = pa.read_bytes(), pc.read_bytes()
    with pytest.raises(InputError, match=r"a\.nii\.gz and .*c\.nii\.gz have different geometry"):
        agreement(pa, pc)
    assert (pa.read_bytes(), pc.read_bytes()) == before


def test_unreadable_and_mixed_inputs(tmp_path):
    a, _ = reader_maps()
    pa = write_map(tmp_path / "a.nii.gz", a)
    empty = tmp_path / "z.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        agreement(pa, empty)
    junk = tmp_path / "j.nii.gz"
    junk.write_bytes(b"not a nifti at all" * 10)
    with pytest.raises(InputError, match="cannot be read"):
        agreement(pa, junk)
    with pytest.raises(InputError, match="like with like"):
        agreement(pa, write_grades(tmp_path / "g.csv", [("x", "1")]))
    with pytest.raises(InputError, match="cannot tell"):
        detect_kind(tmp_path / "x.docx")


def _grade_pair(n=60, seed=0):
    rng = np.random.default_rng(seed)
    used = BIRADS[:-1]
    ia = rng.integers(0, len(used), n)
    ib = np.clip(ia + rng.choice([-1, 0, 0, 1], n), 0, len(used) - 1)
    return [used[i] for i in ia], [used[i] for i in ib]


def test_grade_tables_match_sklearn_on_full_scale(tmp_path):
    a, b = _grade_pair()
    items = [f"case{i:03d}" for i in range(len(a))]
    pa = write_grades(tmp_path / "a.csv", list(zip(items, a, strict=True)))
    # B lists the same items in another order and without a header
    pb = write_grades(tmp_path / "b.csv", list(zip(items, b, strict=True))[::-1], header=False)
    res = agreement(pa, pb, scale="birads:assessment")
    assert res["scale"] == BIRADS and res["n"] == len(a)
    assert res["kappa"] == pytest.approx(cohen_kappa_score(a, b, labels=BIRADS), abs=1e-9)
    assert res["weighted_kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(a, b, labels=BIRADS, weights="quadratic"), abs=1e-9
    )
    assert set(res["per_class"]) == set(BIRADS) and res["per_class"]["6"]["support"] == 0
    assert np.asarray(res["confusion_matrix"]).sum() == len(a)


def test_grade_scale_inferred_numeric(tmp_path):
    rows_a = [("i1", "0"), ("i2", "2"), ("i3", "10"), ("i4", "3")]
    rows_b = [("i1", "0"), ("i2", "3"), ("i3", "10"), ("i4", "2")]
    res = agreement(
        write_grades(tmp_path / "a.csv", rows_a), write_grades(tmp_path / "b.csv", rows_b)
    )
    assert res["scale"] == ["0", "2", "3", "10"]  # numeric order, not string order
    a, b = [g for _, g in rows_a], [g for _, g in rows_b]
    assert res["weighted_kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(a, b, labels=res["scale"], weights="quadratic"), abs=1e-9
    )


def test_grade_tables_with_unknown_items_are_refused(tmp_path):
    pa = write_grades(tmp_path / "a.csv", [(f"c{i}", "1") for i in range(10)])
    pb = write_grades(tmp_path / "b.csv", [(f"c{i}", "1") for i in range(2, 10)] + [("x1", "2")])
    before = pa.read_bytes(), pb.read_bytes()
    with pytest.raises(
        InputError,
        match=r"2 item\(s\) of .*a\.csv are missing from .*\('c0', 'c1'\).*1 item\(s\) of .*b\.csv are not in .*'x1'",
    ):
        agreement(pa, pb)
    assert (pa.read_bytes(), pb.read_bytes()) == before


def test_grade_table_bad_rows_and_off_scale(tmp_path):
    good = write_grades(tmp_path / "a.csv", [("c1", "1"), ("c2", "4B")])
    off = write_grades(tmp_path / "b.csv", [("c1", "1"), ("c2", "4")])
    with pytest.raises(InputError, match=r"b\.csv: 1 grade value\(s\) are not on the scale.*'4'"):
        agreement(good, off, scale="birads:assessment")
    dup = write_grades(tmp_path / "d.csv", [("c1", "1"), ("c1", "2")])
    with pytest.raises(InputError, match="graded twice"):
        agreement(good, dup)
    short = tmp_path / "s.csv"
    short.write_text("item,grade\nc1\n")
    with pytest.raises(InputError, match="row 1"):
        agreement(good, short)


def test_resolve_scale_names():
    assert resolve_scale("birads:assessment") == BIRADS
    assert resolve_scale("assessment") == BIRADS
    with pytest.raises(InputError, match="several scales"):
        resolve_scale("birads")
    with pytest.raises(InputError, match="no single built-in scale"):
        resolve_scale("nonsense")


def test_reader_logs_compare_final_labels(tmp_path):
    a, b = reader_maps()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    la = write_reader_log(tmp_path / "r1" / "ct.nii.gz.clinlabel.jsonl", a, "alice")
    lb = write_reader_log(tmp_path / "r2" / "ct.nii.gz.clinlabel.jsonl", b, "bob", via_model=True)
    res = agreement(la, lb)
    pa, pb = write_map(tmp_path / "a.mha", a), write_map(tmp_path / "b.mha", b)
    ref = agreement(pa, pb)  # MHA keeps the double-precision spacing the logs carry
    assert res.keys() == ref.keys() and res["labels"].keys() == ref["labels"].keys()
    for v, rec in ref["labels"].items():
        assert res["labels"][v] == pytest.approx(rec, rel=1e-12)


def test_logs_of_different_images_are_refused(tmp_path):
    a, b = reader_maps()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    la = write_reader_log(tmp_path / "r1" / "ct.clinlabel.jsonl", a, "alice", image_sha="ab" * 32)
    lb = write_reader_log(tmp_path / "r2" / "ct.clinlabel.jsonl", b, "bob", image_sha="ef" * 32)
    before = la.read_bytes(), lb.read_bytes()
    with pytest.raises(InputError, match="logs of different images"):
        agreement(la, lb)
    assert (la.read_bytes(), lb.read_bytes()) == before


def test_logs_with_undecided_proposals_are_refused_unless_excluded(tmp_path):
    a, b = reader_maps()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    la = write_reader_log(tmp_path / "r1" / "ct.clinlabel.jsonl", a, "alice")
    lb = write_reader_log(tmp_path / "r2" / "ct.clinlabel.jsonl", b, "bob", pending_proposal=True)
    with pytest.raises(PendingProposalsError, match="1 model proposal"):
        agreement(la, lb)
    assert agreement(la, lb, exclude_pending=True)["labels"]["1"]["voxels_b"] == int((b == 1).sum())


def test_tampered_log_is_refused(tmp_path):
    a, b = reader_maps()
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    la = write_reader_log(tmp_path / "r1" / "ct.clinlabel.jsonl", a, "alice")
    lb = write_reader_log(tmp_path / "r2" / "ct.clinlabel.jsonl", b, "bob")
    lines = lb.read_text().splitlines()
    lines[1] = lines[1].replace('"Labels"', '"Labelz"', 1)  # edit a record: its hash no longer fits
    lb.write_text("\n".join(lines) + "\n")
    with pytest.raises(LogIntegrityError, match="seq 1"):
        agreement(la, lb, labels_name="Labels")


def test_an_image_given_as_label_map_is_named(tmp_path):
    """A CT (negative HU) passed where a label map belongs: the message names that file."""
    a, b = reader_maps()
    pa = write_map(tmp_path / "labels.nii.gz", a)
    ct = write_map(tmp_path / "ct.nii.gz", (b.astype(np.int16) - 1000))
    with pytest.raises(InputError) as err:
        agreement(pa, ct)
    assert str(ct) in str(err.value) and "negative" in str(err.value)
