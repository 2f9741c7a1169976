"""``image.labels(name)`` for a name no record ever gave: one clear error, never an all-zero
array that looks like an empty read; the message never names another reader to an annotator.

Oracle: numpy masks for what each reader painted.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.trusted_roster import write_roster

from napari_clinlabel import api
from napari_clinlabel.core.errors import ClinlabelError, InputError

SHAPE = (3, 8, 9)
ANA = api.Actor("ana", "Ana Ruiz", "annotator")
BEA = api.Actor("bea", "Bea Lind", "annotator")
CAROL = api.Actor("carol", "Carol Wu", "adjudicator")


@pytest.fixture
def painted(tmp_path):
    write_roster(tmp_path, {"ana": ["annotator"], "bea": ["annotator"], "carol": ["adjudicator"]})
    img = sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))
    path = tmp_path / "scan.nii.gz"
    sitk.WriteImage(img, str(path))
    a = np.zeros(SHAPE, bool)
    a[1, 2:5, 2:6] = True
    b = np.zeros(SHAPE, bool)
    b[0:2, 3:7, 4:8] = True
    with api.open_image(path, ANA) as image:
        image.paint(a, 1)
    with api.open_image(path, BEA) as image:
        image.paint(b, 2)
    return path, a, b


@pytest.mark.parametrize("name", ["segmentation (nobody)", "typo"])
def test_unknown_array_name_is_refused_for_an_annotator_without_naming_other_readers(painted, name):
    path, a, _ = painted
    with api.open_image(path, BEA) as image:
        with pytest.raises(InputError) as err:
            image.labels(name)
        msg = str(err.value)
        assert isinstance(err.value, ClinlabelError)
        assert f"no labels array named {name!r}" in msg
        assert "segmentation (bea)" in msg  # her own array is named
        assert "ana" not in msg.replace("scan", "")  # blinding: ana's read is not revealed
        assert "'segmentation'" not in msg  # ana's array (the first one) is not listed to bea
        # her own array reads as painted (oracle: the mask she painted with label 2)
        np.testing.assert_array_equal(image.labels() == 2, painted[2])


def test_unknown_array_name_lists_all_arrays_to_an_adjudicator(painted):
    path, a, b = painted
    with api.open_image(path, CAROL) as image:
        with pytest.raises(InputError) as err:
            image.labels("typo")
        assert "'segmentation'" in str(err.value) and "'segmentation (bea)'" in str(err.value)
        np.testing.assert_array_equal(image.labels("segmentation") == 1, a)
        np.testing.assert_array_equal(image.labels("segmentation (bea)") == 2, b)
