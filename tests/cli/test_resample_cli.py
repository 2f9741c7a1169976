"""Uneven DICOM spacing from the command line: without ``--resample`` one line and exit 2 naming
the flag; with it the series is resampled (``image.resample`` by the acting human, then the
work), and ``export --resample`` writes the labels back onto the original slices per even block.

Oracles: each file's ImagePositionPatient (pydicom) for where an original slice lies; numpy's
``interp`` over those positions for resampled voxels; nibabel for the NIfTI affines; highdicom's
SEG reader for the frames a DICOM SEG gives each original SOP instance; the log's own verifier.
"""

from __future__ import annotations

import csv
import json

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel import _export_writers as writers
from napari_clinlabel import api
from napari_clinlabel.cli import main
from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.log.audit_log import iter_records

OFFSETS = [0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0]  # 2 mm then 1 mm: two even blocks
GAPPED = [0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 7.0]  # 1 mm with one slice missing (4 mm)


@pytest.fixture
def rad(monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "rad1")
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    return api.Actor("rad1", "rad1", "annotator")


def _depths(files) -> dict[str, float]:
    """SOP Instance UID -> position along the slice normal (mm), from each file's header."""
    out = {}
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        iop = np.asarray(ds.ImageOrientationPatient, float)
        normal = np.cross(iop[:3], iop[3:])
        out[str(ds.SOPInstanceUID)] = float(np.asarray(ds.ImagePositionPatient, float) @ normal)
    return out


def _hu(ds) -> np.ndarray:
    """Stored values with the file's rescale applied (PS3.3 C.11.1.1.2)."""
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _labelled_originals(depth: dict[str, float], d0: float, grid_mm, drawn) -> set[str]:
    """The SOP instances a label drawn on resampled slices ``drawn`` (indices into ``grid_mm``,
    mm past the first slice) must reach, from the files' own positions: the nearest original
    slice of each drawn one (a tie: the lower), and an original slice no grid slice is nearest
    to whose own nearest grid slice (a tie: the lower) is drawn."""
    uids = sorted(depth, key=depth.get)
    pos = np.array([depth[u] - d0 for u in uids])
    grid = np.asarray(grid_mm, float)
    owner = [int(np.flatnonzero(np.abs(pos - t) <= np.abs(pos - t).min() + 1e-6)[0]) for t in grid]
    out = {uids[owner[k]] for k in drawn}
    for i, d in enumerate(pos):
        dist = np.abs(grid - d)
        if i not in owner and int(np.flatnonzero(dist <= dist.min() + 1e-6)[0]) in set(drawn):
            out.add(uids[i])
    return out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_without_the_flag_each_command_says_how_in_one_line(tmp_path, rad, capsys):
    write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    write_series(tmp_path / "gap", phantom_stored((7, 6, 5)), offsets_mm=GAPPED)
    assert main(["info", str(tmp_path / "gap")]) == 2
    assert "a missing slice" in (err := _one_line_error(capsys)) and "--resample" in err
    assert main(["prelabel", str(tmp_path / "ct"), "--model", "builtin:baseline"]) == 2
    err = _one_line_error(capsys)
    assert "uneven slice spacing" in err and "--resample [--spacing MM]" in err
    assert "series=" not in err and "resample=" not in err  # CLI flags only, no API terms
    assert main(["prelabel", str(tmp_path / "gap"), "--model", "builtin:baseline"]) == 2
    assert "--resample" in _one_line_error(capsys)
    assert main(["info", str(tmp_path / "ct"), "--spacing", "1"]) == 2
    assert "--spacing applies to --resample only" in _one_line_error(capsys)
    assert main(["prelabel", str(tmp_path / "ct"), "--model", "builtin:baseline",
                 "--spacing", "1"]) == 2  # fmt: skip
    assert "--resample" in _one_line_error(capsys)
    # nothing was resampled or logged silently
    assert not list(tmp_path.glob("*.clinlabel.jsonl"))


def test_info_resample_shows_the_grid_and_logs_nothing(tmp_path, rad, capsys):
    ws = write_series(tmp_path / "gap", phantom_stored((7, 6, 5)), offsets_mm=GAPPED)
    assert main(["info", str(tmp_path / "gap"), "--resample", "--json"]) == 0
    (vol,) = json.loads(capsys.readouterr().out)["volumes"]
    assert vol["size"] == [5, 6, 8] and vol["spacing"][2] == pytest.approx(1.0)
    assert vol["resampled"]["gaps_bridged"] == 1 and vol["resampled"]["original_slices"] == 7
    first = min(_depths(ws.files).values())
    normal = ws.geometry.direction_matrix()[:, 2]
    assert float(np.asarray(vol["origin"]) @ normal) == pytest.approx(first, abs=1e-4)
    assert not list(tmp_path.glob("*.clinlabel.jsonl"))


def test_prelabel_resample_logs_the_request_then_the_proposals(tmp_path, rad, capsys):
    write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    rc = main(["prelabel", str(tmp_path / "ct"), "--model", "builtin:baseline", "--resample"])
    assert rc == 0, capsys.readouterr().err
    log = tmp_path / "ct.resampled.clinlabel.jsonl"
    recs = list(iter_records(log))
    assert [r["action"] for r in recs[:2]] == ["image.open", "image.resample"]
    assert recs[1]["actor"]["id"] == "rad1" and recs[1]["source"]["kind"] == "tool"
    assert recs[1]["data"]["to_spacing_mm"] == 1.0 and recs[1]["data"]["resampled_slices"] == 10
    assert recs[0]["data"]["shape"][0] == 10  # the resampled grid is what was opened
    assert not (tmp_path / "ct.clinlabel.jsonl").exists()  # the blocks' log is untouched
    assert api.verify_log(log).ok


def test_export_resample_writes_each_block_on_its_original_slices(tmp_path, rad, capsys):
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    depth = _depths(ws.files)
    d0 = min(depth.values())
    with api.open_image(tmp_path / "ct", rad, schema="abdomen-ct", resample=0.5) as image:
        assert image.shape == (19, 6, 5)
        # the resampled layer's voxels: linear over the files' true positions
        stack = np.stack([_hu(pydicom.dcmread(f)) for f in ws.files])
        pos = np.array([depth[str(pydicom.dcmread(f).SOPInstanceUID)] for f in ws.files]) - d0
        order = np.argsort(pos)
        for k in (0, 3, 9, 13, 18):
            want = np.array([np.interp(k * 0.5, pos[order], stack[order, j, i])
                             for j in range(6) for i in range(5)]).reshape(6, 5)  # fmt: skip
            np.testing.assert_allclose(image.volume.array[k], want, atol=1e-3)
        mask = np.zeros(image.shape, bool)
        mask[5:14, 1:4, 1:3] = True  # 2.5 .. 6.5 mm along the normal: both blocks
        image.paint(mask, 1)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["export", str(tmp_path / "ct"), "--format", "nifti", "-o",
                 str(out / "lab.nii.gz")]) == 2  # fmt: skip
    assert "--resample" in _one_line_error(capsys)
    assert main(["export", str(tmp_path / "ct"), "--format", "nifti", "-o",
                 str(out / "lab.nii.gz"), "--resample"]) == 0  # fmt: skip
    written = capsys.readouterr().out
    assert "lab.slices1-4.nii.gz" in written and "lab.slices5-7.nii.gz" in written
    # an original slice is labelled iff its nearest resampled slice is, or a labelled resampled
    # slice (2.5 .. 6.5 mm) is nearer to it than to any other original slice (tie: the lower)
    labelled = _labelled_originals(depth, d0, 0.5 * np.arange(19), range(5, 14))
    seen = set()
    for name in ("lab.slices1-4.nii.gz", "lab.slices5-7.nii.gz"):
        img = nib.load(out / name)
        arr = np.asarray(img.dataobj)  # (x, y, z)
        for k in range(arr.shape[2]):
            centre = nib.affines.apply_affine(img.affine, [0, 0, k]) * [-1, -1, 1]  # RAS -> LPS
            uid = next(u for u, f in zip(depth, ws.files, strict=True)
                       if np.allclose(pydicom.dcmread(f).ImagePositionPatient, centre, atol=1e-3))  # fmt: skip
            seen.add(uid)
            assert bool(arr[:, :, k].any()) == (uid in labelled)
            if arr[:, :, k].any():
                np.testing.assert_array_equal(arr[:, :, k].T, mask[5, :, :].astype(arr.dtype))
    assert seen == set(depth)  # every original slice is in exactly one block file
    # DICOM SEG: one per block, each frame on an original SOP instance
    assert main(["export", str(tmp_path / "ct"), "--format", "dicom-seg", "-o",
                 str(out / "seg.dcm"), "--resample"]) == 0  # fmt: skip
    frames = {}
    for f in sorted(out.glob("seg.slices*.dcm")):
        seg = hd.seg.segread(f)
        uids = [u for _, _, u in seg.get_source_image_uids()]
        px = seg.get_pixels_by_source_instance(uids, segment_numbers=[1])
        frames.update({u: px[i, ..., 0] for i, u in enumerate(uids)})
    assert {u for u, px in frames.items() if px.any()} == labelled
    recs = list(iter_records(tmp_path / "ct.resampled.clinlabel.jsonl"))
    actions = [r["action"] for r in recs]
    assert actions[:2] == ["image.open", "image.resample"] and "label.paint" in actions
    assert actions.index("image.resample") < actions.index("label.paint")
    assert actions[-2:] == ["export", "export"] and all(r["actor"]["id"] == "rad1" for r in recs)
    assert api.verify_log(tmp_path / "ct.resampled.clinlabel.jsonl").ok


def test_real_ct_files_with_a_gap_resample_across_it(shared_data, tmp_path, rad):
    """dcmqi's three real CT slices (1 mm apart) plus a copy of the first moved to 2 mm past the
    last (new SOP Instance UID): a real-file series with one slice missing, copied into the
    test's temporary folder only."""
    src = shared_data / "dcmqi_ct3slice_seg" / "ct-3slice"
    folder = tmp_path / "ct4"
    folder.mkdir()
    for name in ("01.dcm", "02.dcm", "03.dcm"):
        (folder / name).write_bytes((src / name).read_bytes())
    depth = _depths([folder / n for n in ("01.dcm", "02.dcm", "03.dcm")])
    ds = {n: pydicom.dcmread(folder / n) for n in ("01.dcm", "02.dcm", "03.dcm")}
    by_depth = sorted(ds.values(), key=lambda d: depth[str(d.SOPInstanceUID)])
    first, last = by_depth[0], by_depth[-1]
    step = np.asarray(last.ImagePositionPatient, float) - np.asarray(
        by_depth[1].ImagePositionPatient, float
    )
    moved = pydicom.dcmread(folder / "01.dcm")
    moved.SOPInstanceUID = pydicom.uid.generate_uid()
    moved.file_meta.MediaStorageSOPInstanceUID = moved.SOPInstanceUID
    moved.ImagePositionPatient = [f"{v:.4f}" for v in
                                  np.asarray(last.ImagePositionPatient, float) + 2 * step]  # fmt: skip
    moved.InstanceNumber = 99
    moved.save_as(folder / "99.dcm")
    assert main(["info", str(folder)]) == 2  # refused as it is: a missing slice
    with api.open_image(folder, rad, resample=True) as image:
        vol = image.volume
        assert vol.array.shape[0] == 5  # 0..4 mm at the smallest step, 1 mm
        hu = _hu
        np.testing.assert_allclose(vol.array[0], hu(first), atol=1e-2)
        np.testing.assert_allclose(vol.array[2], hu(last), atol=1e-2)
        np.testing.assert_allclose(vol.array[3], (hu(last) + hu(moved)) / 2, atol=1e-2)  # gap
        np.testing.assert_allclose(vol.array[4], hu(moved), atol=1e-2)
        recs = image.records()
    assert recs[1]["action"] == "image.resample" and recs[1]["data"]["gaps_bridged"] == 1
    assert recs[1]["data"]["from_steps_mm"] == [1.0, 2.0]
    assert api.verify_log(tmp_path / "ct4.resampled.clinlabel.jsonl").ok


def test_api_export_of_a_resampled_image_goes_back_per_block(tmp_path, rad):
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    depth = _depths(ws.files)
    with api.open_image(tmp_path / "ct", rad, resample=True) as image:  # 1 mm: 10 slices
        image.paint((np.array([6]), np.array([2]), np.array([3])), 1)  # 6 mm: slice 4 of 7
        res = image.export("nrrd", tmp_path / "lab.nrrd")
    names = sorted(o.path.name for o in res.outputs if o.path.suffix == ".nrrd")
    assert names == ["lab.slices1-4.nrrd", "lab.slices5-7.nrrd"]
    block = sitk.ReadImage(str(tmp_path / "lab.slices1-4.nrrd"))
    arr = sitk.GetArrayFromImage(block)
    (k,) = np.nonzero(arr.reshape(arr.shape[0], -1).any(axis=1))[0]
    centre = np.asarray(block.TransformIndexToPhysicalPoint((0, 0, int(k))))
    sixth = [u for u, d in depth.items() if round(d - min(depth.values())) == 6]
    ipp = next(np.asarray(pydicom.dcmread(f).ImagePositionPatient, float) for f in ws.files
               if str(pydicom.dcmread(f).SOPInstanceUID) == sixth[0])  # fmt: skip
    np.testing.assert_allclose(centre, ipp, atol=1e-4)  # the slice the label was drawn on
    assert arr[k, 2, 3] == 1 and arr.sum() == 1
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "lab.slices5-7.nrrd"))).any()
    assert res.record["actor"]["id"] == "rad1"
    assert api.verify_log(tmp_path / "ct.resampled.clinlabel.jsonl").ok


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["info", "{tmp}/img.nii.gz", "--resample"], "not a DICOM image"),
        (["info", "{tmp}/nowhere", "--resample"], "no such file or folder"),
        (["info", "{tmp}/even", "--resample"], "evenly spaced"),
        (["info", "{tmp}/ct", "--resample", "--spacing", "-1"], "positive number of mm"),
        (["info", "{tmp}/ct", "--resample", "--spacing", "0.0001"], "choose a larger spacing"),
        (["export", "{tmp}/ct", "--resample", "--format", "nifti", "-o", "{tmp}/o.nii.gz"],
         "no sidecar log"),
        (["export", "{tmp}/img.nii.gz", "--resample", "--format", "nifti", "-o",
          "{tmp}/o.nii.gz"], "--resample applies to an unevenly spaced DICOM series only"),
        (["prelabel", "{tmp}/even", "--resample", "--model", "builtin:baseline"],
         "evenly spaced"),
    ],
)  # fmt: skip
def test_bad_resample_requests_are_one_line_exit_2(tmp_path, rad, capsys, args, expect):
    write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    write_series(tmp_path / "even", phantom_stored((4, 6, 5), seed=3))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16)),
                    str(tmp_path / "img.nii.gz"))  # fmt: skip
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert expect in _one_line_error(capsys)
    assert not list(tmp_path.glob("*.clinlabel.jsonl")) and not (tmp_path / "o.nii.gz").exists()


def test_a_slice_within_a_block_matches_simpleitk_resample_of_that_block(tmp_path, rad):
    """SimpleITK reads the second even block itself and resamples it (linear) onto the same
    target slices: inside a block both must agree."""
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    with api.open_image(tmp_path / "ct", rad, resample=0.25) as image:
        vol = image.volume
    depth = _depths(ws.files)
    d0 = min(depth.values())
    block = [f for f in ws.files
             if depth[str(pydicom.dcmread(f).SOPInstanceUID)] - d0 >= 6 - 1e-6]  # fmt: skip
    reader = sitk.ImageSeriesReader()
    block.sort(key=lambda f: depth[str(pydicom.dcmread(f).SOPInstanceUID)])
    reader.SetFileNames([str(f) for f in block])
    img = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
    target = sitk.Image(img.GetSize()[0], img.GetSize()[1], 13, sitk.sitkFloat32)
    target.SetSpacing((*img.GetSpacing()[:2], 0.25))
    target.SetOrigin(img.GetOrigin())
    target.SetDirection(img.GetDirection())
    theirs = sitk.GetArrayFromImage(sitk.Resample(img, target, sitk.Transform(), sitk.sitkLinear))
    ours = vol.array[24:37]  # 6 mm .. 9 mm at 0.25 mm
    np.testing.assert_allclose(ours, theirs, atol=1e-2)


REPRO = [0.0, 2.0, 4.0, 7.0, 9.0, 11.0, 13.0]  # the trial's series: 2 mm, then 3, then 2 mm


def _labelled_by_uid(path, fmt: str, files) -> dict[str, int]:
    """SOP Instance UID -> labelled voxels of that original slice in one exported block, the
    slice found by its physical position (SimpleITK) against each file's ImagePositionPatient."""
    if fmt == "dicom-seg":
        seg = hd.seg.segread(path)
        uids = [u for _, _, u in seg.get_source_image_uids()]
        px = seg.get_pixels_by_source_instance(uids, segment_numbers=[1])
        return {u: int(np.count_nonzero(px[i])) for i, u in enumerate(uids)}
    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)
    ipp = {str(pydicom.dcmread(f).SOPInstanceUID): np.asarray(pydicom.dcmread(f).ImagePositionPatient, float)
           for f in files}  # fmt: skip
    out = {}
    for k in range(arr.shape[0]):
        centre = np.asarray(img.TransformIndexToPhysicalPoint((0, 0, k)))
        (uid,) = [u for u, p in ipp.items() if np.allclose(p, centre, atol=1e-3)]
        out[uid] = int(np.count_nonzero(arr[k]))
    return out


def test_a_label_drawn_only_between_original_slices_is_exported_and_said(
    tmp_path, rad, capsys, monkeypatch
):
    """The trial's repro: a lesion painted only on the resampled 10 mm slice of a series at
    0, 2, 4, 7, 9, 11, 13 mm lands on the 9 mm original slice (10 mm is as near 9 as 11 mm: a tie
    goes to the lower), with its voxel count, in every format, and the export says so."""
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=REPRO)
    depth = _depths(ws.files)
    d0 = min(depth.values())
    (at9,) = [u for u, d in depth.items() if abs(d - d0 - 9.0) < 1e-3]
    with api.open_image(tmp_path / "ct", rad, resample=1.0) as image:
        assert image.shape == (14, 6, 5)  # 0..13 mm
        mask = np.zeros(image.shape, bool)
        mask[10, 1:4, 2:4] = True  # 10 mm only: no original slice there
        image.paint(mask, 1)
        layer = image.labels()
        name = image.labels_name
    out = tmp_path / "out"
    out.mkdir()
    for fmt, suffix in (("nifti", ".nii.gz"), ("nrrd", ".nrrd"), ("mha", ".mha"),
                        ("dicom-seg", ".dcm")):  # fmt: skip
        assert main(["export", str(tmp_path / "ct"), "--format", fmt, "-o",
                     str(out / f"lab{suffix}"), "--resample"]) == 0  # fmt: skip
        printed = capsys.readouterr().out
        assert "6 labelled voxel(s) drawn on resampled slices between original ones were " \
               "carried onto the nearest original slice(s): 5." in printed  # fmt: skip
        counts: dict[str, int] = {}
        for f in sorted(out.glob(f"lab.slices*{suffix}")):
            counts.update(_labelled_by_uid(f, fmt, ws.files))
        assert {u: c for u, c in counts.items() if c} == {at9: 6}, fmt
        rec = list(iter_records(tmp_path / "ct.resampled.clinlabel.jsonl"))[-1]
        assert rec["action"] == "export" and rec["data"]["carried_between_slices"] == {
            "voxels": 6,
            "onto_slices": [5],
            "from_resampled_slices": [10],
            "shadowed_voxels": 0,
        }
    # napari's File > Save through the export writer: same mapping, said as a notification
    attrs = {"name": name, "metadata": {"clinlabel": {"source_path": str(tmp_path / "ct"),
                                                      "resampled": True}}}  # fmt: skip
    told = []
    monkeypatch.setattr(writers, "show_info", told.append)
    written = writers.write_labels_nrrd(str(out / "saved.nrrd"), layer, attrs)
    assert any("6 labelled voxel(s)" in t and t.endswith(": 5.") for t in told)
    counts = {}
    for f in written:
        if f.endswith(".nrrd"):
            counts.update(_labelled_by_uid(f, "nrrd", ws.files))
    assert {u: c for u, c in counts.items() if c} == {at9: 6}
    rec = list(iter_records(tmp_path / "ct.resampled.clinlabel.jsonl"))[-1]
    assert rec["data"]["carried_between_slices"]["voxels"] == 6
    assert api.verify_log(tmp_path / "ct.resampled.clinlabel.jsonl").ok


def test_the_grid_spans_the_first_to_the_last_original_slice_exactly(tmp_path, rad, capsys):
    """0..13 mm asked at 2 mm: 8 slices 13/7 mm apart (not 0..12 mm, where 12 mm is a blend and
    the true 13 mm slice is never shown); first and last resampled slices are the first and last
    files' pixel values exactly, and lie at their ImagePositionPatient."""
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=REPRO)
    depth = _depths(ws.files)
    by_depth = sorted(ws.files, key=lambda f: depth[str(pydicom.dcmread(f).SOPInstanceUID)])
    first, last = pydicom.dcmread(by_depth[0]), pydicom.dcmread(by_depth[-1])
    assert main(["info", str(tmp_path / "ct"), "--resample"]) == 0  # logs nothing
    printed = capsys.readouterr().out
    assert "8 at 1.857142857 mm (asked 2 mm;" in printed
    with api.open_image(tmp_path / "ct", rad, resample=True) as image:  # smallest step: 2 mm
        vol = image.volume
        rec = image.records()[1]
    assert vol.array.shape[0] == 8 and vol.geometry.spacing[2] == pytest.approx(13 / 7)
    np.testing.assert_array_equal(vol.array[0], _hu(first).astype(np.float32))
    np.testing.assert_array_equal(vol.array[-1], _hu(last).astype(np.float32))
    size = (vol.array.shape[2], vol.array.shape[1], vol.array.shape[0])
    img = sitk.Image(size, sitk.sitkUInt8)
    img.SetSpacing(vol.geometry.spacing)
    img.SetOrigin(vol.geometry.origin)
    img.SetDirection(vol.geometry.direction)
    for k, ds in ((0, first), (7, last)):
        np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((0, 0, k)),
                                   np.asarray(ds.ImagePositionPatient, float), atol=1e-4)  # fmt: skip
    assert rec["action"] == "image.resample"
    assert rec["data"]["to_spacing_mm"] == pytest.approx(13 / 7)
    assert rec["data"]["asked_spacing_mm"] == 2.0 and rec["data"]["resampled_slices"] == 8
    # reopened at the recorded spacing (the log's, or typed as info prints it): the same voxels
    with api.open_image(tmp_path / "ct", rad, resample=True) as again:
        assert again.volume.sha256 == vol.sha256
    assert api.verify_log(tmp_path / "ct.resampled.clinlabel.jsonl").ok
    assert main(["info", str(tmp_path / "ct"), "--resample", "--spacing", "1.857142857",
                 "--json"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["volumes"][0]["sha256"] == vol.sha256


def test_reopening_at_another_spacing_names_the_recorded_one(tmp_path, rad, capsys):
    write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=OFFSETS)
    with api.open_image(tmp_path / "ct", rad, resample=1.0):
        pass
    log = tmp_path / "ct.resampled.clinlabel.jsonl"
    before = log.read_bytes()
    assert main(["prelabel", str(tmp_path / "ct"), "--model", "builtin:baseline", "--resample",
                 "--spacing", "0.5"]) == 2  # fmt: skip
    err = _one_line_error(capsys)
    assert "recorded the series resampled to 1 mm (10 slices), not 0.5 mm" in err
    assert "move the log aside" in err and "belongs to another image" not in err
    with pytest.raises(InputError) as exc:
        api.open_image(tmp_path / "ct", rad, resample=0.5)
    assert "recorded the series resampled to 1 mm" in str(exc.value)
    assert log.read_bytes() == before  # nothing appended by a refused reopening
    # at the recorded spacing (or none) it reopens on the same log
    assert main(["prelabel", str(tmp_path / "ct"), "--model", "builtin:baseline",
                 "--resample"]) == 0  # fmt: skip
    assert api.verify_log(log).ok


def test_box_tables_of_a_resampled_image_name_the_grid_and_the_original_slices(
    tmp_path, rad, capsys
):
    """Slice indices of boxes drawn on the resampled grid (0..13 mm, 1 mm) come with the grid
    and the series' own slice numbers; the oracle is each file's ImagePositionPatient and
    InstanceNumber order (the writer numbers slices by position)."""
    ws = write_series(tmp_path / "ct", phantom_stored((7, 6, 5)), offsets_mm=REPRO)
    depth = _depths(ws.files)
    d0 = min(depth.values())
    pos = sorted(d - d0 for d in depth.values())  # series order: slice n is pos[n - 1]
    with api.open_image(tmp_path / "ct", rad, schema="lesions", resample=1.0) as image:
        a = image.add_box((9, 1, 1), (10, 3, 3))  # resampled 9..10 mm
        b = image.add_box((5, 1, 1), (8, 3, 3))  # resampled 5..8 mm
        world = {a.id: image.volume.geometry.index_to_world(a.zyx_min)}

    def owners(lo_mm: float, hi_mm: float) -> tuple[int, int]:
        """1-based slices whose position is nearest (tie: lower) to a drawn 1 mm slice."""
        hits = set()
        for t in np.arange(lo_mm, hi_mm + 0.5):
            dist = np.abs(np.asarray(pos) - t)
            hits.add(int(np.flatnonzero(dist <= dist.min() + 1e-6)[0]) + 1)
        return min(hits), max(hits)

    assert main(["export", str(tmp_path / "ct"), "--format", "json", "-o",
                 str(tmp_path / "boxes.json"), "--resample"]) == 0  # fmt: skip
    doc = json.loads((tmp_path / "boxes.json").read_text())
    assert doc["slice_grid"]["resampled"] is True and doc["slice_grid"]["spacing_mm"] == 1.0
    rows = {r["id"]: r for r in doc["boxes"]}
    assert (rows[a.id]["slice_first"], rows[a.id]["slice_last"]) == (9, 10)  # resampled grid
    assert (rows[a.id]["original_slice_first"], rows[a.id]["original_slice_last"]) == owners(9, 10)
    assert (rows[b.id]["original_slice_first"], rows[b.id]["original_slice_last"]) == owners(5, 8)
    np.testing.assert_allclose(rows[a.id]["world_min_zyx_mm"], world[a.id], atol=1e-3)
    assert main(["export", str(tmp_path / "ct"), "--format", "csv", "-o",
                 str(tmp_path / "boxes.csv"), "--resample"]) == 0  # fmt: skip
    with open(tmp_path / "boxes.csv", newline="") as fh:
        got = {r["id"]: r for r in csv.DictReader(fh)}
    assert got[b.id]["slice_grid"] == "resampled 1 mm"
    assert (int(got[b.id]["original_slice_first"]), int(got[b.id]["original_slice_last"])) == (
        owners(5, 8)
    )
    capsys.readouterr()
