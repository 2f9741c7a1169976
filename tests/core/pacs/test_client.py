"""DICOMweb find / pull / push against a real Orthanc (started per test on loopback)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import requests
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel.core.errors import PacsError
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.pacs import find_studies, iter_pull, pull, push
from napari_clinlabel.core.pacs.client import PacsConnection, instance_path


@pytest.fixture
def series(tmp_path):
    return write_series(tmp_path / "src", phantom_stored((4, 12, 10)), spacing=(0.8, 0.7, 2.5))


def _orthanc_series(server, series_uid):
    """Series UIDs Orthanc holds, from its own REST API (not the code under test)."""
    auth = (server.username, server.password)
    ids = requests.get(f"{server.rest}/series", auth=auth, timeout=10).json()
    return {requests.get(f"{server.rest}/series/{i}", auth=auth, timeout=10).json()
            ["MainDicomTags"]["SeriesInstanceUID"] for i in ids}  # fmt: skip


def test_push_find_pull_open(orthanc, series, tmp_path):  # noqa: F811
    conn = orthanc.connection()
    res = push(conn, [series.files[0].parent])
    assert len(res.stored) == 4 and not res.failed
    assert orthanc.instance_count() == 4
    assert series.series_uid in _orthanc_series(orthanc, series.series_uid)
    studies = find_studies(conn, modality="CT")
    assert [s.study_uid for s in studies] == [series.meta["study_uid"]]
    assert [(s.series_uid, s.instances, s.modality) for s in studies[0].series] == [
        (series.series_uid, 4, "CT")
    ]
    assert "PHI-ID-0042" not in str(studies[0].public())  # the CLI form carries no patient ID
    assert find_studies(conn, modality="MR") == []
    seen = []
    out = pull(conn, tmp_path / "dl", series_uid=series.series_uid, progress=seen.append)
    assert (out.fetched, out.skipped, out.total) == (4, 0, 4)
    assert seen[-1].done == 4
    # the files are the sent instances, byte for byte in pixel data
    sent = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in series.files}
    for sop, ds in sent.items():
        got = pydicom.dcmread(instance_path(tmp_path / "dl", series.series_uid, sop))
        assert got.PixelData == ds.PixelData
    vol = read_volumes(out.folders[0])[0]
    np.testing.assert_array_equal(vol.array, series.array)
    np.testing.assert_allclose(vol.geometry.spacing, series.geometry.spacing, atol=1e-6)


def test_pull_resumes_and_checks(orthanc, series, tmp_path):  # noqa: F811
    conn = orthanc.connection()
    push(conn, series.files)
    dest = tmp_path / "dl"
    # cancel after the first instance: only complete files are left
    it = iter_pull(conn, dest, study_uid=series.meta["study_uid"])
    steps = [next(it), next(it)]
    it.close()
    assert steps[-1].fetched == 1
    files = list((dest / series.series_uid).glob("*.dcm"))
    assert len(files) == 1
    # a torn file is fetched again, a good one is skipped
    files[0].write_bytes(files[0].read_bytes()[:200])
    out = pull(conn, dest, study_uid=series.meta["study_uid"])
    assert (out.fetched, out.skipped) == (4, 0)
    out = pull(conn, dest, series_uid=series.series_uid)
    assert (out.fetched, out.skipped) == (0, 4)
    victim = next((dest / series.series_uid).glob("*.dcm"))
    victim.unlink()
    out = pull(conn, dest, series_uid=series.series_uid)
    assert (out.fetched, out.skipped) == (1, 3)


def test_bad_input_one_line(orthanc, series, tmp_path):  # noqa: F811
    with pytest.raises(PacsError, match="refused the credentials"):
        find_studies(orthanc.connection(password="wrong"))
    with pytest.raises(PacsError, match="not a DICOM Series Instance UID"):
        pull(orthanc.connection(), tmp_path / "d", series_uid="1.2.x")
    with pytest.raises(PacsError, match="no series 1.2.3.4"):
        pull(orthanc.connection(), tmp_path / "d", series_uid="1.2.3.4")
    with pytest.raises(PacsError, match="cannot connect"):
        find_studies(PacsConnection("http://127.0.0.1:9/dicom-web", timeout_s=2))
    with pytest.raises(PacsError, match="not a DICOMweb base URL"):
        find_studies(PacsConnection("ftp://x"))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not DICOM")
    with pytest.raises(PacsError, match="no DICOM files"):
        push(orthanc.connection(), [tmp_path / "notes"])
    with pytest.raises(PacsError, match="no such file"):
        push(orthanc.connection(), [tmp_path / "gone"])
    with pytest.raises(PacsError, match="exactly one"):
        pull(orthanc.connection(), tmp_path, series_uid="1.2", study_uid="1.2")


def test_pull_series_volumes_opens_from_memory_like_simpleitk_reads_the_files(orthanc, tmp_path):  # noqa: F811
    import SimpleITK as sitk  # oracle: SimpleITK's own series read of the pulled files

    from napari_clinlabel.core.pacs import pull_series_volumes

    series = write_series(tmp_path / "src", phantom_stored((6, 12, 10)), bits_stored=12)
    conn = orthanc.connection()
    push(conn, series.files)
    (vol,) = pull_series_volumes(conn, tmp_path / "dl", series.series_uid)
    folder = tmp_path / "dl" / series.series_uid
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    ref = reader.Execute()
    ref_a = sitk.GetArrayFromImage(ref)
    # SimpleITK sorts by position too; the volume holds its voxels, type and all
    assert vol.array.dtype == ref_a.dtype
    np.testing.assert_array_equal(vol.array, ref_a)
    np.testing.assert_array_equal(vol.array, series.array)  # the factory's stored * slope + b
    np.testing.assert_allclose(vol.geometry.origin, ref.GetOrigin(), atol=1e-4)
    # the files written are the bytes Orthanc sent: same pixel data as the sources
    sent = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f).PixelData for f in series.files}
    for sop, pixels in sent.items():
        assert (
            pydicom.dcmread(instance_path(tmp_path / "dl", series.series_uid, sop)).PixelData
            == pixels
        )
    # the same voxels (and digest) as opening the folder afterwards: the log binds that digest
    assert read_volumes(folder)[0].sha256 == vol.sha256
    # a file whose pixel data is cut short (a crash before the series' flush) is fetched again
    victim = next(folder.glob("*.dcm"))
    victim.write_bytes(victim.read_bytes()[:-1000])
    out = pull(conn, tmp_path / "dl", series_uid=series.series_uid)
    assert (out.fetched, out.skipped) == (1, 5)
    np.testing.assert_array_equal(read_volumes(folder)[0].array, series.array)


def test_series_flush_is_one_syncfs_on_linux_else_one_fsync_per_file(tmp_path, monkeypatch):
    import os
    import sys

    from napari_clinlabel.core.pacs import client as pacs_client

    files = [tmp_path / f"{n}.dcm" for n in range(3)]
    for f in files:
        f.write_bytes(b"x")
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    pacs_client._flush_series(tmp_path, files)
    linux = sys.platform.startswith("linux")
    assert len(calls) == (1 if linux else 4)  # the folder only (after syncfs), or files + folder
    calls.clear()
    monkeypatch.setattr(sys, "platform", "darwin")  # no syncfs: every file, then the folder
    pacs_client._flush_series(tmp_path, files)
    assert len(calls) == 4
