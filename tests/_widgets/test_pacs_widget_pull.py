"""Open from PACS opens the series from the bytes it pulled (``pull_series_volumes``), driven as a
user would: server, search, pick the series, Open. Oracles: SimpleITK's read of the pulled
folder (voxels and physical positions) and ``verify_log``; the sidecar log is the one File > Open
of the cached folder finds and continues. Cancel removes what the pull wrote; a server that is
gone or a series the server no longer holds is one line. No notification carries PHI."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import requests
import SimpleITK as sitk
from napari.utils.notifications import notification_manager
from support.dicom_series_factory import FAKE_PHI, phantom_stored, write_series
from support.orthanc import _free_port, orthanc  # noqa: F401 - fixture

import napari_clinlabel.core.pacs.client as pacs_client
from napari_clinlabel._widgets.pacs import PacsWidget
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.export.gate import export
from napari_clinlabel.core.image.io import read_volumes
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, sidecar_paths
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.pacs import cache_root, push
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

USER = "ann.reader"


@pytest.fixture
def pacs(orthanc, monkeypatch):  # noqa: F811 - the fixture imported above
    """The test Orthanc, with the user signed in as ``USER``."""
    monkeypatch.setenv("CLINLABEL_USER", USER)
    return orthanc


@pytest.fixture
def said(monkeypatch):
    """Every notification text (napari's manager) and every error the session reports."""
    out: list[str] = []
    monkeypatch.setattr("napari_clinlabel.glue.session.show_error", out.append)

    def keep(n):
        out.append(str(n.message))

    notification_manager.notification_ready.connect(keep)
    yield out
    notification_manager.notification_ready.disconnect(keep)


def _no_phi(texts):
    for t in texts:
        for v in FAKE_PHI.values():
            assert v not in t, "PHI in a notification"
            assert v.split("^")[0] not in t


def _search_and_pick(w, server, qtbot, series=1):
    """Type the server and credentials, search, select the first series (as a user would)."""
    qtbot.keyClicks(w._url, server.url)
    qtbot.keyClicks(w._user, server.username)
    qtbot.keyClicks(w._secret, server.password)
    w._search_btn.click()
    qtbot.waitUntil(
        lambda: w._worker is None and w._results.topLevelItemCount() == 1, timeout=20000
    )
    assert w._results.topLevelItem(0).childCount() == series
    w._results.setCurrentItem(w._results.topLevelItem(0).child(0))
    assert w._open_btn.isEnabled()


def _sitk_read(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_pull_opens_from_memory_with_the_readers_log(
    pacs, tmp_path, make_napari_viewer, qtbot, said
):
    s = write_series(tmp_path / "src", phantom_stored((5, 24, 20)), bits_stored=12)
    push(pacs.connection(), [tmp_path / "src"])
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    _search_and_pick(w, pacs, qtbot)
    seen = []
    w.progressed.connect(lambda p: seen.append((p.done, p.total)))
    w._open_btn.click()
    assert not w._open_btn.isEnabled() and w._cancel_btn.isEnabled()  # busy, off the GUI thread
    qtbot.waitUntil(lambda: w._worker is None, timeout=30000)
    assert seen and seen[-1] == (5, 5)  # progress reached the GUI thread, per instance
    (layer,) = w.opened
    assert list(viewer.layers) == [layer]
    folder = cache_root() / s.series_uid
    ref = _sitk_read(folder)  # oracle: SimpleITK's series read of the folder now in the cache
    data = np.asarray(layer.data)
    assert data.dtype == sitk.GetArrayViewFromImage(ref).dtype
    np.testing.assert_array_equal(data, sitk.GetArrayFromImage(ref))
    for ijk in [(0, 0, 0), (19, 23, 4), (7, 3, 2)]:  # physical position of voxels, ITK's word
        world = layer.data_to_world(ijk[::-1])
        np.testing.assert_allclose(world, ref.TransformIndexToPhysicalPoint(ijk)[::-1], atol=1e-4)
    assert "Opened 1 layer" in w._status.text()
    # the sidecar log beside the cached folder: verified, image.open by the signed-in user
    log_path = sidecar_paths(folder)[0]
    assert get_session(viewer).log_path_for(layer) == log_path
    assert verify_log(log_path).ok
    recs = list(iter_records(log_path))
    # the fake patient attributes are found and logged (PHI policy as for any folder opened)
    assert [r["action"] for r in recs] == ["image.open", "phi.warning"]
    rec = recs[0]
    assert rec["actor"]["id"] == USER and recs[1]["actor"]["id"] == USER
    assert rec["image"]["uid"] == s.series_uid and rec["data"]["source"] == s.series_uid
    assert rec["data"]["shape"] == list(data.shape)
    # File > Open of that folder later (a new viewer): the same image, the same log, continued
    viewer2 = make_napari_viewer()
    (again,) = viewer2.open(str(folder), plugin="napari-clinlabel")
    assert get_session(viewer2).log_path_for(again) == log_path
    recs = list(iter_records(log_path))
    assert [r["action"] for r in recs][:3] == ["image.open", "phi.warning", "image.open"]
    assert recs[2]["image"] == rec["image"]  # same series UID and voxel sha256
    assert recs[2]["data"] == rec["data"]  # same shape, dtype, geometry, source
    assert again.metadata["clinlabel"]["sha256"] == rec["image"]["sha256"]
    assert verify_log(log_path).ok
    _no_phi([*said, w._status.text()])


def test_cancel_removes_what_arrived_then_a_new_pull_opens(
    pacs, tmp_path, make_napari_viewer, qtbot, monkeypatch, said
):
    s = write_series(tmp_path / "src", phantom_stored((6, 16, 12)))
    push(pacs.connection(), [tmp_path / "src"])
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    _search_and_pick(w, pacs, qtbot)
    real_parts = pacs_client._series_parts
    slow = threading.Event()
    slow.set()

    def slow_network(client, study, series):
        """The server's parts, the third only after the user clicked Cancel (a slow link)."""
        for k, part in enumerate(real_parts(client, study, series)):
            if k == 2 and slow.is_set():
                for _ in range(2000):
                    if w._cancel.is_set():
                        break
                    threading.Event().wait(0.01)
            yield part

    monkeypatch.setattr(pacs_client, "_series_parts", slow_network)
    w._open_btn.click()
    qtbot.waitUntil(lambda: w._progress.value() == 2, timeout=20000)
    assert w._progress.maximum() == 6 and w._status.text().startswith("2/6 instances")
    folder = cache_root() / s.series_uid
    qtbot.waitUntil(lambda: len(list(folder.glob("*.dcm"))) == 2, timeout=10000)  # on disk
    w._cancel_btn.click()
    qtbot.waitUntil(lambda: w._worker is None, timeout=20000)
    text = w._status.text()
    # the part in flight when Cancel came is written too; the pull stops before the next one
    assert "cancelled" in text and "3 instance(s)" in text and "removed" in text
    assert "\n" not in text
    assert w.opened == [] and len(viewer.layers) == 0
    assert not folder.exists()  # no short series left to open later as if it were whole
    assert not sidecar_paths(folder)[0].exists()  # nothing opened, nothing logged
    assert w._open_btn.isEnabled() and not w._cancel_btn.isEnabled()
    # Open again: the whole series arrives and opens (what SimpleITK reads of the folder)
    slow.clear()
    w._open_btn.click()
    qtbot.waitUntil(lambda: w._worker is None and bool(w.opened), timeout=30000)
    np.testing.assert_array_equal(
        np.asarray(w.opened[0].data), sitk.GetArrayFromImage(_sitk_read(folder))
    )
    assert len(list(folder.glob("*.dcm"))) == 6
    _no_phi(said)


def _orthanc_delete_series(server, series_uid):
    """Delete a series through Orthanc's own REST API (not the code under test)."""
    auth = (server.username, server.password)
    hit = requests.post(f"{server.rest}/tools/lookup", data=series_uid, auth=auth, timeout=10)
    (found,) = hit.json()
    requests.delete(f"{server.rest}{found['Path']}", auth=auth, timeout=10).raise_for_status()


@pytest.mark.parametrize("problem", ["server down", "series missing", "link lost"])
def test_pull_errors_are_one_line(
    problem, pacs, tmp_path, make_napari_viewer, qtbot, monkeypatch, said
):
    s = write_series(tmp_path / "src", phantom_stored((3, 8, 8)))
    push(pacs.connection(), [tmp_path / "src"])
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    _search_and_pick(w, pacs, qtbot)
    if problem == "server down":  # the user points the form at a port nothing listens on
        w._url.setText(f"http://127.0.0.1:{_free_port()}/dicom-web")
        expected = "cannot connect"
    elif problem == "series missing":  # the series went away on the server after the search
        _orthanc_delete_series(pacs, s.series_uid)
        expected = f"no series {s.series_uid} there"
    else:  # the connection drops after two instances were written: they are removed again
        real_parts = pacs_client._series_parts

        def dropped(client, study, series):
            for k, part in enumerate(real_parts(client, study, series)):
                if k == 2:
                    raise requests.exceptions.ConnectionError("connection reset")
                yield part

        monkeypatch.setattr(pacs_client, "_series_parts", dropped)
        expected = "cannot connect while retrieving series"
    w._open_btn.click()
    qtbot.waitUntil(lambda: w._worker is None, timeout=30000)
    errors = [t for t in said if expected in t]
    assert len(errors) == 1 and "\n" not in errors[0] and "Traceback" not in errors[0]
    assert expected in w._status.text()
    assert w.opened == [] and len(viewer.layers) == 0
    assert not (cache_root() / s.series_uid).exists()  # nothing short left to open later
    assert w._open_btn.isEnabled()
    _no_phi(said)


def test_sr_series_is_pulled_and_opened_by_the_reader(
    pacs, tmp_path, make_napari_viewer, qtbot, said
):
    """An SR series has no pixels to open from memory: it is pulled, then the reader opens the
    folder as the report's boxes on the series already pulled and shown."""
    write_series(tmp_path / "scanner", phantom_stored((4, 16, 12)), spacing=(0.7, 0.8, 2.5))
    vol = read_volumes(tmp_path / "scanner")[0]
    ann = Actor(USER, "Ann Reader", "annotator")
    log = AuditLog.for_image(tmp_path / "scanner", vol.image_ref(), ann,
                             load_schema("lesions").ref())  # fmt: skip
    add_box(log, LesionBox((2, 4.5, 2.5), (2, 9.5, 7.5), "malignant", 3, {}, "b1"), vol)
    log.close()
    (tmp_path / "out").mkdir()
    sr = export(tmp_path / "scanner", "dicom-sr", tmp_path / "out" / "sr.dcm", actor=ann)
    push(pacs.connection(), [tmp_path / "scanner", sr.outputs[0].path])
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    _search_and_pick(w, pacs, qtbot, series=2)
    study = w._results.topLevelItem(0)
    rows = {study.child(k).text(0).split()[0]: study.child(k) for k in range(2)}
    for modality in ("CT", "SR"):
        w._results.setCurrentItem(rows[modality])
        w._open_btn.click()
        qtbot.waitUntil(lambda: w._worker is None, timeout=30000)
    image, shapes = viewer.layers
    assert image._type_string == "image" and shapes._type_string == "shapes"
    assert w.opened == [shapes]
    rect = np.asarray(shapes.data[0])  # the box's voxel extents as drawn on the scanner's files
    np.testing.assert_allclose(rect.min(axis=0), [2, 4.5, 2.5])
    np.testing.assert_allclose(rect.max(axis=0), [2, 9.5, 7.5])
    np.testing.assert_allclose(shapes.affine.affine_matrix, image.affine.affine_matrix)
    _no_phi(said)
