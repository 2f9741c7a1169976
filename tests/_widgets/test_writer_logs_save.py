"""Saving a managed labels layer through the plain napari writer is a logged ``labels.save``."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from support.viewer_helpers import add_ct  # noqa: E402

from napari_clinlabel._writer import write_labels_layer  # noqa: E402
from napari_clinlabel.core.errors import LogError  # noqa: E402
from napari_clinlabel.core.log.verify import verify_log  # noqa: E402
from napari_clinlabel.glue.session import get_session  # noqa: E402


def test_writer_save_is_logged_and_refused_when_the_log_fails(
    make_napari_viewer, tmp_path, monkeypatch
):
    viewer = make_napari_viewer()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    labels.paint((6, 30, 30), 1)  # a brush dab, captured by the recorder
    out = tmp_path / "seg.nrrd"
    write_labels_layer(str(out), labels.data, labels.as_layer_data_tuple()[1])
    log = session.log_for(image)
    saves = [r for r in log.records() if r["action"] == "labels.save"]
    assert len(saves) == 1 and saves[0]["data"]["objects"]["snapshot"]
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), labels.data)
    assert verify_log(log.path).ok
    # the log cannot be written: the save is refused and leaves no file behind
    from napari_clinlabel.core.log import audit_log

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(audit_log.os, "write", full_disk)
    second = tmp_path / "seg2.nrrd"
    with pytest.raises(LogError):
        write_labels_layer(str(second), labels.data, labels.as_layer_data_tuple()[1])
    assert not second.exists()
