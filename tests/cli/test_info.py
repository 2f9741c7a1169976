"""``clinlabel info``: geometry exactly as SimpleITK reports it, pixel type, UIDs, no PHI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import SimpleITK as sitk
from support.dicom_series_factory import FAKE_PHI, phantom_stored, write_series  # noqa: E402

from napari_clinlabel.cli import main  # noqa: E402


def _info(capsys, *args: str) -> dict:
    assert main(["info", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_nrrd_matches_simpleitk(tmp_path, capsys):
    img = sitk.GetImageFromArray(phantom_stored((4, 6, 8)))
    img.SetSpacing((0.5, 0.75, 3.0))
    img.SetOrigin((10.0, -20.5, 7.25))
    img.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    path = tmp_path / "v.nrrd"
    sitk.WriteImage(img, str(path))
    ref = sitk.ReadImage(str(path))
    (d,) = _info(capsys, str(path))["volumes"]
    assert d["size"] == list(ref.GetSize())
    assert d["spacing"] == list(ref.GetSpacing())
    assert d["origin"] == list(ref.GetOrigin())
    assert d["direction"] == list(ref.GetDirection())
    assert d["pixel_type"] == ref.GetPixelIDTypeAsString()
    assert len(d["sha256"]) == 64 and d["sha256_of"] == "voxels"


def test_info_dicom_series_matches_simpleitk_and_has_no_phi(tmp_path, capsys):
    ws = write_series(tmp_path, phantom_stored((5, 8, 10)), iop=(0.8, 0.6, 0.0, -0.6, 0.8, 0.0))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    ref = reader.Execute()
    assert main(["info", str(tmp_path), "--json"]) == 0
    out = capsys.readouterr().out
    (d,) = json.loads(out)["volumes"]
    assert d["size"] == list(ref.GetSize())
    np.testing.assert_allclose(d["spacing"], ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(d["origin"], ref.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(d["direction"], ref.GetDirection(), atol=1e-6)
    assert d["pixel_type"] == ref.GetPixelIDTypeAsString()
    assert d["modality"] == "CT" and d["series_uid"] == ws.series_uid and d["n_volumes"] == 1
    for value in FAKE_PHI.values():
        assert value not in out


def test_info_4d_reports_volumes(tmp_path, capsys):
    write_series(tmp_path, phantom_stored((3, 4, 6, 6)), temporal="temporal")
    (d,) = _info(capsys, str(tmp_path))["volumes"]
    assert d["n_volumes"] == 3 and d["size"] == [6, 6, 4]


def test_info_text_output_and_bad_path(tmp_path, capsys):
    path = tmp_path / "v.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.uint8)), str(path))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "spacing" in out and "8-bit unsigned integer" in out
    assert main(["info", str(tmp_path / "nope.nii")]) == 2
    err = capsys.readouterr().err
    assert "nope.nii" in err and "no such file" in err and len(err.strip().splitlines()) == 1


def test_info_console_script(tmp_path):
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16)), str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "napari_clinlabel.cli", "info", str(path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["volumes"][0]["size"] == [4, 3, 2]


def test_info_never_prints_the_series_description(tmp_path, capsys):
    """Series description is free text (PS3.15 removes it); `info` must not print it."""

    import numpy as _np
    from support.dicom_factory import canaries, write_ct_series

    from napari_clinlabel.cli import main as _main
    from napari_clinlabel.core.image.geometry import Geometry as _G

    phi = canaries("INFO")
    geom = _G((0.8, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(_np.eye(3).ravel()))
    write_ct_series(tmp_path / "ct", _np.zeros((3, 8, 8), _np.int16), geom, phi=phi)
    for extra in ([], ["--json"]):
        assert _main(["info", str(tmp_path / "ct"), *extra]) == 0
        out = capsys.readouterr().out
        assert not any(v in out for v in phi.values()), "identifying text printed"
