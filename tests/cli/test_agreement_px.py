"""``clinlabel agreement`` on PNG label maps (no pixel size): px in JSON and table, one-line refusals.

Oracles: Dice from SimpleITK's LabelOverlapMeasuresImageFilter; HD95 / MSD in px from SimpleITK
contours (face connectivity) and brute-force nearest distances (scipy cdist).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy.spatial.distance import cdist
from support.agreement_fixtures import write_map  # noqa: E402

from napari_clinlabel.cli import main
from napari_clinlabel.core.image.geometry import Geometry

SHAPE = (40, 50)


def _ellipse(centre, radii) -> np.ndarray:
    yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0


def _maps() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros(SHAPE, np.uint8)
    b = np.zeros(SHAPE, np.uint8)
    a[_ellipse((18, 20), (10, 12))] = 1
    b[_ellipse((19, 22), (9, 13))] = 1
    a[_ellipse((32, 40), (4, 5))] = 2
    b[_ellipse((33, 41), (4, 4))] = 2
    b[_ellipse((8, 42), (3, 3))] = 3
    return a, b


def _pngs(tmp_path: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    a, b = _maps()
    pa, pb = tmp_path / "reader_a.png", tmp_path / "reader_b.png"
    Image.fromarray(a).save(pa, dpi=(150, 150))  # a print DPI is no pixel size
    Image.fromarray(b).save(pb)
    return pa, pb, a, b


def _contour(m: np.ndarray) -> np.ndarray:
    f = sitk.BinaryContourImageFilter()
    f.SetFullyConnected(False)
    f.SetForegroundValue(1)
    f.SetBackgroundValue(0)
    return np.argwhere(
        sitk.GetArrayFromImage(f.Execute(sitk.GetImageFromArray(m.astype(np.uint8))))
    )


def test_png_maps_json_in_px_matches_oracles(tmp_path, capsys):
    pa, pb, a, b = _pngs(tmp_path)
    assert main(["agreement", str(pa), str(pb), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["labels"] and set(out["labels"]) == {"1", "2", "3"}
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.ReadImage(str(pa)), sitk.ReadImage(str(pb)))
    for v in ("1", "2"):
        m = out["labels"][v]
        assert set(m) == {
            "dice", "hd95_px", "mean_surface_distance_px", "size_difference_px", "voxels_a",
            "voxels_b",
        }  # fmt: skip
        assert m["dice"] == pytest.approx(f.GetDiceCoefficient(int(v)), abs=1e-12)
        d = cdist(_contour(a == int(v)), _contour(b == int(v)))
        d_ab, d_ba = d.min(axis=1), d.min(axis=0)
        hd = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
        assert m["hd95_px"] == pytest.approx(hd, abs=1e-9) and m["hd95_px"] > 0
        assert m["mean_surface_distance_px"] == pytest.approx(
            np.concatenate([d_ab, d_ba]).mean(), abs=1e-9
        )
        na, nb = int((a == int(v)).sum()), int((b == int(v)).sum())
        assert (m["voxels_a"], m["voxels_b"], m["size_difference_px"]) == (na, nb, nb - na)
    three = out["labels"]["3"]
    assert three["hd95_px"] is None and three["voxels_a"] == 0
    assert three["size_difference_px"] == int((b == 3).sum())


def test_png_maps_table_says_px(tmp_path, capsys):
    pa, pb, _, _ = _pngs(tmp_path)
    assert main(["agreement", str(pa), str(pb)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].split() == [
        "label", "dice", "hd95_px", "msd_px", "dsize_px(B-A)", "pixels_a", "pixels_b"
    ]  # fmt: skip
    assert "mm" not in text and "ml" not in text.lower()
    assert lines[-1].startswith("pixel size unknown")


def test_png_against_nifti_subprocess_one_line_error(tmp_path):
    pa, _, a, _ = _pngs(tmp_path)
    unit_mm = Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    nii = write_map(tmp_path / "reader_b.nii.gz", a, unit_mm)
    proc = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "agreement", str(nii), str(pa), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"clinlabel agreement: error: {pa} states no pixel size")
    assert str(nii) in err and "same format" in err


def test_jpeg_map_subprocess_one_line_error(tmp_path):
    pa, _, a, _ = _pngs(tmp_path)
    jpg = tmp_path / "reader_b.jpg"
    Image.fromarray(a).save(jpg)
    proc = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "agreement", str(pa), str(jpg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "JPEG compression changes label values" in err
