"""A DICOM SEG file opens in napari as editable labels with the SEG's names and colours
(dcmqi's liver SEG and its JSON metadata as the oracle), not as a grey image."""

from __future__ import annotations

import json

import numpy as np


def test_dcmqi_seg_opens_as_labels(shared_data, make_napari_viewer):
    d = shared_data / "dcmqi_ct3slice_seg"
    viewer = make_napari_viewer()
    layers = viewer.open(str(d / "liver.dcm"), plugin="napari-clinlabel")
    assert len(layers) == 1
    lab = layers[0]
    assert type(lab).__name__ == "Labels"
    meta = json.loads((d / "doc_examples" / "seg-example.json").read_text())
    want = meta["segmentAttributes"][0][0]
    assert list(lab.features["label"]) == ["background", want["SegmentLabel"]]
    rgb = np.asarray(lab.colormap.map(np.array([1])))[0][:3] * 255
    assert np.max(np.abs(rgb - want["recommendedDisplayRGBValue"])) <= 2
    assert (
        lab.metadata["clinlabel_seg"]["segments"][0]["type"][2]
        == (want["SegmentedPropertyTypeCodeSequence"]["CodeMeaning"])
    )
    # editable: a paint stroke changes the data (plain in-memory uint8 array)
    assert isinstance(lab.data, np.ndarray) and lab.editable
    lab.paint((0, 5, 5), 1)
    assert lab.data[0, 5, 5] == 1
