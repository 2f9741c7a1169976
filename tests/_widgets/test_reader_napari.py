"""The napari path: viewer.open with the plugin, sample data, and saving labels with the writer.

Oracle: SimpleITK's TransformIndexToPhysicalPoint for every checked index.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.dicom_series_factory import phantom_stored, write_series  # noqa: E402

pytestmark = pytest.mark.gui
PLUGIN = "napari-clinlabel"


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    a, b, c = np.radians([a, b, c])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return rz @ ry @ rx


DIRECTIONS = {
    "plain": np.eye(3),
    "oblique": _rotation(25, 0, 10),
    "rotated": _rotation(90, 170, 33),
}


def _world_matches(layer, img: sitk.Image, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    size = img.GetSize()
    for _ in range(n):
        ijk = [int(rng.integers(0, s)) for s in size]
        expected = img.TransformIndexToPhysicalPoint(ijk)[::-1]
        np.testing.assert_allclose(layer.data_to_world(ijk[::-1]), expected, atol=1e-4)


def test_open_itk_files_place_voxels_in_millimetres(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()  # one viewer for all nine files keeps the test quick
    for direction, rot in DIRECTIONS.items():
        for suffix in (".nii.gz", ".nrrd", ".mha"):
            img = sitk.GetImageFromArray(phantom_stored((6, 9, 11)))
            img.SetSpacing((0.6, 0.8, 2.2))
            img.SetOrigin((-30.0, 12.5, 100.0))
            img.SetDirection(tuple(rot.ravel()))
            path = tmp_path / f"{direction}{suffix}"
            sitk.WriteImage(img, str(path))
            img = sitk.ReadImage(str(path))
            (layer,) = viewer.open(str(path), plugin=PLUGIN)
            np.testing.assert_array_equal(np.asarray(layer.data), sitk.GetArrayFromImage(img))
            _world_matches(layer, img)
            assert layer.metadata["clinlabel"]["sha256"]
    assert len(viewer.layers) == 9


def test_open_dicom_folder_one_layer_per_series(make_napari_viewer, tmp_path):
    write_series(
        tmp_path, phantom_stored((4, 8, 8)), description="Arterial", name_prefix="A", seed=1
    )
    write_series(tmp_path, phantom_stored((5, 8, 8)), description="Venous", name_prefix="V", seed=2)
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path), plugin=PLUGIN)
    assert sorted(layer.name for layer in layers) == ["Arterial", "Venous"]
    venous = next(layer for layer in layers if layer.name == "Venous")
    assert venous.contrast_limits == [-160.0, 240.0]  # the DICOM window 40/400
    reader = sitk.ImageSeriesReader()
    files = sorted(str(p) for p in tmp_path.glob("V*.dcm"))
    reader.SetFileNames(
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(
            str(tmp_path), venous.metadata["clinlabel"]["series_uid"]
        )
    )
    assert len(files) == 5
    _world_matches(venous, reader.Execute())


def test_open_ge_fmri_as_4d(shared_data, make_napari_viewer):  # data first: skips before a viewer
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(shared_data / "ge_nih_fmri_slice_order" / "mr_0006"), plugin=PLUGIN)
    assert layer.data.shape == (10, 15, 64, 64)
    world = layer.data_to_world((3, 14, 63, 0))
    assert world[0] == pytest.approx(3)
    np.testing.assert_allclose(
        world[1:], [-17.6875 + 14 * 5, -143.344 + 63 * 3.75, -118.125], atol=1e-3
    )


def test_bad_file_message_reaches_the_user(make_napari_viewer, tmp_path):
    path = tmp_path / "empty.nii"
    path.write_bytes(b"")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match="empty \\(0 bytes\\)"):
        viewer.open(str(path), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("ct", "ct_oblique", "mammogram", "fundus"):
        viewer.open_sample(PLUGIN, key)
        layer = viewer.layers[-1]
        meta = layer.metadata["clinlabel"]
        assert meta["geometry"] and len(meta["sha256"]) == 64
        assert layer.rgb == (key == "fundus")
    assert len(viewer.layers) == 4


def test_slide_sample_is_lazy_multiscale(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Opening the 4096² slide sample renders no full-resolution pixel (the levels count what
    they render) and writes nothing; zooming into a tile renders about that tile only."""
    from napari_clinlabel.core.image._slide_synth import render_slide_region

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "slide")
    (layer,) = viewer.layers
    levels = list(layer.data)
    assert layer.multiscale and layer.rgb and levels[0].shape == (4096, 4096, 3)
    assert [lv.shape[0] for lv in levels] == [4096, 2048, 1024, 512]
    qtbot.wait(200)  # let napari draw the whole slide
    assert levels[0].rendered_pixels == levels[1].rendered_pixels == 0  # no fine level computed
    assert sum(lv.rendered_pixels for lv in levels) <= 1024**2 + 512**2  # the two coarse ones
    assert not (tmp_path / "napari-clinlabel").exists()  # no slide file written to the cache
    meta = layer.metadata["clinlabel"]
    assert meta["sha256_kind"] == "recipe" and len(meta["sha256"]) == 64
    # zoomed into 256² px at full resolution: napari asks level 0 for about that region only
    from napari_clinlabel._widgets._common import camera_of

    camera = camera_of(viewer)
    camera.center = tuple(layer.data_to_world((2048, 2048)))[-2:]
    camera.zoom = camera.zoom * 16
    qtbot.wait(300)
    assert 0 < levels[0].rendered_pixels < 4096 * 4096 // 8
    # the pixels shown are the generator's (region rendered independently, the oracle)
    got = np.asarray(levels[1][1000:1010, 1200:1216])
    np.testing.assert_array_equal(got, render_slide_region(1000, 1200, 10, 16, (4096, 4096), 0, 2))


def test_labels_saved_with_source_geometry(make_napari_viewer, tmp_path):
    img = sitk.GetImageFromArray(phantom_stored((5, 7, 9)))
    img.SetSpacing((0.9, 0.7, 3.0))
    img.SetOrigin((5.0, -6.0, 70.0))
    img.SetDirection(tuple(DIRECTIONS["oblique"].ravel()))
    src = tmp_path / "src.nrrd"
    sitk.WriteImage(img, str(src))
    viewer = make_napari_viewer()
    (image,) = viewer.open(str(src), plugin=PLUGIN)
    labels_data = np.zeros(image.data.shape, np.uint8)
    labels_data[2, 3:5, 4:8] = 3
    labels = viewer.add_labels(labels_data, affine=image.affine, metadata=dict(image.metadata))
    out = tmp_path / "seg.nii.gz"
    # napari hands a writer the layer's data and attributes; the logged export writers come
    # first in the manifest for these extensions, so call the plain labels writer by hand
    from napari_clinlabel._writer import write_labels_layer

    data, attributes, kind = labels.as_layer_data_tuple()
    assert kind == "labels"
    assert write_labels_layer(str(out), data, attributes) == [str(out)]
    back = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), labels_data)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)
