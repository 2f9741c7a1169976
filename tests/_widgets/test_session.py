"""The per-viewer session (napari glue, no Qt): where logs go, what image.open holds, managing
existing labels layers, and refusing what cannot be logged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from napari.components import ViewerModel
from napari.layers import Labels
from support.trusted_roster import write_roster
from support.viewer_helpers import add_ct

from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.errors import GeometryError, InputError, LogError, PermissionRefused
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.glue.session import get_session, record_save_for_layer_meta


def test_file_image_log_sits_beside_it_and_names_the_file_only(tmp_path):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    assert get_session(viewer) is session
    labels = session.labels_layer_for(image)
    assert session.labels_layer_for(image) is labels
    session.log_for(image)
    path = tmp_path / "ct.nii.gz.clinlabel.jsonl"
    assert session.log_path_for(image) == path
    recs = list(iter_records(path))
    assert [r["action"] for r in recs] == ["image.open", "labels.create"]
    opened = recs[0]["data"]
    assert opened["source"] == "ct.nii.gz" and str(tmp_path) not in json.dumps(recs[0])
    assert opened["shape"] == [12, 64, 64] and opened["modality"] == "CT"
    assert opened["geometry"] == image.metadata["clinlabel"]["geometry"]
    assert recs[0]["image"]["sha256"] == image.metadata["clinlabel"]["sha256"]
    np.testing.assert_allclose(labels.data_to_world((3, 4, 5)), image.data_to_world((3, 4, 5)))
    assert labels.metadata["clinlabel"]["geometry"] == image.metadata["clinlabel"]["geometry"]


def test_in_memory_image_logs_to_the_workspace_by_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_WORKSPACE", str(tmp_path / "ws"))
    viewer = ViewerModel()
    image = add_ct(viewer, None)
    session = get_session(viewer)
    session.set_schema(image, {"id": "abdomen-ct", "version": "1", "sha256": "ab" * 32})
    session.labels_layer_for(image)
    sha = image.metadata["clinlabel"]["sha256"]
    path = tmp_path / "ws" / f"{sha}.clinlabel.jsonl"
    recs = list(iter_records(path))
    assert recs[0]["data"]["source"] is None
    assert all(r["schema"]["id"] == "abdomen-ct" for r in recs)
    assert session.schema_for(image)["version"] == "1"


def test_an_existing_labels_layer_is_imported_then_recorded(tmp_path):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    drawn = np.zeros((12, 64, 64), np.uint8)
    drawn[2, 10:14, 10:13] = 5
    layer = viewer.add_labels(drawn, name="mine", affine=image.affine)
    session.manage(layer, image)
    path = session.log_path_for(image)
    rec = list(iter_records(path))[-1]
    assert rec["data"]["tool"] == "import" and rec["data"]["voxels"] == 12
    layer.paint((2, 30, 30), 1)
    last = list(iter_records(path))[-1]
    assert last["data"]["tool"] == "brush" and last["target"] == {"labels": "mine"}
    np.testing.assert_array_equal(replay_labels(path).labels["mine"], layer.data)

    saved = record_save_for_layer_meta(layer._get_state(), tmp_path / "out" / "mine.nii.gz")
    assert saved["action"] == "labels.save" and saved["data"]["file"] == "mine.nii.gz"


def test_bad_labels_are_refused_and_nothing_is_logged(tmp_path):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    session.log_for(image)
    path = session.log_path_for(image)
    before = path.read_bytes()
    wrong = Labels(np.zeros((12, 32, 64), np.uint8), name="half")
    with pytest.raises(
        GeometryError, match=r"'half' has shape \(12, 32, 64\).*grid is \(12, 64, 64\)"
    ):
        session.manage(wrong, image)
    stray = Labels(np.zeros((12, 64, 64), np.uint8))
    with pytest.raises(InputError, match="not managed by napari-clinlabel"):
        session.edit_labels(stray, np.array([0]), 1, tool="grow")
    assert path.read_bytes() == before


def test_a_log_of_another_image_is_refused(tmp_path):
    viewer = ViewerModel()
    first = add_ct(viewer, tmp_path)
    get_session(viewer).labels_layer_for(first)
    path = get_session(viewer).log_path_for(first)
    before = path.read_bytes()
    other_viewer = ViewerModel()
    other = add_ct(other_viewer, tmp_path, shape=(12, 64, 48))  # same file name, other voxels
    with pytest.raises(LogError, match="belongs to another image"):
        get_session(other_viewer).labels_layer_for(other)
    assert path.read_bytes() == before and len(other_viewer.layers) == 1


def test_edit_labels_is_one_undoable_record_with_its_source(tmp_path):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    src = {"kind": "model", "name": "unet", "version": "1.0", "sha256": "cd" * 32}
    idx = np.ravel_multi_index(([1, 1, 1], [2, 2, 3], [3, 4, 4]), labels.data.shape)
    rec = session.edit_labels(
        labels, idx, 4, tool="accept", action="proposal.accept", source=src, data={"p": 1}
    )
    assert rec["action"] == "proposal.accept" and rec["source"]["name"] == "unet"
    assert rec["data"]["voxels"] == 3 and rec["data"]["p"] == 1 and labels.data[1, 2, 3] == 4
    labels.undo()
    assert not labels.data.any()
    assert list(iter_records(session.log_path_for(image)))[-1]["data"]["undoes"] == rec["seq"]


def test_a_roster_beside_the_image_names_and_limits_the_actor(tmp_path, monkeypatch):
    # signed by its owner: an unsigned roster grants nothing beyond annotator
    write_roster(tmp_path, {"dr_b": ["adjudicator"]}, names={"dr_b": "Dr B"})
    monkeypatch.setenv("CLINLABEL_USER", "dr_b")
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    assert session.actor.role == "annotator"  # no image yet: nothing restricts it
    session.labels_layer_for(image)
    assert session.actor == Actor("dr_b", "Dr B", "adjudicator")
    assert session.roles_available(image) == ["adjudicator"]
    recs = list(iter_records(session.log_path_for(image)))
    assert {r["actor"]["role"] for r in recs} == {"adjudicator"}
    with pytest.raises(PermissionRefused, match="may act as adjudicator, not 'annotator'"):
        session.set_actor(Actor("dr_b", "Dr B", "annotator"))


def test_one_logged_label_array_is_edited_in_one_layer(tmp_path):
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    twin = add_ct(viewer, tmp_path)  # the same image opened twice: one log, one array
    session = get_session(viewer)
    labels = session.labels_layer_for(image)
    assert session.labels_layer_for(twin) is labels
    path = session.log_path_for(image)
    before = path.read_bytes()
    other = viewer.add_labels(np.zeros((12, 64, 64), np.uint8), name="segmentation [2]")
    with pytest.raises(InputError, match="already edited in layer 'segmentation'"):
        session.manage(other, twin, name="segmentation")
    assert path.read_bytes() == before and session.recorder_for(other) is None


def test_opening_an_image_is_logged_without_any_widget_action(make_napari_viewer, tmp_path):
    """With the plugin's session running, File > Open itself is an image.open record (once)."""
    import SimpleITK as sitk

    from napari_clinlabel.core.image.samples import mammogram_phantom
    from napari_clinlabel.core.log.audit_log import iter_records, sidecar_paths

    vol = mammogram_phantom()
    path = tmp_path / "mg.nrrd"
    sitk.WriteImage(vol.to_itk(), str(path))
    viewer = make_napari_viewer()
    session = get_session(viewer)
    (layer,) = viewer.open(str(path), plugin="napari-clinlabel")
    records = list(iter_records(sidecar_paths(path)[0]))
    assert [r["action"] for r in records] == ["image.open"]
    assert records[0]["actor"]["id"] == session.actor.id
    session.log_for(layer)  # a widget asking for the log later adds nothing
    assert len(list(iter_records(sidecar_paths(path)[0]))) == 1


def test_the_owner_named_only_in_owner_table_acts_as_owner(tmp_path, monkeypatch):
    """A roster whose owner has no [[users]] entry: opening an image beside it as the owner takes
    her role 'owner' (no KeyError on the missing entry); the log verifies that role."""
    write_roster(tmp_path, {"ann": ["annotator"]}, owner="olga")
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    viewer = ViewerModel()
    image = add_ct(viewer, tmp_path)
    session = get_session(viewer)
    session.log_for(image)
    assert session.actor == Actor("olga", "olga", "owner")
    assert session.roles_available(image) == ["owner"]
    recs = list(iter_records(session.log_path_for(image)))
    assert {r["actor"]["role"] for r in recs} == {"owner"}
