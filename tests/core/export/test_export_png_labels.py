"""PNG label maps for images that state no pixel size; NIfTI/NRRD/MHA refused for them.

A PNG label map is grayscale (8 bits, 16 when a value needs it), holds the label values and no
``pHYs`` chunk. Oracles: scikit-image and SimpleITK read the file back voxel for voxel; the chunk
list comes from the raw bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from skimage import io as skio
from support.dicom_factory import write_secondary_capture

from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.label_edits import record_label_change, record_labels_create
from napari_clinlabel.core.errors import ExportError, PendingProposalsError
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.export.labelmap import render_png, write_labels
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.image.volume import PixelGeometry
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.proposals.lifecycle import ProposalDraft, add_proposals

ANN = Actor("ann", "Ann Reader", "annotator")
MODEL = {"name": "m", "version": "1", "sha256": "e" * 64}
SHAPE = (40, 50)
PIXEL_GRID = PixelGeometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
NO_SIZE = (
    "the image states no pixel size (PNG/JPEG/TIFF without resolution tags); a NIfTI/NRRD/MHA "
    "file would declare 1 mm per pixel. Save the labels as PNG"
)


def png_chunks(path: Path) -> list[bytes]:
    """Chunk types of a PNG file, read from its raw bytes (CRCs checked)."""
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(raw):
        (n,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, data = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", raw[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        kinds.append(kind)
        pos += 12 + n
    return kinds


def paint(log, labels, name, value, region):
    after = labels.copy()
    after[region] = value
    idx = np.flatnonzero(labels.reshape(-1) != after.reshape(-1))
    old, new = labels.reshape(-1)[idx], after.reshape(-1)[idx]
    labels[...] = after
    record_label_change(log, labels, name, idx, old, new)


def png_image(tmp_path, name="img.png", readers=("labels",)):
    """A grayscale PNG image, its log and each reader's painted label array."""
    path = tmp_path / name
    pixels = np.random.default_rng(0).integers(0, 255, SHAPE).astype(np.uint8)
    skio.imsave(path, pixels, check_contrast=False)
    vol = read_volumes(path)[0]
    assert vol.spacing_known is False
    log = AuditLog.for_image(path, vol.image_ref(), ANN)
    out = {}
    for k, reader in enumerate(readers):
        labels = np.zeros(SHAPE, np.uint8)
        record_labels_create(log, reader, SHAPE, labels.dtype)
        paint(log, labels, reader, 1, np.s_[5 + k : 20, 8 : 30 - k])
        paint(log, labels, reader, 4, np.s_[25:35, 30 + k : 45])
        out[reader] = labels
    return path, log, out


def log_bytes(img_path) -> bytes:
    return Path(str(img_path) + ".clinlabel.jsonl").read_bytes()


def test_png_export_round_trip_record_and_side_file(tmp_path):
    img, log, maps = png_image(tmp_path)
    labels = maps["labels"]
    head = log.head()
    res = export(img, "png", tmp_path / "seg", actor=ANN)  # suffix added
    out, side_path = tmp_path / "seg.png", tmp_path / "seg.png.json"  # side file named per output
    assert [o.path for o in res.outputs] == [out, side_path]
    back = skio.imread(out)
    assert back.dtype == np.uint8 and back.shape == SHAPE
    np.testing.assert_array_equal(back, labels)
    itk = sitk.ReadImage(str(out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), labels)
    assert itk.GetNumberOfComponentsPerPixel() == 1
    assert png_chunks(out) == [b"IHDR", b"IDAT", b"IEND"]  # no pHYs, no time, no text
    side = json.loads(side_path.read_text())
    assert side["spacing_known"] is False and side["log_head"] == head.to_dict()
    assert [(e["value"], e["voxels"], e["volume_ml"]) for e in side["labels"]] == [
        (1, int((labels == 1).sum()), None),
        (4, int((labels == 4).sum()), None),
    ]
    [rec] = [r for r in iter_records(log.path) if r["action"] == "export"]
    assert rec["seq"] == head.seq + 1 and rec["actor"]["id"] == "ann"
    assert rec["data"]["format"] == "png" and rec["data"]["head"] == head.to_dict()
    assert rec["data"]["labels"] == "labels"
    for o, f in zip(rec["data"]["outputs"], res.outputs, strict=True):
        data = f.path.read_bytes()
        assert o == {"name": f.path.name, "sha256": hashlib.sha256(data).hexdigest(),
                     "bytes": len(data)}  # fmt: skip


def test_png_uses_16_bits_when_a_value_needs_it(tmp_path):
    labels = np.zeros(SHAPE, np.uint16)
    labels[3:9, 4:40] = 300
    labels[20:30, 10:12] = 65535
    labels[0, 0] = 7
    out = write_labels(labels, PIXEL_GRID, tmp_path / "l.png")
    back = skio.imread(out)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), labels)
    assert b"pHYs" not in png_chunks(out)
    assert render_png(labels[None]) == out.read_bytes()  # one slice of a volume is the same 2D map
    with pytest.raises(ExportError, match="65536"):
        render_png(np.full((2, 2), 70000, np.uint32))


@pytest.mark.parametrize("fmt,name", [("nifti", "o.nii.gz"), ("nrrd", "o.nrrd"), ("mha", "o.mha")])
def test_physical_formats_refused_for_png_image(tmp_path, fmt, name):
    img, log, _ = png_image(tmp_path)
    before = log_bytes(img)
    files = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError) as exc:
        export(img, fmt, tmp_path / name, actor=ANN)
    msg = str(exc.value)
    assert msg == f"{tmp_path / name}: {NO_SIZE} (o.png) instead."
    assert "\n" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # nothing written
    assert log_bytes(img) == before  # log unchanged


def test_plain_write_labels_refuses_nifti_on_a_pixel_grid(tmp_path):
    labels = np.ones(SHAPE, np.uint8)
    for name in ("l.nii.gz", "l.nii", "l.nrrd", "l.mha"):
        with pytest.raises(ExportError, match="would declare 1 mm per pixel"):
            write_labels(labels, PIXEL_GRID, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def _ct(tmp_path):
    path = tmp_path / "ct.nii.gz"
    img = sitk.GetImageFromArray(np.zeros((4, 12, 14), np.int16))
    img.SetSpacing((0.7, 0.7, 2.5))
    sitk.WriteImage(img, str(path))
    vol = read_volumes(path)[0]
    log = AuditLog.for_image(path, vol.image_ref(), ANN)
    labels = np.zeros((4, 12, 14), np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    paint(log, labels, "labels", 2, np.s_[1:3, 2:8, 3:9])
    return path, log, labels


def test_png_refused_for_a_3d_volume(tmp_path):
    img, log, labels = _ct(tmp_path)
    before = log_bytes(img)
    files = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ExportError) as exc:
        export(img, "png", tmp_path / "seg.png", actor=ANN)
    msg = str(exc.value)
    assert msg.startswith(f"{tmp_path / 'seg.png'}: a PNG holds one 2D image")
    assert "4 slices" in msg and "seg.nii.gz" in msg and "NIfTI" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == files
    assert log_bytes(img) == before
    with pytest.raises(ExportError, match="4 slices"):  # the plain writer says the same
        write_labels(labels, read_volumes(img)[0].geometry, tmp_path / "seg.png")
    # the volume's NIfTI export is untouched
    res = export(img, "nifti", tmp_path / "seg.nii.gz", actor=ANN)
    side = json.loads(res.outputs[1].path.read_text())
    assert side["spacing_known"] is True and side["labels"][0]["volume_ml"] > 0


def test_png_pending_gate_and_exclude_pending(tmp_path):
    img, log, maps = png_image(tmp_path)
    add_proposals(log, [ProposalDraft("segment", 2, 0.8, np.arange(40, 50), SHAPE)], MODEL)
    with pytest.raises(PendingProposalsError):
        export(img, "png", tmp_path / "o.png", actor=ANN)
    assert not (tmp_path / "o.png").exists()
    res = export(img, "png", tmp_path / "o.png", actor=ANN, exclude_pending=True)
    np.testing.assert_array_equal(skio.imread(res.outputs[0].path), maps["labels"])
    assert res.record["data"]["pending_left_out"] == 1


def test_dicom_without_pixel_spacing_refuses_seg_and_nifti_writes_png(tmp_path):
    """A one-frame DICOM with no pixel size (a scanned film): highdicom would copy PixelSpacing
    from the source into the SEG and there is none, so the SEG is refused up front (as is NIfTI)
    with the reason; PNG is written."""
    (tmp_path / "sc").mkdir()
    img = write_secondary_capture(tmp_path / "sc" / "sc.dcm")
    vol = read_volumes(img)[0]
    assert vol.spacing_known is False
    log = AuditLog.for_image(img, vol.image_ref(), ANN)
    labels = np.zeros(vol.spatial_shape, np.uint8)
    record_labels_create(log, "labels", labels.shape, labels.dtype)
    paint(log, labels, "labels", 1, np.s_[..., 2:9, 3:12])
    before = log_bytes(img)
    with pytest.raises(ExportError, match=r"o\.dcm: the DICOM image states no pixel spacing"):
        export(img, "dicom-seg", tmp_path / "o.dcm", actor=ANN, schema="abdomen-ct")
    with pytest.raises(ExportError, match="would declare 1 mm per pixel"):
        export(img, "nifti", tmp_path / "o.nii.gz", actor=ANN)
    assert log_bytes(img) == before and not list(tmp_path.glob("o.*"))
    res = export(img, "png", tmp_path / "o.png", actor=ANN)
    np.testing.assert_array_equal(skio.imread(res.outputs[0].path), labels.reshape(20, 30))


# ------------------------------------------------------------------ CLI
def test_cli_png_export_gate_refusal_and_agreement(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    img, log, maps = png_image(tmp_path, readers=("reader1", "reader2"))
    outs = {}
    for reader in maps:
        out = tmp_path / f"{reader}.png"
        rc = main(["export", str(img), "--format", "png", "--labels", reader, "-o", str(out)])
        printed = capsys.readouterr().out
        assert rc == 0 and f"{reader}.png" in printed and "recorded as seq" in printed
        np.testing.assert_array_equal(skio.imread(out), maps[reader])
        outs[reader] = out
    assert [r["data"]["format"] for r in iter_records(log.path) if r["action"] == "export"] == [
        "png",
        "png",
    ]
    # NIfTI: one line, non-zero, nothing written, log unchanged
    before = log_bytes(img)
    rc = main(["export", str(img), "--format", "nifti", "--labels", "reader1",
               "-o", str(tmp_path / "r1.nii.gz")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc != 0 and len(err.strip().splitlines()) == 1
    assert NO_SIZE in err and "(r1.png) instead." in err
    assert not (tmp_path / "r1.nii.gz").exists() and log_bytes(img) == before
    # the pending gate and --exclude-pending, as for the other formats
    add_proposals(log, [ProposalDraft("segment", 2, 0.8, np.arange(40, 50), SHAPE)], MODEL)
    args = ["export", str(img), "--format", "png", "--labels", "reader1", "-o", str(tmp_path / "p")]
    assert main(args) != 0
    assert "1 proposal is still undecided" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
    assert main([*args, "--exclude-pending"]) == 0
    assert "1 undecided proposal(s) left out" in capsys.readouterr().out
    # two PNG label maps written this way compare in pixels
    assert main(["agreement", str(outs["reader1"]), str(outs["reader2"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    a, b = maps["reader1"] == 1, maps["reader2"] == 1
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert result["labels"]["1"]["dice"] == pytest.approx(dice)
    assert "hd95_px" in result["labels"]["1"] and "hd95_mm" not in result["labels"]["1"]


def test_replay_of_a_png_images_log_writes_png_not_mm_nifti(tmp_path):
    from napari_clinlabel.core.errors import ClinlabelError
    from napari_clinlabel.core.export.labelmap import write_replay

    path = tmp_path / "photo.png"
    skio.imsave(path, np.zeros(SHAPE, np.uint8), check_contrast=False)
    vol = read_volumes(path)[0]
    log = AuditLog.for_image(path, vol.image_ref(), ANN)
    log.append("image.open", None, {"shape": list(SHAPE), "geometry": vol.geometry.to_dict(),
                                    "source": path.name, "spacing_known": False})  # fmt: skip
    labels = np.zeros(SHAPE, np.uint8)
    record_labels_create(log, "labels", SHAPE, labels.dtype)
    paint(log, labels, "labels", 3, np.s_[4:9, 10:20])
    at = log.head().seq
    with pytest.raises(ClinlabelError, match="states no pixel size"):
        write_replay(log.path, at, tmp_path / "then.nii.gz")
    assert not (tmp_path / "then.nii.gz").exists()
    out = write_replay(log.path, at, tmp_path / "then.png")
    np.testing.assert_array_equal(skio.imread(out), labels)
