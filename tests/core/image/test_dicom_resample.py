"""Uneven slice spacing resampled only on an explicit request, logged as one record, and labels
drawn on the resampled grid brought back onto the original slices.

Oracles: the synthetic writer's known slice positions and stored values, scipy's ``interp1d``
(linear interpolation over the true positions), the DICOM standard's voxel centres from each
file's ImagePositionPatient, nibabel reading the block's NIfTI back, and the log's own reader.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy.interpolate import interp1d
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.export.labelmap import write_labels
from napari_clinlabel.core.image.dicom.volume import (
    labels_on_original_slices,
    map_to_original_slices,
    read_dicom_folder,
    read_dicom_resampled,
)
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.resample import record_resample

OFFSETS = [0.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0]  # 2 mm then 1 mm slices


@pytest.fixture
def uneven(tmp_path):
    ws = write_series(tmp_path / "ct", phantom_stored((7, 8, 10)), offsets_mm=OFFSETS)
    return ws, tmp_path / "ct"


def test_resampled_on_request_matches_linear_interpolation_over_true_positions(uneven):
    ws, folder = uneven
    assert len(read_dicom_folder(folder)) == 2  # by default: even blocks, nothing resampled
    vol = read_dicom_resampled(folder, spacing_mm=0.5)
    assert vol.array.shape == (19, 8, 10) and vol.array.dtype == np.float32
    oracle = interp1d(OFFSETS, ws.array.astype(np.float64), axis=0)(np.arange(19) * 0.5)
    np.testing.assert_allclose(vol.array, oracle, atol=1e-3)
    normal = ws.geometry.direction_matrix()[:, 2]
    for k in (0, 7, 18):
        truth = np.asarray(ws.geometry.origin) + 0.5 * k * normal
        np.testing.assert_allclose(vol.geometry.index_to_world((k, 0, 0))[::-1], truth, atol=1e-4)
    r = vol.meta["resampled"]
    assert r["from_steps_mm"] == [1.0, 2.0] and r["to_spacing_mm"] == 0.5
    assert vol.meta["sop_instance_uids"] is None  # no resampled slice claims to be a frame
    default = read_dicom_resampled(folder)  # default: the smallest original step
    assert default.geometry.spacing[2] == pytest.approx(1.0) and default.array.shape[0] == 10


def test_the_request_is_one_record_naming_who_asked_and_the_spacings(uneven, tmp_path):
    _, folder = uneven
    vol = read_dicom_resampled(folder, spacing_mm=1.0)
    who = Actor("rad1", "Rita Radiologist", "annotator")
    log = AuditLog(tmp_path / "ct.clinlabel.jsonl", vol.image_ref(), who)
    record_resample(log, vol)
    log.close()
    (rec,) = list(iter_records(tmp_path / "ct.clinlabel.jsonl"))
    assert rec["action"] == "image.resample" and rec["actor"]["id"] == "rad1"
    assert rec["source"]["kind"] == "tool"
    assert rec["data"]["from_steps_mm"] == [1.0, 2.0] and rec["data"]["to_spacing_mm"] == 1.0
    assert rec["data"]["original_slices"] == 7 and rec["data"]["resampled_slices"] == 10


def test_labels_go_back_onto_the_original_slices_and_export_with_their_geometry(uneven, tmp_path):
    ws, folder = uneven
    vol = read_dicom_resampled(folder, spacing_mm=1.0)
    labels = np.zeros(vol.array.shape, np.uint8)
    labels[3:8, 2:5, 3:6] = 1  # resampled slices 3..7 mm along the normal
    blocks = read_dicom_folder(folder)
    back = labels_on_original_slices(labels, vol)
    assert [b.shape for b in back] == [v.array.shape for v in blocks]
    # an original slice is labelled iff its true position (from its file) lies in 3..7 mm, or
    # a labelled resampled slice lies nearer to it than to any other (3 mm: a tie of 2 and 4 mm,
    # given to the lower, 2 mm) — nothing drawn is dropped
    by_uid = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in ws.files}
    first = np.asarray(ws.geometry.origin)
    normal = ws.geometry.direction_matrix()[:, 2]
    for v, lab in zip(blocks, back, strict=True):
        for k, uid in enumerate(v.meta["sop_instance_uids"]):
            depth = (np.asarray(by_uid[uid].ImagePositionPatient, float) - first) @ normal
            assert bool(lab[k].any()) == (2.0 - 1e-6 <= depth <= 7.0 + 1e-6)
            if lab[k].any():
                np.testing.assert_array_equal(lab[k], labels[3, :, :])
    # a block's labels export with the block's own (original) geometry
    out = write_labels(back[0], blocks[0].geometry, tmp_path / "block1.nii.gz")
    img = nib.load(out)
    uid = blocks[0].meta["sop_instance_uids"][2]
    ipp = np.asarray(by_uid[uid].ImagePositionPatient, float)
    np.testing.assert_allclose(nib.affines.apply_affine(img.affine, [0, 0, 2]) * [-1, -1, 1], ipp,
                               atol=1e-4)  # fmt: skip


def test_bad_requests_are_refused_in_one_line(uneven, tmp_path):
    _, folder = uneven
    even = tmp_path / "even"
    write_series(even, phantom_stored((4, 8, 8)))
    for call in (
        lambda: read_dicom_resampled(even),
        lambda: read_dicom_resampled(folder, spacing_mm=-1.0),
        lambda: read_dicom_resampled(folder, spacing_mm=1e-4),
        lambda: labels_on_original_slices(
            np.zeros((2, 8, 10), np.uint8), read_dicom_resampled(folder)
        ),  # fmt: skip
    ):
        with pytest.raises(InputError) as exc:
            call()
        assert "\n" not in str(exc.value)


def test_every_resampled_slice_reaches_an_original_slice_on_the_reported_grid():
    """The trial's repro: originals at 0, 2, 4, 7, 9, 11, 13 mm on a 2 mm grid 0..12 mm. The
    slices at 6 and 10 mm were no original slice's nearest (round half to even); what is drawn on them is carried to
    their nearest original slice (10 mm: a tie of 9 and 11 mm, given to the lower, 9 mm)."""
    depth = [0.0, 2.0, 4.0, 7.0, 9.0, 11.0, 13.0]
    meta = {"resampled": {"to_spacing_mm": 2.0, "original_depth_mm": depth,
                          "blocks": [[1, 3, 7], [4, 7, 7]]}}  # fmt: skip
    vol = Volume(
        np.zeros((7, 4, 4), np.float32),
        Geometry((1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel())),
        meta,
    )
    labels = np.zeros((7, 4, 4), np.uint8)
    labels[5, 1:3, 1:3] = 2  # only the 10 mm slice
    labels[3, 0, 0] = 1  # only the 6 mm slice (nearest original: 7 mm)
    back, carried = map_to_original_slices(labels, vol)
    flat = np.concatenate(back)
    assert np.count_nonzero(flat == 2) == 4 and np.count_nonzero(flat == 1) == 1
    np.testing.assert_array_equal(flat[4], labels[5])  # 9 mm (slice 5) holds the 10 mm label
    assert flat[3, 0, 0] == 1 and np.count_nonzero(flat[3]) == 1  # 7 mm holds the 6 mm one
    # 6 mm is 7 mm's own nearest (a tie of 6 and 8 mm: the lower); 10 mm is no one's nearest
    assert carried["voxels"] == 4 and carried["onto_slices"] == [5]
    assert carried["from_resampled_slices"] == [5] and carried["shadowed_voxels"] == 0


def test_a_nearer_slice_wins_a_voxel_and_the_other_label_is_counted_as_shadowed():
    """Originals at 0 and 4 mm on a 1 mm grid: 1 mm goes to 0 mm and 2 mm (a tie) too; a voxel
    labelled 1 on the 1 mm slice and 2 on the 2 mm slice keeps the nearer 1, and the 2 is
    counted, never silently lost; a voxel only the 2 mm slice labels is carried."""
    meta = {"resampled": {"to_spacing_mm": 1.0, "original_depth_mm": [10.0, 14.0],
                          "blocks": [[1, 2, 2]]}}  # fmt: skip
    geom = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    vol = Volume(np.zeros((5, 2, 2), np.float32), geom, meta)
    labels = np.zeros((5, 2, 2), np.uint8)
    labels[1, 0, 0], labels[2, 0, 0], labels[2, 1, 1] = 1, 2, 2
    (back,), carried = map_to_original_slices(labels, vol)
    assert back[0, 0, 0] == 1 and back[0, 1, 1] == 2 and not back[1].any()
    assert carried == {"voxels": 2, "onto_slices": [1], "from_resampled_slices": [1, 2],
                       "shadowed_voxels": 1}  # fmt: skip
