"""Burned-in text: identifiers rendered into US / SC pixels are found by OCR, then blanked
(Clean Pixel Data) or the image is refused — never written silently."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from napari_clinlabel.core.privacy.burned_in import find_text, risk
from napari_clinlabel.core.privacy.deid import DeidOptions, deidentify
from napari_clinlabel.core.privacy.phi_scan import scan_path

pytestmark = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr absent")
pytest.importorskip("pytesseract")
US_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
TEXT = ("DOE^JOHN MRN 4815162342", "1961-04-13 ST MARY HOSP")
ROWS, COLS = 240, 320


def _image(path: Path, modality: str, sop_class: str, *, text: bool = True, bia: str | None = None):
    rng = np.random.default_rng(3)
    arr = (rng.random((ROWS, COLS)) * 60).astype(np.uint8)
    arr[80:200, 60:260] += 40  # an "organ"
    img = Image.fromarray(arr)
    if text:
        draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=14)
        draw.text((8, 6), TEXT[0], fill=255, font=font)
        draw.text((8, 220), TEXT[1], fill=230, font=font)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = modality, "Doe^John", "4815162342"
    if bia is not None:
        ds.BurnedInAnnotation = bia
    ds.Rows, ds.Columns, ds.SamplesPerPixel = ROWS, COLS, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.asarray(img).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = (
        sop_class,
        ds.SOPInstanceUID,
    )
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path, np.asarray(img)


def _text_mask() -> np.ndarray:
    """Where the renderer (PIL, the oracle) put ink: the text's own bounding boxes."""
    img = Image.new("L", (COLS, ROWS), 0)
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=14)
    draw.text((8, 6), TEXT[0], fill=255, font=font)
    draw.text((8, 220), TEXT[1], fill=255, font=font)
    return np.asarray(img) > 0


@pytest.mark.parametrize(
    ("modality", "sop_class"), [("US", US_STORAGE), ("OT", SecondaryCaptureImageStorage)]
)
def test_rendered_identifiers_found_then_refused_or_blanked(tmp_path, modality, sop_class):
    src, pixels = _image(tmp_path / "in" / "img.dcm", modality, sop_class)
    ds = pydicom.dcmread(src)
    assert risk(ds) is not None
    assert len(find_text(ds)) >= 4  # the rendered words are read
    scan = scan_path(src)
    burned = [f for f in scan if "burned-in text" in f.hint]
    assert burned and all("4815162342" not in f.line() for f in scan)  # count only, no text

    refused = deidentify(tmp_path / "in", tmp_path / "out1")  # Basic Profile: refuse
    assert refused.files_written == 0 and "burned" in refused.skipped[0]["reason"]
    assert refused.files[0]["burned"]["action"] == "refused"

    clean = deidentify(tmp_path / "in", tmp_path / "out2", options=DeidOptions(clean_pixels=True))
    assert clean.files_written == 1 and clean.files[0]["burned"]["action"] == "blanked"
    out = pydicom.dcmread(tmp_path / "out2" / clean.files[0]["output"])
    after = out.pixel_array
    ink = _text_mask()
    assert (after[ink] == after.min()).mean() > 0.95  # the text's ink is gone
    far = np.zeros_like(ink)
    far[60:200, 40:280] = True  # the image content well away from the text: untouched
    assert np.array_equal(after[far], pixels[far])
    assert find_text(out) == []
    assert out.BurnedInAnnotation == "NO"
    codes = [c.CodeValue for c in out.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113101"]
    assert not [f for f in scan_path(tmp_path / "out2") if f.kind == "phi"]


def test_declared_yes_without_readable_text_is_refused_and_no_is_trusted(tmp_path):
    _image(tmp_path / "in" / "a.dcm", "CT", "1.2.840.10008.5.1.4.1.1.2", text=False, bia="YES")
    rep = deidentify(tmp_path / "in", tmp_path / "out", options=DeidOptions(clean_pixels=True))
    assert rep.files_written == 0 and "BurnedInAnnotation YES" in rep.skipped[0]["reason"]
    # a CT image is not at risk; an US image that declares NO is taken at its word
    _image(tmp_path / "ct" / "a.dcm", "CT", "1.2.840.10008.5.1.4.1.1.2", text=False)
    _image(tmp_path / "ct" / "b.dcm", "US", US_STORAGE, text=False, bia="NO")
    rep = deidentify(tmp_path / "ct", tmp_path / "out2")
    assert rep.files_written == 2 and rep.burned == []


def test_ocr_missing_means_refused_not_clean(tmp_path, monkeypatch):
    src, _ = _image(tmp_path / "in" / "img.dcm", "US", US_STORAGE, text=False)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    rep = deidentify(tmp_path / "in", tmp_path / "out", options=DeidOptions(clean_pixels=True))
    assert rep.files_written == 0 and "OCR unavailable" in rep.skipped[0]["reason"]
    kinds = {f.kind for f in scan_path(src) if f.where == "pixels"}
    assert kinds == {"unreadable"}


def test_regions_configured_per_device_are_blanked_as_ctp_does(tmp_path):
    src, pixels = _image(tmp_path / "in" / "img.dcm", "US", US_STORAGE, bia="YES")
    ds = pydicom.dcmread(src)
    ds.Manufacturer, ds.ManufacturerModelName = "Acme", "Sono 1"
    ds.save_as(src, enforce_file_format=True)
    bands = (("ACME", "sono 1", 0, 0, COLS, 24), ("*", "*", 0, ROWS - 24, COLS, 24))
    other = (("Other", "*", 0, 0, COLS, ROWS),)  # another maker's region: not applied
    opts = DeidOptions(clean_pixels=True, blank_regions=bands + other)
    rep = deidentify(tmp_path / "in", tmp_path / "out", options=opts)
    assert rep.files_written == 1, rep.skipped
    assert rep.files[0]["burned"]["configured_regions"] == 2
    out = pydicom.dcmread(tmp_path / "out" / rep.files[0]["output"]).pixel_array
    assert (out[:24] == out.min()).all() and (out[-24:] == out.min()).all()
    assert np.array_equal(out[30:-30], pixels[30:-30])  # the rest untouched (3-pixel margin)
