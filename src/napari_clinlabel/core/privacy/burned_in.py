"""Burned-in text: which images are at risk, OCR of their pixels, blanking of the text found.

At risk: BurnedInAnnotation YES, or BurnedInAnnotation absent on a modality where identifiers are
commonly burned into the pixels (US, SC, OT, XC, ES, GM), on any Secondary Capture SOP class, or
on a slide label/overview image (SM whose ImageType holds LABEL or OVERVIEW). BurnedInAnnotation
NO is taken at its word. OCR is Tesseract (Debian's ``tesseract-ocr``) through ``pytesseract``;
frames OCR'd: the first, the middle and the last (burned-in text is static over a cine loop).
Every word of two or more letters or digits is a region; blanking sets each region (with a
small margin) to the image's minimum in every frame.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset

from napari_clinlabel.core.errors import ClinlabelError

AT_RISK_MODALITIES = frozenset({"US", "SC", "OT", "XC", "ES", "GM"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
MIN_CONFIDENCE = 60  # tesseract word confidence (0-100): speckle read as letters scores below 55
MARGIN = 3  # pixels around each word box


class OcrUnavailable(ClinlabelError):
    """Tesseract or pytesseract is missing: burned-in text cannot be looked for."""


class PixelsUnreadable(ClinlabelError):
    """The pixel data could not be decoded (compressed without a decoder, or corrupt)."""


@dataclass(frozen=True)
class Region:
    """A text region in pixel coordinates (column, row, width, height) and the word's length."""

    x: int
    y: int
    w: int
    h: int
    chars: int


def risk(ds: Dataset) -> str | None:
    """Why ``ds``'s pixels may show identifiers (None when they are not at risk)."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return None
    bia = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if bia == "YES":
        return "BurnedInAnnotation YES"
    if bia == "NO":
        return None
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality in AT_RISK_MODALITIES:
        return f"modality {modality} without BurnedInAnnotation"
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary capture without BurnedInAnnotation"
    kinds = {str(v).upper() for v in (ds.get("ImageType") or [])}
    if modality == "SM" and kinds & {"LABEL", "OVERVIEW"}:
        return "slide label/overview image"
    return None


def ocr_available() -> bool:
    """True when both the tesseract program and pytesseract are installed."""
    if shutil.which("tesseract") is None:
        return False
    try:
        import pytesseract  # noqa: F401  # optional: only at-risk images need OCR
    except ImportError:
        return False
    return True


def _frames(ds: Dataset) -> np.ndarray:
    """The pixels as (frames, rows, cols[, samples]); raises PixelsUnreadable."""
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # any decoder failure: missing plugin, corrupt stream
        raise PixelsUnreadable(f"pixel data could not be decoded ({type(exc).__name__})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames == 1 and arr.ndim == (3 if spp > 1 else 2):
        arr = arr[None]
    return arr


def _to_gray8(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float32)
    if f.ndim == 3:
        f = f[..., :3].mean(axis=-1)
    lo, hi = float(np.nanmin(f)), float(np.nanmax(f))
    if hi <= lo:
        return np.zeros(f.shape, np.uint8)
    return np.clip((f - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def find_text(ds: Dataset) -> list[Region]:
    """Words Tesseract reads in the first, middle and last frame (union of their boxes)."""
    if not ocr_available():
        raise OcrUnavailable(
            "OCR unavailable: install tesseract-ocr (apt) and pytesseract (pip) to check "
            "burned-in text"
        )
    import pytesseract  # optional dependency (the ocr extra), imported only when an image needs OCR

    arr = _frames(ds)
    picks = sorted({0, len(arr) // 2, len(arr) - 1})
    out: list[Region] = []
    for k in picks:
        img = Image.fromarray(_to_gray8(arr[k]))
        try:
            data = pytesseract.image_to_data(
                img, config="--psm 11", output_type=pytesseract.Output.DICT
            )
        except Exception as exc:  # tesseract crashed or timed out on this frame
            raise OcrUnavailable(f"OCR failed ({type(exc).__name__})") from None
        for i, text in enumerate(data["text"]):
            alnum = sum(c.isalnum() for c in str(text))
            if alnum >= 2 and float(data["conf"][i]) >= MIN_CONFIDENCE:
                r = Region(int(data["left"][i]), int(data["top"][i]), int(data["width"][i]),
                           int(data["height"][i]), alnum)  # fmt: skip
                if r not in out:
                    out.append(r)
    return out


def blank(ds: Dataset, regions: list[Region]) -> None:
    """Set every region to the image's minimum in every frame (native pixel data only)."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts.is_compressed:
        try:  # blanked pixels are written uncompressed (Explicit VR Little Endian)
            ds.decompress()
        except Exception as exc:  # no decoder for this syntax, or a corrupt stream
            raise PixelsUnreadable(
                f"compressed pixel data not decoded ({type(exc).__name__})"
            ) from None
    elif not ts.is_little_endian:
        raise PixelsUnreadable("big-endian pixel data: convert to little endian first")
    arr = _frames(ds).copy()
    fill = arr.min()
    rows, cols = arr.shape[1], arr.shape[2]
    for r in regions:
        y0, y1 = max(0, r.y - MARGIN), min(rows, r.y + r.h + MARGIN)
        x0, x1 = max(0, r.x - MARGIN), min(cols, r.x + r.w + MARGIN)
        arr[:, y0:y1, x0:x1] = fill
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    out = arr if frames > 1 else arr[0]
    if "PixelData" in ds and int(ds.get("BitsAllocated", 8)) in (8, 16, 32):
        ds.PixelData = out.astype(arr.dtype, copy=False).tobytes()
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            ds.PhotometricInterpretation = "RGB"  # pixel_array gave RGB; that is what we wrote
    else:
        raise PixelsUnreadable("pixel layout not supported for blanking (bit-packed or float)")
