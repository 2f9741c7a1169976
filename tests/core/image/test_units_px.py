"""Unknown pixel size: agreement, adjudication and the dataset report say px, never mm or mL.

HD95 / MSD in px are checked against an independent oracle: surfaces from SimpleITK's
BinaryContourImageFilter (face connectivity) and brute-force pairwise distances (scipy cdist).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy.spatial.distance import cdist
from support.agreement_fixtures import write_map, write_reader_log

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import PixelGeometry, spacing_known
from napari_clinlabel.core.quality.adjudication import load_reads, pairwise_agreement
from napari_clinlabel.core.quality.agreement import (
    agreement,
    detect_kind,
    log_spacing_known,
    read_label_map,
)
from napari_clinlabel.core.quality.gold_panel import score_reader
from napari_clinlabel.core.quality.metrics import (
    MM_KEYS,
    PX_KEYS,
    distance_units,
    label_map_agreement,
)
from napari_clinlabel.core.quality.report import collect_dataset
from napari_clinlabel.core.quality.report_html import render_html

SHAPE = (48, 56)
UNIT2 = Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))


def ellipse(centre: tuple[int, int], radii: tuple[int, int]) -> np.ndarray:
    yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1.0


def maps_2d() -> tuple[np.ndarray, np.ndarray]:
    """Two readers' 2D label maps: labels 1 and 2 in both, label 3 only in B (off the border)."""
    a = np.zeros(SHAPE, np.uint8)
    b = np.zeros(SHAPE, np.uint8)
    a[ellipse((20, 24), (12, 14))] = 1
    b[ellipse((22, 23), (11, 16))] = 1
    a[ellipse((38, 10), (4, 5))] = 2
    b[ellipse((39, 12), (5, 4))] = 2
    b[ellipse((40, 44), (3, 3))] = 3
    return a, b


def _oracle(ma: np.ndarray, mb: np.ndarray) -> tuple[float, float]:
    """(HD95, MSD) on the unit grid: ITK contours, brute-force nearest distances."""

    def contour(m: np.ndarray) -> np.ndarray:
        f = sitk.BinaryContourImageFilter()
        f.SetFullyConnected(False)
        f.SetForegroundValue(1)
        f.SetBackgroundValue(0)
        img = f.Execute(sitk.GetImageFromArray(m.astype(np.uint8)))
        return np.argwhere(sitk.GetArrayFromImage(img) > 0).astype(float)

    pa, pb = contour(ma), contour(mb)
    d = cdist(pa, pb)
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    hd = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    return float(hd), float(np.concatenate([d_ab, d_ba]).mean())


def _png(path: Path, arr: np.ndarray, dpi: int | None = 300) -> Path:
    img = Image.fromarray(arr)
    img.save(path, dpi=(dpi, dpi)) if dpi else img.save(path)
    return path


def test_pixel_geometry_gives_px_keys_that_match_the_oracle():
    a, b = maps_2d()
    res = label_map_agreement(a, b, PixelGeometry.identity(2))
    assert set(res) == {"1", "2", "3"}
    for v in ("1", "2"):
        m = res[v]
        assert set(m) == {"dice", *PX_KEYS, "voxels_a", "voxels_b"}
        assert not set(m) & set(MM_KEYS)
        assert distance_units(m) == "px"
        ma, mb = a == int(v), b == int(v)
        hd, msd = _oracle(ma, mb)
        assert m["hd95_px"] == pytest.approx(hd, abs=1e-9)
        assert m["mean_surface_distance_px"] == pytest.approx(msd, abs=1e-9)
        assert m["size_difference_px"] == int(mb.sum()) - int(ma.sum())
        assert isinstance(m["size_difference_px"], int)
    assert res["3"]["hd95_px"] == math.inf and res["3"]["size_difference_px"] == int((b == 3).sum())


def test_pixels_ignore_a_stray_spacing_on_the_pixel_geometry():
    a, b = maps_2d()
    odd = PixelGeometry((0.3, 0.3), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))  # never physical
    assert label_map_agreement(a, b, odd) == label_map_agreement(a, b, PixelGeometry.identity(2))


def test_known_spacing_keeps_the_mm_contract():
    a, b = maps_2d()
    res = label_map_agreement(a, b, UNIT2)
    for m in res.values():
        assert set(m) == {"dice", *MM_KEYS, "voxels_a", "voxels_b"}
        assert distance_units(m) == "mm"
    px = label_map_agreement(a, b, PixelGeometry.identity(2))
    for v in res:  # the same numbers on a 1 mm grid, under other names
        assert px[v]["hd95_px"] == res[v]["hd95_mm"]
        assert px[v]["size_difference_px"] * 1e-3 == pytest.approx(res[v]["volume_difference_ml"])


def test_png_label_map_reads_as_pixels_whatever_its_dpi(tmp_path):
    a, _ = maps_2d()
    p = _png(tmp_path / "a.png", a, dpi=72)
    arr, geom = read_label_map(p)
    np.testing.assert_array_equal(arr, a)
    assert not spacing_known(geom) and geom.spacing == (1.0, 1.0)
    assert detect_kind(p) == "label_map"


def test_tagless_tiff_label_map_reads_as_pixels(tmp_path):
    import tifffile

    a, b = maps_2d()
    tifffile.imwrite(tmp_path / "a.tif", a)
    tifffile.imwrite(tmp_path / "b.tif", b)
    _, geom = read_label_map(tmp_path / "a.tif")
    assert not spacing_known(geom)
    res = agreement(tmp_path / "a.tif", tmp_path / "b.tif")
    assert res["labels"] == label_map_agreement(a, b, PixelGeometry.identity(2))


def test_png_against_nifti_is_refused_naming_the_png(tmp_path):
    a, b = maps_2d()
    pa = write_map(tmp_path / "a.nii.gz", a, UNIT2)
    pb = _png(tmp_path / "b.png", b)
    for x, y in ((pa, pb), (pb, pa)):
        with pytest.raises(InputError) as ei:
            agreement(x, y)
        msg = str(ei.value)
        assert msg.startswith(f"{pb} states no pixel size") and str(pa) in msg
        assert "same format" in msg


def test_jpeg_label_map_is_refused(tmp_path):
    with pytest.raises(InputError, match="JPEG compression changes label values"):
        detect_kind(tmp_path / "a.jpg")


def test_gold_panel_on_png_maps(tmp_path):
    a, b = maps_2d()
    (tmp_path / "gold").mkdir()
    (tmp_path / "reader").mkdir()
    _png(tmp_path / "gold" / "case1.png", a)
    _png(tmp_path / "reader" / "case1.png", b)
    res = score_reader(tmp_path / "gold", tmp_path / "reader")
    case = res.segmentation["cases"]["case1"]
    assert case == label_map_agreement(a, b, PixelGeometry.identity(2))


# -- logs ---------------------------------------------------------------------------------------


def _png_logs(
    tmp_path: Path, name: str = "fundus.png"
) -> tuple[list[Path], np.ndarray, np.ndarray]:
    a, b = maps_2d()
    logs = []
    for reader, labels in (("alice", a), ("bob", b)):
        (tmp_path / reader).mkdir(parents=True, exist_ok=True)
        logs.append(
            write_reader_log(
                tmp_path / reader / f"{name}.clinlabel.jsonl",
                labels,
                reader,
                image_sha="cd" * 32,
                geom=UNIT2,
            )  # fmt: skip
        )
    return logs, a, b


def test_log_spacing_known_from_the_image_name(tmp_path):
    logs, _, _ = _png_logs(tmp_path)
    assert log_spacing_known(logs[0]) is False
    ct = write_reader_log(tmp_path / "ct.nii.gz.clinlabel.jsonl", maps_2d()[0], "carol")
    assert log_spacing_known(ct) is True
    tif, _, _ = _png_logs(tmp_path / "t", "slide.tif")
    assert log_spacing_known(tif[0], geometry=UNIT2) is False  # not beside: a unit grid
    assert log_spacing_known(tif[0], geometry=Geometry((0.01, 0.01), (0, 0), (1, 0, 0, 1)))


def test_logs_agreement_of_png_image_is_in_px(tmp_path):
    logs, a, b = _png_logs(tmp_path)
    res = agreement(*logs)
    assert res == {"labels": label_map_agreement(a, b, PixelGeometry.identity(2))}
    assert all(distance_units(m) == "px" for m in res["labels"].values())


def test_adjudication_reads_of_png_image_are_in_px(tmp_path):
    logs, a, b = _png_logs(tmp_path)
    reads = load_reads(logs, image_sha="cd" * 32)
    assert all(not spacing_known(r.geometry) for r in reads)
    pair = pairwise_agreement(reads)["alice vs bob"]
    assert pair == label_map_agreement(a, b, PixelGeometry.identity(2))
    assert "hd95_mm" not in pair["1"] and pair["1"]["hd95_px"] > 0


def test_adjudication_refuses_reads_mixing_pixels_and_mm(tmp_path):
    a, b = maps_2d()
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob").mkdir()
    la = write_reader_log(
        tmp_path / "alice" / "img.png.clinlabel.jsonl", a, "alice", image_sha="cd" * 32, geom=UNIT2
    )
    lb = write_reader_log(
        tmp_path / "bob" / "img.nii.gz.clinlabel.jsonl", b, "bob", image_sha="cd" * 32, geom=UNIT2
    )
    with pytest.raises(InputError, match=r"img\.png\.clinlabel\.jsonl: logged the image without"):
        load_reads([la, lb])


def test_report_on_png_and_ct_images_keeps_units_apart(tmp_path):
    root = tmp_path / "ds"
    _png_logs(root / "png")
    a, b = maps_2d()
    for reader, labels in (("alice", a), ("bob", b)):
        (root / "ct" / reader).mkdir(parents=True)
        geom = Geometry((0.5, 0.5), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
        write_reader_log(
            root / "ct" / reader / "ct.nii.gz.clinlabel.jsonl", labels, reader, geom=geom
        )
    rep = collect_dataset(root)
    px = [r for r in rep.seg_pairs if r["image"] == ("cd" * 32)[:12]]
    mm = [r for r in rep.seg_pairs if r["image"] == ("ab" * 32)[:12]]
    assert len(px) == len(mm) == 3
    assert all("hd95_px" in r and "hd95_mm" not in r for r in px)
    assert all("hd95_mm" in r and "hd95_px" not in r for r in mm)
    # a 0.5 mm grid: the same maps measure half as many mm as pixels
    by_label = sorted(px, key=lambda r: r["label"]), sorted(mm, key=lambda r: r["label"])
    for rp, rm in zip(*by_label, strict=True):
        if math.isfinite(rp["hd95_px"]):
            assert rm["hd95_mm"] == pytest.approx(rp["hd95_px"] * 0.5)
    html = render_html(rep)
    assert "Every comparison on images that state no pixel size" in html
    assert "HD95 px" in html and "Δ pixels (B−A)" in html and "median HD95 (px)" in html
    assert "HD95 mm" in html and "median HD95 (mm)" in html
    # the px table holds the px numbers, the mm table only the CT's
    px_part = html.split("Every comparison on images that state no pixel size")[1]
    assert f"{px[0]['hd95_px']:.3f}" in px_part


def test_report_of_png_images_only_has_no_mm_table(tmp_path):
    _png_logs(tmp_path)
    html = render_html(collect_dataset(tmp_path))
    assert "HD95 mm" not in html and "ΔV mL" not in html and "median HD95 (mm)" not in html
    assert "HD95 px" in html
