"""Dataset report: numbers against metrics/sklearn oracles, provenance counts, no PHI, HTML renders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from sklearn.metrics import cohen_kappa_score
from support.agreement_fixtures import reader_maps, write_reader_log

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.quality.metrics import label_map_agreement
from napari_clinlabel.core.quality.report import age_band, collect_dataset, dicom_demographics
from napari_clinlabel.core.quality.report_html import render_html
from napari_clinlabel.core.schema import load_schema

SECRET_NAME = "CANARY^SECRETNAME"
SECRET_ID = "CNRY-ID-991"


def write_dicom(path: Path, sex: str, age: str, site: str, maker: str, model: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = SECRET_NAME, SECRET_ID, "19770101"
    ds.PatientSex, ds.PatientAge, ds.InstitutionName = sex, age, site
    ds.Manufacturer, ds.ManufacturerModelName, ds.Modality = maker, model, "CT"
    ds.save_as(path, enforce_file_format=True)
    return path


# BI-RADS assessment by two readers over 6 cases (reader 2 disagrees on two)
GRADES_1 = ["1", "2", "3", "4A", "4B", "5"]
GRADES_2 = ["1", "2", "4A", "4A", "4C", "5"]


def build_dataset(root: Path) -> Path:
    """6 cases x 2 readers (alice draws, bob accepts model proposals); case 0 DICOM headers vary."""
    schema = load_schema("birads")
    a, b = reader_maps()
    for i in range(6):
        sha = f"{i:02d}" * 32
        for reader, labels, grade, via_model in (
            ("alice", a, GRADES_1[i], False),
            ("bob", b, GRADES_2[i], True),
        ):
            folder = root / reader
            folder.mkdir(parents=True, exist_ok=True)
            img = folder / f"case{i}.dcm"
            write_dicom(img, "F" if i % 2 else "M", f"0{40 + 7 * i}Y", "General Hospital" if i < 4 else "Clinic B",
                        "ACME", "CT-9000")  # fmt: skip
            write_reader_log(Path(f"{img}.clinlabel.jsonl"), np.roll(labels, i % 2, axis=2), reader,
                             image_sha=sha, via_model=via_model, grades={"assessment": grade},
                             schema=schema)  # fmt: skip
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One dataset shared by the read-only tests of this module."""
    return build_dataset(tmp_path_factory.mktemp("report") / "ds")


def test_collect_dataset_numbers(dataset):
    rep = collect_dataset(dataset)
    assert len(rep.logs) == 12 and all(s.verified for s in rep.logs)
    assert {s.reader for s in rep.logs} == {"alice", "bob"}
    assert rep.schema_versions == {"birads 1.0.0": 12}
    # Dice per image and label equals label_map_agreement on the same maps
    a, b = reader_maps()
    ref = label_map_agreement(a, b, None)
    rows = [r for r in rep.seg_pairs if r["image"] == "00" * 6]
    assert {r["label"] for r in rows} == {1, 2, 3}
    for r in rows:
        assert r["dice"] == pytest.approx(ref[str(r["label"])]["dice"], abs=1e-12)
    # grading: one pair over 6 cases, against sklearn on the full BI-RADS scale
    (g,) = rep.grade_pairs
    scale = load_schema("birads").scales["assessment"].value_list()
    assert g["n"] == 6 and g["values"] == scale
    assert g["kappa"] == pytest.approx(
        cohen_kappa_score(GRADES_1, GRADES_2, labels=scale), abs=1e-9
    )
    assert g["weighted_kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(GRADES_1, GRADES_2, labels=scale, weights="quadratic"), abs=1e-9
    )
    assert g["per_class"]["4A"]["precision"] == 0.5 and g["per_class"]["4B"]["recall"] == 0.0
    # provenance: alice drew labels 1, 2 on 6 cases; bob accepted model proposals for 1, 2, 3
    assert rep.origins["manual"] == 12 and rep.origins["model accepted unchanged"] == 18
    assert rep.proposals["accepted"] == 18 and rep.acceptance_rate == 1.0
    # demographics: one count per image, not per reader
    assert rep.demographics["sex"] == {"F": 3, "M": 3}
    assert rep.demographics["site"] == {"Clinic B": 2, "General Hospital": 4}
    assert rep.demographics["age band"] == {
        "40-49": 2,
        "50-59": 1,
        "60-69": 2,
        "70-79": 1,
    }  # 40 47 54 61 68 75
    assert rep.demographics["scanner"] == {"ACME CT-9000": 6}


def test_broken_log_is_reported_and_left_out(tmp_path):
    root = build_dataset(tmp_path / "ds")
    log = root / "bob" / "case0.dcm.clinlabel.jsonl"
    lines = log.read_text().splitlines()
    lines[3] = lines[3].replace('"bob"', '"eve"', 1)
    log.write_text("\n".join(lines) + "\n")
    rep = collect_dataset(root)
    bad = [s for s in rep.logs if not s.verified]
    assert [s.path for s in bad] == ["bob/case0.dcm.clinlabel.jsonl"] and "seq" in bad[
        0
    ].verify_summary
    assert not [r for r in rep.seg_pairs if r["image"] == "00" * 6]
    assert rep.grade_pairs[0]["n"] == 5


def test_html_has_plots_and_no_phi(dataset):
    rep = collect_dataset(dataset)
    html = render_html(rep)
    assert html.count("data:image/png;base64,") >= 6
    for section in ("Log verification", "Schema versions in force", "How each final label came about",
                    "Segmentation agreement", "Grading agreement", "Cases by sex"):  # fmt: skip
        assert section in html
    for phi in (SECRET_NAME, "SECRETNAME", SECRET_ID, "19770101"):
        assert phi not in html
    # the proposal table says undecided, not "proposed" (read as the total a model made)
    assert '<td class="l">still undecided</td>' in html and '"l">proposed</td>' not in html


def test_demographics_helpers(tmp_path):
    assert age_band("045Y") == "40-49" and age_band("006M") == "0-9" and age_band("095Y") == "90+"
    assert age_band(None) == "unknown" and age_band("abc") == "unknown"
    folder = tmp_path / "series"
    folder.mkdir()
    write_dicom(folder / "1.dcm", "O", "033Y", "", "", "")
    assert dicom_demographics(folder) == {
        "sex": "O",
        "age band": "30-39",
        "site": "unknown",
        "scanner": "unknown",
    }
    nifti = tmp_path / "x.nii.gz"
    nifti.write_bytes(b"not dicom")
    assert set(dicom_demographics(nifti).values()) == {"unknown"}


def test_bad_dataset(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        collect_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no sidecar logs"):
        collect_dataset(tmp_path / "empty")
    shutil.rmtree(tmp_path / "empty")


def test_labels_by_name_and_adjudicator_not_a_reader(tmp_path):
    """Two readers under abdomen-ct and an adjudicator's own log on the same image: the report
    names labels from the schema ("liver"), and counts two readers, not three."""
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor

    schema = load_schema("abdomen-ct")
    a, b = reader_maps()
    for reader, labels in (("alice", a), ("bob", b)):
        folder = tmp_path / "ds" / reader
        folder.mkdir(parents=True)
        write_reader_log(folder / "case.nii.gz.clinlabel.jsonl", labels, reader, schema=schema)
    adj = tmp_path / "ds" / "erin"
    adj.mkdir()
    log = AuditLog(adj / "case.nii.gz.clinlabel.jsonl", {"uid": None, "sha256": "ab" * 32},
                   Actor("erin", "Erin", "adjudicator"), schema.ref())  # fmt: skip
    log.append("image.open", None, {"shape": list(a.shape)})
    log.close()
    rep = collect_dataset(tmp_path / "ds")
    assert {s.reader for s in rep.logs} == {"alice", "bob", ""}
    names = {lab.value: lab.name for lab in schema.labels}
    assert rep.seg_pairs and all(r["name"] == names[r["label"]] for r in rep.seg_pairs)
    assert {(r["reader_a"], r["reader_b"]) for r in rep.seg_pairs} == {("alice", "bob")}
    html = render_html(rep)
    assert '<div class="card"><b>2</b>readers</div>' in html  # alice, bob; not erin
    assert f">Labels:{names[1]}<" in html and ">Labels:1<" not in html
