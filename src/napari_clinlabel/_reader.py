"""npe2 reader: DICOM folders/files, NIfTI, NRRD, MetaImage and 2D images via core.volume_io.

Errors are :class:`ClinlabelError` subclasses; napari shows their message (file, problem, fix).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_clinlabel.core.image.dicom.seg_read import read_seg, seg_files, seg_layer_data
from napari_clinlabel.core.image.io import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    ITK_SUFFIXES,
    is_dicom_file,
    read_volumes,
    suffix_of,
)
from napari_clinlabel.glue.layers import volume_to_layer_data

PathLike = str | Path
ReaderFunction = Callable[[PathLike | list[PathLike]], list[tuple[Any, dict, str]]]


def _dir_has_dicom(folder: Path, probe: int = 64) -> bool:
    """True when one of the first ``probe`` files under ``folder`` looks like DICOM."""
    if folder.suffix.lower() in (".zarr", ".n5"):
        return False
    seen = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if is_dicom_file(Path(root) / name):
                return True
            seen += 1
            if seen >= probe:
                return False
    return False


def _supported(path: PathLike) -> bool:
    p = Path(path)
    if p.is_dir():
        return _dir_has_dicom(p)
    suffix = suffix_of(p)
    if suffix in ITK_SUFFIXES or suffix in IMAGE_SUFFIXES or suffix in DICOM_SUFFIXES:
        return True
    return p.is_file() and is_dicom_file(p)


def get_reader(path: PathLike | list[PathLike]) -> ReaderFunction | None:
    """The reader function when every path is something this plugin opens, else None."""
    paths = path if isinstance(path, list | tuple) else [path]
    if not paths or not all(_supported(p) for p in paths):
        return None
    return read_layers


def read_layers(path: PathLike | list[PathLike]) -> list[tuple[Any, dict, str]]:
    """One image layer per volume (one per DICOM series) with its physical affine."""
    target = [Path(p) for p in path] if isinstance(path, list | tuple) else Path(path)
    segs = seg_files(target) if isinstance(target, Path) else []
    if segs:  # a DICOM SEG opens as labels (names, codes, colours), not as a grey image
        return [t for f in segs for t in seg_layer_data(read_seg(f), f"SEG {f.stem}")]
    return [volume_to_layer_data(v) for v in read_volumes(target)]
