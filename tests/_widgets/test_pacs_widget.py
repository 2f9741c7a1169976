"""Open from PACS: search the test Orthanc, pick a series, download off the GUI thread into the
cache, open it with the plugin reader; Send to PACS; a bad password is a notification only."""

from __future__ import annotations

import os

import numpy as np
from support.dicom_series_factory import write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel._widgets.pacs import PacsWidget
from napari_clinlabel.core.image.samples import ct_phantom
from napari_clinlabel.core.pacs import cache_root


def _fill(w, server, password=None):
    w._url.setText(server.url)
    w._user.setText(server.username)
    w._secret.setText(password or server.password)


def test_search_download_open_send(orthanc, tmp_path, make_napari_viewer, qtbot):  # noqa: F811
    from napari_clinlabel.core.pacs import push

    hu = ct_phantom(shape=(3, 48, 40)).array  # a body phantom in HU, so the screenshot shows it
    s = write_series(tmp_path / "src", (np.asarray(hu) + 1024).astype(np.int16), modality="CT")
    push(orthanc.connection(), [tmp_path / "src"])
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    viewer.window.add_dock_widget(w, name="Open from PACS")
    _fill(w, orthanc)
    w._modality.setCurrentText("CT")
    w._patient.setText("PHI-ID-0042")
    w._search_btn.click()
    qtbot.waitUntil(
        lambda: w._results.topLevelItemCount() == 1 and w._worker is None, timeout=20000
    )
    study = w._results.topLevelItem(0)
    assert study.text(2) == "PHI-ID-0042"  # shown to the credentialed user, in the widget only
    series_item = study.child(0)
    assert series_item.text(4) == "3"
    w._results.setCurrentItem(series_item)
    assert w.selected_series() == s.series_uid and w._open_btn.isEnabled()
    w._open_btn.click()
    qtbot.waitUntil(lambda: bool(w.opened) and w._worker is None, timeout=30000)
    layer = w.opened[0]
    np.testing.assert_allclose(np.asarray(layer.data), s.array)
    assert (cache_root() / s.series_uid).is_dir()
    assert layer.metadata["clinlabel"]["series_uid"] == s.series_uid
    if os.environ.get("CLINLABEL_SCREENSHOT"):
        viewer.window._qt_window.resize(1400, 900)
        qtbot.wait(200)
        viewer.window.screenshot(os.environ["CLINLABEL_SCREENSHOT"], canvas_only=False)
    # Send to PACS: an exported file goes back (here a copy of one slice under a new SOP UID)
    import pydicom
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(s.files[0])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "extra.dcm")
    before = orthanc.instance_count()
    w.send([tmp_path / "extra.dcm"])
    qtbot.waitUntil(lambda: w._worker is None and "stored" in w._status.text(), timeout=20000)
    assert orthanc.instance_count() == before + 1


def test_bad_password_is_a_notification(orthanc, make_napari_viewer, qtbot, monkeypatch):  # noqa: F811
    shown = []
    monkeypatch.setattr("napari_clinlabel.glue.session.show_error", shown.append)
    viewer = make_napari_viewer()
    w = PacsWidget(viewer)
    _fill(w, orthanc, password="wrong")
    w._search_btn.click()
    qtbot.waitUntil(lambda: w._worker is None and bool(shown), timeout=20000)
    assert "refused the credentials" in shown[0]
    assert w._results.topLevelItemCount() == 0 and w._search_btn.isEnabled()
