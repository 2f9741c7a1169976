"""DICOM SEG read as label maps, checked against dcmqi's own inputs (NRRD label maps on the CT
grid and the JSON metadata it wrote the SEGs from); sparse LABELMAP policy: missing frame = 0."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.dicom.seg_read import read_seg


def _on_nrrd_grid(seg, nrrd_path):
    """Resample the SEG's map onto the NRRD's grid by physical position (nearest voxel)."""
    ref = sitk.ReadImage(str(nrrd_path))
    out = np.zeros(sitk.GetArrayFromImage(ref).shape, seg.maps[0].dtype)
    g = seg.geometry
    # SimpleITK's index→physical map of the NRRD, inverted (the oracle's grid, not ours)
    d = np.asarray(ref.GetDirection()).reshape(3, 3) * np.asarray(ref.GetSpacing())
    o = np.asarray(ref.GetOrigin())
    probe = ref.TransformIndexToPhysicalPoint((1, 2, 0))
    np.testing.assert_allclose(probe, o + d @ [1, 2, 0], atol=1e-6)
    for m in seg.maps:
        kji = np.stack(np.nonzero(m), 1)
        assert len(kji)
        world = g.index_to_world(kji)[:, ::-1]  # LPS (x, y, z) of every labelled voxel
        ijk_all = np.linalg.solve(d, (world - o).T).T
        ii = np.round(ijk_all).astype(int)
        assert np.allclose(ijk_all, ii, atol=1e-3), "SEG voxels must fall on the CT grid"
        out[ii[:, 2], ii[:, 1], ii[:, 0]] = m[tuple(kji.T)]
    return out, sitk.GetArrayFromImage(ref)


def test_liver_seg_equals_its_nrrd(shared_data):
    d = shared_data / "dcmqi_ct3slice_seg"
    seg = read_seg(d / "liver.dcm")
    assert [s.label for s in seg.segments] == ["Liver"]
    meta = json.loads((d / "doc_examples" / "seg-example.json").read_text())
    want_rgb = meta["segmentAttributes"][0][0]["recommendedDisplayRGBValue"]
    assert np.max(np.abs(np.subtract(seg.segments[0].color_rgb, want_rgb))) <= 2  # CIELab round
    assert (
        seg.segments[0].type[2]
        == meta["segmentAttributes"][0][0]["SegmentedPropertyTypeCodeSequence"]["CodeMeaning"]
    )
    got, want = _on_nrrd_grid(seg, d / "liver_seg.nrrd")
    np.testing.assert_array_equal(got > 0, want > 0)


def test_partial_overlaps_one_map_per_segment(shared_data):
    d = shared_data / "dcmqi_ct3slice_seg"
    seg = read_seg(d / "partial_overlaps.dcm")
    assert seg.overlapping and len(seg.maps) == 5
    meta = json.loads((d / "doc_examples" / "seg-example_partial_overlaps.json").read_text())
    names = {s["labelID"]: s["SegmentLabel"] for g in meta["segmentAttributes"] for s in g}
    got_names = {s.number: s.label for s in seg.segments}
    assert sorted(got_names.values()) == sorted(names.values())
    # each input NRRD file holds some segments; the SEG map of each segment equals its voxels
    for i, group in enumerate(meta["segmentAttributes"]):
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"partial_overlaps-{i + 1}.nrrd")))
        for s in group:
            number = next(n for n, lab in got_names.items() if lab == s["SegmentLabel"])
            m = seg.maps[[x.number for x in seg.segments].index(number)]
            assert int((m > 0).sum()) == int((ref == s["labelID"]).sum()), s["SegmentLabel"]


@pytest.mark.parametrize("name,ppv", [("noppv", None), ("ppv5", 5)])
def test_sparse_labelmap_missing_frame_is_zero(shared_data, name, ppv):
    d = shared_data / "dcmqi_ct3slice_seg"
    seg = read_seg(d / f"sparse-labelmap-{name}.dcm")
    assert seg.segmentation_type == "LABELMAP"
    want = sitk.GetArrayFromImage(sitk.ReadImage(str(d / f"sparse_labelmap_{name}_seg.nrrd")))
    got = seg.maps[0]
    assert got.shape == want.shape == (3, 38, 24)
    np.testing.assert_array_equal(got[[0, 2]], want[[0, 2]])  # the frames that are there
    assert not got[1].any()  # our policy: a frame not encoded holds no segment
    assert np.all(want[1] == (ppv or 0))  # dcmqi's policy, for the record


def test_not_a_seg(tmp_path):
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"\0" * 200)
    with pytest.raises(InputError, match="not a readable DICOM SEG"):
        read_seg(bad)
