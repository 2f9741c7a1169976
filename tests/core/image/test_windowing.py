"""Window presets map HU to grey exactly as DICOM's LINEAR_EXACT VOI function (pydicom's)."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_windowing

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.windowing import PRESETS, preset_limits, window_limits


def _pydicom_grey(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 16
    ds.PixelRepresentation = 1
    ds.WindowCenter = level
    ds.WindowWidth = width
    ds.VOILUTFunction = "LINEAR_EXACT"
    out = apply_windowing(hu.astype(float), ds)
    lo, hi = -(2**15), 2**15 - 1  # pydicom's output range for signed 16-bit
    return (out - lo) / (hi - lo)


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_matches_dicom_linear_exact(name):
    level, width = PRESETS[name]
    lo, hi = preset_limits(name)
    hu = np.linspace(-1200, 2200, 3401)
    ours = np.clip((hu - lo) / (hi - lo), 0, 1)  # what napari does with contrast_limits
    np.testing.assert_allclose(ours, _pydicom_grey(hu, level, width), atol=1e-9)


def test_standard_values():
    # Radiopaedia "Windowing (CT)": brain W80 L40 -> 0..80; lung W1500 L-600 -> -1350..150
    assert preset_limits("brain") == (0.0, 80.0)
    assert preset_limits("lung") == (-1350.0, 150.0)
    assert preset_limits("bone") == (-500.0, 1300.0)
    assert len(PRESETS) == 8


def test_bad_input():
    with pytest.raises(InputError, match="width"):
        window_limits(40, 0)
    with pytest.raises(InputError, match="unknown window preset"):
        preset_limits("heart")
