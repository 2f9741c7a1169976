"""Opening a DICOM series: the plugin reader vs SimpleITK's own series read, same files, same run.

Ours (``read_volumes``) scans every header, validates and sorts the series geometrically, reads
the pixels with SimpleITK and digests the voxels. The anchor is ``GetGDCMSeriesFileNames`` +
``ImageSeriesReader.Execute`` alone. Runs alternate (after one warm-up each, so both read from
the page cache); best of 5 (this machine is shared: minima are the stable figure).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the synthetic DICOM series writer
from support.dicom_series_factory import write_series  # noqa: E402


def _anchor(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def bench_open_dicom_series(quick: bool) -> dict:
    """512×512×300 int16 CT series, 12 bits stored like scanners write (quick: ×60)."""
    from napari_clinlabel.core.image.io import read_volumes

    nz = 60 if quick else 300
    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-bench-"))
    try:
        rng = np.random.default_rng(0)
        stored = rng.integers(0, 2000, size=(nz, 512, 512), dtype=np.int16)
        write_series(tmp, stored, spacing=(0.7, 0.7, 1.0), bits_stored=12)
        (vol,) = read_volumes(tmp)  # warm-up (page cache, imports) and a correctness check
        ref = _anchor(tmp)
        assert np.array_equal(vol.array, sitk.GetArrayViewFromImage(ref))
        ours, anchor = [], []
        for _ in range(5):
            t = time.perf_counter()
            read_volumes(tmp)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            _anchor(tmp)
            anchor.append(time.perf_counter() - t)
        return {
            "ours_s": min(ours),
            "anchor_s": min(anchor),
            "budget": 1.3,
            "slices": nz,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BENCHMARKS = [bench_open_dicom_series]
