"""``pull_series_volumes(cancelled=…)``: stops between instances, opens nothing, leaves only
whole files (pydicom decodes each), and a later pull fetches just the rest."""

from __future__ import annotations

import threading

import numpy as np
import pydicom
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel.core.pacs import pull, pull_series_volumes, push


def test_cancelled_pull_opens_nothing_and_resumes(orthanc, tmp_path):  # noqa: F811
    series = write_series(tmp_path / "src", phantom_stored((6, 10, 8)))
    conn = orthanc.connection()
    push(conn, series.files)
    stop = threading.Event()

    def progress(p):
        if p.done >= 2:
            stop.set()

    out = pull_series_volumes(conn, tmp_path / "dl", series.series_uid, progress=progress,
                              cancelled=stop.is_set)  # fmt: skip
    assert out == []
    files = sorted((tmp_path / "dl" / series.series_uid).glob("*.dcm"))
    assert len(files) == 2
    for f in files:  # whole instances: pydicom decodes every pixel
        assert pydicom.dcmread(f).pixel_array.shape == (10, 8)
    res = pull(conn, tmp_path / "dl", series_uid=series.series_uid)
    assert (res.fetched, res.skipped, res.total) == (4, 2, 6)
    (vol,) = pull_series_volumes(conn, tmp_path / "dl", series.series_uid)
    np.testing.assert_array_equal(vol.array, series.array)
