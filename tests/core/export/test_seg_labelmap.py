"""--seg-type labelmap: highdicom LABELMAP SEG, every frame present, read back voxel for voxel."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from support.dicom_series_factory import phantom_stored, write_series

from napari_clinlabel.core.annotate.provenance import SegmentProvenance
from napari_clinlabel.core.errors import ExportError
from napari_clinlabel.core.export.seg import build_seg, seg_bytes, source_series_datasets
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.schema import load_schema

SCHEMA = load_schema("abdomen-ct")


def test_labelmap_round_trip(tmp_path):
    write_series(tmp_path / "ct", phantom_stored((4, 12, 10)))
    vol = read_volumes(tmp_path / "ct")[0]
    labels = np.zeros(vol.spatial_shape, np.uint8)
    labels[1, 2:5, 3:7] = 1
    labels[2, 6:9, 1:4] = 6  # slices 0 and 3 empty: their frames are still written
    prov = {v: SegmentProvenance("MANUAL", [], {"ann"}) for v in (1, 6)}
    src = source_series_datasets(tmp_path / "ct", None)
    seg = build_seg(labels, vol.geometry, src, SCHEMA, prov, "Ann Reader", seg_type="labelmap")
    out = tmp_path / "seg.dcm"
    out.write_bytes(seg_bytes(seg))
    back = hd.seg.segread(out)
    assert back.SegmentationType == "LABELMAP"
    assert int(back.NumberOfFrames) == 4
    names = {d.SegmentNumber: d.SegmentLabel for d in back.SegmentSequence if d.SegmentNumber}
    assert set(names.values()) == {"liver", "lesion"}
    # highdicom's volume from the SEG's own plane positions: same first voxel, same grid
    hv = back.get_volume(combine_segments=True, relabel=False)
    pix = np.zeros_like(labels)
    for kk in range(hv.array.shape[0]):  # each highdicom slice placed by its physical position
        kji = vol.geometry.world_to_index((hv.affine @ np.array([kk, 0, 0, 1.0]))[:3][::-1])
        assert np.allclose(kji, [round(kji[0]), 0, 0], atol=1e-3)
        pix[int(round(kji[0]))] = hv.array[kk]
    value_of = {n: SCHEMA_VALUE[name] for n, name in names.items()}
    got = np.zeros_like(labels)
    for n, v in value_of.items():
        got[pix == n] = v
    np.testing.assert_array_equal(got, labels)
    with pytest.raises(ExportError, match="binary or labelmap"):
        build_seg(labels, vol.geometry, src, SCHEMA, prov, "Ann", seg_type="fractional")


SCHEMA_VALUE = {lab.name: lab.value for lab in SCHEMA.labels}
