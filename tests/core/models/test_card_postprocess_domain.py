"""Model card post-processing (min component size per class, largest component) applied before
proposals exist, and the input domain a run is checked against (problems named, in mm)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.models.card import card_from_dict
from napari_clinlabel.core.models.run import drafts_from_labels, input_domain_problems

BASE = {
    "name": "m", "version": "1", "task": "segmentation", "patch_size": [8, 8, 8],
    "in_channels": 1, "normalization": {"kind": "none"},
    "classes": [{"index": 0, "name": "background"}, {"index": 1, "label": 1, "name": "liver"},
                {"index": 2, "label": 6, "name": "lesion"}],
}  # fmt: skip


def card(**extra):
    return card_from_dict({**BASE, **extra})


def test_postprocess_drops_small_components_and_keeps_the_largest():
    c = card(postprocess={"min_component_mm3": {"lesion": 8}, "largest_component": ["liver"]})
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[0:5, 0:10, 0:10] = 1  # liver 500 voxels
    labels[7:9, 15:18, 15:18] = 1  # a second, stray "liver"
    labels[0, 15, 15] = 2  # a 1-voxel lesion
    labels[5:7, 15:17, 0:2] = 2  # an 8-voxel lesion
    drafts = drafts_from_labels(labels, np.ones(labels.shape), SimpleNamespace(card=c), 1.0)
    sizes = sorted((d.label, int(np.size(d.indices))) for d in drafts)
    assert sizes == [(1, 500), (6, 8)]
    assert c.to_dict()["postprocess"]["largest_component"] == ["liver"]


def test_max_components_keeps_the_largest_few():
    c = card(postprocess={"max_components": {"lesion": 2}})
    labels = np.zeros((10, 30, 30), np.uint8)
    for i, size in enumerate((2, 4, 3)):  # three separate lesions, 8, 64 and 27 voxels
        labels[0:size, 10 * i : 10 * i + size, 0:size] = 2
    drafts = drafts_from_labels(labels, np.ones(labels.shape), SimpleNamespace(card=c), 1.0)
    assert sorted(int(np.size(d.indices)) for d in drafts) == [27, 64]
    assert c.to_dict()["postprocess"]["max_components"] == {"lesion": 2}


@pytest.mark.parametrize("bad", [
    {"postprocess": {"max_components": {"lesion": 0}}},
    {"postprocess": {"max_components": {"kidney": 1}}},
    {"postprocess": {"min_component_mm3": {"spleen": 3}}},
    {"postprocess": {"largest_component": "liver"}},
    {"postprocess": {"smooth": 1}},
    {"input_domain": {"spacing_mm": [[2, 1]]}},
    {"input_domain": {"contrast": [0, 1]}},
])  # fmt: skip
def test_bad_postprocess_and_domain_name_the_field(bad):
    with pytest.raises(ModelError, match="field 'postprocess|field 'input_domain"):
        card(**bad)


def test_input_domain_names_what_is_off():
    c = card(input_domain={"intensity_p50": [-200, 100], "spacing_mm": [[2, 3], [0.5, 1], [0.5, 1]],
                           "field_of_view_mm": [[60, 200], [100, 200], [100, 200]]})  # fmt: skip
    vol = ct_phantom(shape=(48, 160, 160))  # 2.5 × 0.8 × 0.8 mm: 120 × 128 × 128 mm
    assert input_domain_problems(vol, c) == []
    big = ct_phantom(shape=(8, 256, 256))  # 20 mm thick, 205 mm wide
    problems = input_domain_problems(big, c)
    assert any(p.startswith("field of view along z is 20 mm") for p in problems)
    assert any("field of view along x is 204.8 mm" in p for p in problems)
    assert card().input_domain == {} and input_domain_problems(vol, card()) == []
