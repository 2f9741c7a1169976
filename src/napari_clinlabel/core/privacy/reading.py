"""Finding and reading every DICOM file, header-less ones included, and writing proper file meta.

A file is DICOM when it carries the ``DICM`` preamble, or when it starts like a data set saved
without preamble and file meta (a group 0002/0008 tag in either byte order, then a valid VR or a
plausible length): such files are read with ``force=True``. A file that looks like DICOM but cannot
be parsed, or is cut short, is *unreadable* — never clean, never silently skipped.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from napari_clinlabel.core.errors import ClinlabelError

_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
}  # fmt: skip
_FIRST_GROUPS = {0x0002, 0x0004, 0x0008}
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class Unreadable(ClinlabelError):
    """A DICOM file that could not be parsed in full; the message says why (never a value)."""


def data_set_offset(path: Path) -> int | None:
    """Where the data set starts: 0 or 132 (preamble), a few bytes in for a header-less file
    with leading junk, None when the file does not look like DICOM (or is not readable)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if len(head) == 132 and head[128:132] == b"DICM":
        return 0
    for k in range(8):  # header-less: a group 0002/0004/0008 element at (or just after) the start
        h = head[k : k + 8]
        if len(h) < 8:
            return None
        for order in ("<", ">"):
            group, _elem = struct.unpack(order + "HH", h[:4])
            if group in _FIRST_GROUPS:
                if h[4:6] in _VRS:
                    return k
                (length,) = struct.unpack(order + "I", h[4:8])
                if length < 1 << 16 and k == 0:
                    return k
    return None


def sniff(path: Path) -> bool:
    """True when ``path`` is a regular file that looks like DICOM (preamble or header-less)."""
    return data_set_offset(path) is not None


def dicom_files(src: Path) -> tuple[list[Path], list[Path]]:
    """(DICOM files, other files) under ``src`` (a file or folder), sorted; hidden names skipped."""
    if src.is_file():
        return ([src], []) if sniff(src) else ([], [src])
    found: list[Path] = []
    other: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            p = Path(dirpath) / f
            (found if sniff(p) else other).append(p)
    return found, other


def read(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read one DICOM file (``force=True`` for header-less ones); raise :class:`Unreadable`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd files warn on every element; the result is checked
        try:
            offset = data_set_offset(path) or 0
            if offset:  # pydicom rewinds to 0 when it finds no preamble: hand it the rest
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    body = io.BytesIO(fh.read())
                ds = pydicom.dcmread(body, force=True, stop_before_pixels=stop_before_pixels)
            else:
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
        except Exception as exc:  # pydicom raises many kinds on malformed input
            raise Unreadable(f"cannot be parsed as DICOM ({type(exc).__name__})") from None
    if len(ds) == 0:
        raise Unreadable("no data set after the file meta")
    short = [
        r for r in ds._dict.values()  # raw elements: a value shorter than its length was cut
        if isinstance(getattr(r, "value", None), bytes) and getattr(r, "length", 0) != 0xFFFFFFFF
        and len(r.value) < r.length
    ]  # fmt: skip
    no_pixels = not any(k in ds for k in PIXEL_KEYWORDS)
    if short or (not stop_before_pixels and no_pixels and "Rows" in ds):
        raise Unreadable("cut short (truncated): the attributes after the cut cannot be checked")
    if no_pixels and len(ds) < 5 and "SOPClassUID" not in ds:
        raise Unreadable(f"a fragment of {len(ds)} attribute(s) without SOP Class UID "
                         "(truncated, or not an instance): it cannot be checked")  # fmt: skip
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if not ds.file_meta.get("TransferSyntaxUID"):  # header-less: the encoding pydicom found
        ds.file_meta.TransferSyntaxUID = transfer_syntax(ds)
    try:  # values are parsed lazily: a cut or corrupt value raises here, not later
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for elem in ds.iterall():
                _ = elem.value
    except Exception as exc:
        raise Unreadable(f"a value cannot be parsed ({type(exc).__name__})") from None
    return ds


def transfer_syntax(ds: Dataset) -> str:
    """The transfer syntax the data set was read in (meta's, else the encoding pydicom found)."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if ts:
        found_implicit = str(ts) == ImplicitVRLittleEndian
        if implicit is None or found_implicit == implicit:
            return str(ts)
    if implicit is None:
        return ExplicitVRLittleEndian
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def proper_meta(ds: Dataset, sop_class: str, sop_instance: str, ts: str) -> None:
    """Give ``ds`` a complete, fresh file meta (nothing of the old meta carried over)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ts
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CLINLABEL"
    ds.file_meta = meta
