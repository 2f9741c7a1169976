"""volume_io and the npe2 reader/writer without a GUI: voxels, world points, bad input, round trip.

Oracle: SimpleITK (the files are written by SimpleITK; TransformIndexToPhysicalPoint gives the
truth for every index).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import FAKE_PHI, phantom_stored, write_series  # noqa: E402

from napari_clinlabel.core.errors import ExportError, InputError  # noqa: E402
from napari_clinlabel.core.export.labelmap import write_labels
from napari_clinlabel.core.image.io import read_volumes  # noqa: E402


def _rot(az: float, ay: float, ax: float) -> np.ndarray:
    a, b, c = np.radians([az, ay, ax])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


DIRECTIONS = {
    "plain": np.eye(3),
    "oblique": _rot(20, 0, 12),
    "rotated": _rot(90, 180, 0) @ _rot(7, 11, 13),  # flips and a general rotation
}
SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".mha"]


def _make_image(direction: np.ndarray, dtype=np.int16) -> sitk.Image:
    arr = phantom_stored((7, 11, 13)).astype(dtype)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.9, 2.5))
    img.SetOrigin((-101.5, 37.25, -12.0))
    img.SetDirection(tuple(direction.ravel()))
    return img


def _indices(shape_zyx, n=60, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, s, n) for s in shape_zyx], 1)
    return np.vstack([idx, np.zeros(len(shape_zyx), int), np.array(shape_zyx) - 1])


def _sitk_world(img: sitk.Image, idx_zyx: np.ndarray) -> np.ndarray:
    return np.array(
        [img.TransformIndexToPhysicalPoint([int(v) for v in i[::-1]])[::-1] for i in idx_zyx]
    )


@pytest.fixture(
    params=[(d, s) for d in DIRECTIONS for s in SUFFIXES], ids=lambda p: f"{p[0]}{p[1]}"
)
def written(request, tmp_path):
    name, suffix = request.param
    img = _make_image(DIRECTIONS[name])
    path = tmp_path / f"img{suffix}"
    sitk.WriteImage(img, str(path))
    return path, sitk.ReadImage(str(path))  # the file as SimpleITK reads it is the truth


def test_itk_formats_keep_voxels_and_world_points(written):
    path, img = written
    (vol,) = read_volumes(path)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    idx = _indices(vol.array.shape)
    np.testing.assert_allclose(vol.geometry.index_to_world(idx), _sitk_world(img, idx), atol=1e-4)
    assert vol.meta["source_path"] == str(path) and len(vol.sha256) == 64


def test_npe2_read_gives_exact_affine(written):
    npe2 = pytest.importorskip("npe2")
    npe2.PluginManager.instance().discover()  # finds the installed manifest (entry point)
    path, img = written
    layers = npe2.read([str(path)], stack=False, plugin_name="napari-clinlabel")
    (data, kwargs, kind) = layers[0]
    assert kind == "image"
    np.testing.assert_array_equal(np.asarray(data), sitk.GetArrayFromImage(img))
    idx = _indices(np.asarray(data).shape)
    aff = np.asarray(kwargs["affine"])
    world = (aff[:3, :3] @ idx.T).T + aff[:3, 3]
    np.testing.assert_allclose(world, _sitk_world(img, idx), atol=1e-4)
    assert kwargs["metadata"]["clinlabel"]["geometry"]["spacing"] == list(img.GetSpacing())


def test_rgb_png_stays_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (20, 30, 3)).astype(np.uint8)
    path = tmp_path / "photo.png"
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(path))
    (vol,) = read_volumes(path)
    assert vol.rgb and vol.array.shape == (20, 30, 3) and vol.geometry.ndim == 2
    np.testing.assert_array_equal(vol.array, rgb)


@pytest.mark.parametrize("suffix", [".tif", ".png", ".jpg"])
def test_grey_2d_images(tmp_path, suffix):
    grey = (np.arange(24 * 16).reshape(24, 16) % 200).astype(np.uint8)
    path = tmp_path / f"g{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(grey), str(path))
    (vol,) = read_volumes(path)
    assert vol.array.shape == (24, 16) and not vol.rgb and vol.geometry.ndim == 2
    if suffix != ".jpg":
        np.testing.assert_array_equal(vol.array, grey)


def test_4d_nifti_opens_with_volume_axis_first(tmp_path):
    arr = phantom_stored((3, 4, 5, 6))
    img = sitk.JoinSeries([sitk.GetImageFromArray(a) for a in arr])
    path = tmp_path / "t.nii.gz"
    sitk.WriteImage(img, str(path))
    (vol,) = read_volumes(path)
    assert vol.array.shape == (3, 4, 5, 6) and vol.leading_axes == 1


# ------------------------------------------------------------------ bad input
def _assert_message(exc, path: Path, *hints: str) -> None:
    text = str(exc.value)
    assert str(path) in text or path.name in text, text
    for h in hints:
        assert h in text, text


def test_zero_byte_file(tmp_path):
    for name in ("empty.nii", "empty.dcm"):
        path = tmp_path / name
        path.write_bytes(b"")
        with pytest.raises(InputError) as exc:
            read_volumes(path)
        _assert_message(exc, path, "empty (0 bytes)", "Replace")


def test_zero_byte_file_in_dicom_folder(tmp_path):
    write_series(tmp_path, phantom_stored((3, 8, 8)))
    (tmp_path / "IMG99999.dcm").write_bytes(b"")
    with pytest.raises(InputError) as exc:
        read_volumes(tmp_path)
    _assert_message(exc, tmp_path / "IMG99999.dcm", "empty")


def test_truncated_dicom(tmp_path):
    from pydicom.data import get_testdata_file

    path = tmp_path / "MR_truncated.dcm"
    shutil.copy(get_testdata_file("MR_truncated.dcm"), path)
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "truncated", "Re-export")


def test_corrupt_dicom_header(tmp_path):
    from pydicom.data import get_testdata_file

    path = tmp_path / "broken.dcm"
    data = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    path.write_bytes(data[:400])  # ends inside the header
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "Re-export")


def test_corrupt_nifti(tmp_path):
    path = tmp_path / "noise.nii"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 500).astype(np.uint8).tobytes())
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "cannot read", "Re-export")


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(InputError) as exc:
        read_volumes(tmp_path)
    _assert_message(exc, tmp_path, "no DICOM images")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "scan.xyz"
    path.write_bytes(b"12345")
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "unsupported file type '.xyz'", ".nii.gz")


def test_mixed_series_as_one_file_list(tmp_path):
    a = write_series(tmp_path / "a", phantom_stored((3, 8, 8)), description="Arterial", seed=1)
    b = write_series(tmp_path / "b", phantom_stored((3, 8, 8)), description="Venous", seed=2)
    with pytest.raises(InputError) as exc:
        read_volumes(a.files[:2] + b.files[:1])
    _assert_message(exc, tmp_path / "a", "belong to 2 series", '"Arterial"', "open the folder")


def test_nan_in_float_image_is_refused(tmp_path):
    arr = np.ones((4, 5, 6), np.float32)
    arr[1, 2, 3] = np.nan
    arr[0, 0, 0] = np.inf
    path = tmp_path / "map.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "2 voxels are NaN or infinite", "Replace them")


def test_nonexistent_path(tmp_path):
    path = tmp_path / "missing.nrrd"
    with pytest.raises(InputError) as exc:
        read_volumes(path)
    _assert_message(exc, path, "no such file")


# ------------------------------------------------------------------ writing labels
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_labels_round_trip_keeps_array_and_geometry(tmp_path, suffix):
    img = _make_image(DIRECTIONS["rotated"])
    src = tmp_path / "src.nrrd"
    sitk.WriteImage(img, str(src))
    (vol,) = read_volumes(src)
    labels = (vol.array % 5).astype(np.uint8)
    out = write_labels(labels, vol.geometry, tmp_path / f"labels{suffix}")
    (back,) = read_volumes(out)
    np.testing.assert_array_equal(back.array, labels)
    assert back.array.dtype.kind in "iu"
    assert back.geometry.close_to(vol.geometry, atol_mm=1e-4)
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]  # no temp file left


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_labels_from_dicom_carry_no_phi(tmp_path, suffix):
    write_series(tmp_path / "dcm", phantom_stored((3, 8, 8)))
    (vol,) = read_volumes(tmp_path / "dcm")
    out = write_labels(np.zeros(vol.array.shape, np.uint8), vol.geometry, tmp_path / f"l{suffix}")
    blob = out.read_bytes()
    for value in FAKE_PHI.values():
        assert value.encode() not in blob


def test_failed_label_write_leaves_saved_file_unchanged(tmp_path):
    img = _make_image(np.eye(3))
    (vol,) = read_volumes(_write(img, tmp_path / "src.mha"))
    target = write_labels(np.ones(vol.array.shape, np.uint8), vol.geometry, tmp_path / "l.nii.gz")
    before = target.read_bytes()
    with pytest.raises(ExportError, match="integers"):
        write_labels(np.zeros(vol.array.shape, np.float32), vol.geometry, target)
    with pytest.raises(ExportError, match="4 axes"):
        write_labels(np.zeros((2, *vol.array.shape), np.uint8), vol.geometry, target)
    with pytest.raises(ExportError, match="choose one of these"):
        write_labels(np.zeros(vol.array.shape, np.uint8), vol.geometry, tmp_path / "l.png")
    assert target.read_bytes() == before


def _write(img: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(img, str(path))
    return path


def test_npe2_writer_uses_source_geometry(tmp_path):
    from napari_clinlabel._writer import write_labels_layer
    from napari_clinlabel.glue.layers import clinlabel_metadata

    img = _make_image(DIRECTIONS["oblique"])
    (vol,) = read_volumes(_write(img, tmp_path / "src.nii.gz"))
    labels = (vol.array > vol.array.mean()).astype(np.uint8)
    attrs = {"name": "Labels", "metadata": clinlabel_metadata(vol)}
    (out,) = write_labels_layer(str(tmp_path / "seg.nrrd"), labels, attrs)
    back = sitk.ReadImage(out)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    with pytest.raises(ExportError, match="carries no source geometry"):
        write_labels_layer(str(tmp_path / "x.nrrd"), labels, {"name": "L", "metadata": {}})
    with pytest.raises(ExportError, match="image's own grid"):
        write_labels_layer(str(tmp_path / "y.nrrd"), labels[:-1], attrs)
    assert not (tmp_path / "x.nrrd").exists() and not (tmp_path / "y.nrrd").exists()


@pytest.mark.parametrize("suffix", [".mhd", ".nhdr"])
def test_detached_header_formats(tmp_path, suffix):
    img = _make_image(DIRECTIONS["oblique"])
    path = _write(img, tmp_path / f"v{suffix}")
    (vol,) = read_volumes(path)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
    idx = _indices(vol.array.shape)
    np.testing.assert_allclose(
        vol.geometry.index_to_world(idx), _sitk_world(sitk.ReadImage(str(path)), idx), atol=1e-4
    )
