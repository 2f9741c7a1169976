"""Orientation letters against SimpleITK's DICOM orientation codes and DICOM's LPS convention."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.orientation import direction_letters, edge_letters


@pytest.mark.parametrize("code", ["LPS", "RAS", "RAI", "LIP", "PSL", "SRA", "ASL", "IRP"])
def test_axis_letters_match_simpleitk(code):
    # SimpleITK names each index axis by the letter its + direction points to
    direction = sitk.DICOMOrientImageFilter.GetDirectionCosinesFromOrientation(code)
    d = np.asarray(direction).reshape(3, 3)
    ours = "".join(direction_letters(d[:, i]) for i in range(3))
    assert ours == sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction)
    assert ours == code


def test_every_permutation_and_flip_matches_simpleitk():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            d = np.zeros((3, 3))
            for col, (row, s) in enumerate(zip(perm, signs, strict=True)):
                d[row, col] = s
            flat = tuple(float(v) for v in d.ravel())
            expect = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(flat)
            assert "".join(direction_letters(d[:, i]) for i in range(3)) == expect


def test_standard_axial_ct_edges():
    # a standard axial CT read from DICOM: identity direction (SimpleITK's default "LPS");
    # radiological display: patient's right on the screen's left, anterior at the top
    img = sitk.Image(8, 8, 4, sitk.sitkInt16)
    assert (
        sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(img.GetDirection()) == "LPS"
    )
    geom = Geometry.from_itk(img)
    for g in (None, geom):  # affine carries the direction, or the world is the index grid
        assert edge_letters((1, 2), g) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
        # coronal (z, x displayed): head at the top, patient's right on the left
        assert edge_letters((0, 2), g) == {"left": "R", "right": "L", "top": "I", "bottom": "S"}
        # sagittal (z, y): anterior on the left
        assert edge_letters((0, 1), g)["left"] == "A"


def test_flipped_grid_world_is_index():
    # an image stored right-to-left and head-first (SimpleITK "RPI") shown on its index grid
    direction = sitk.DICOMOrientImageFilter.GetDirectionCosinesFromOrientation("RPI")
    geom = Geometry((1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(direction))
    assert edge_letters((1, 2), geom) == {"left": "L", "right": "R", "top": "A", "bottom": "P"}


def test_oblique_and_degenerate():
    assert direction_letters((0.9, 0.4, 0.1)) == "LP"
    assert direction_letters((-0.1, -0.2, -0.97)) == "I"
    assert direction_letters((0, 0, 0)) == ""
