"""A log written through the Python API holds the same actions and data as one written through
napari's session for the same actions (apart from times, hashes, object digests and random ids).

The napari side is driven as the widgets drive it: the session opens the image's log
(``image.open``), makes the managed ``segmentation`` layer (``labels.create``) and edits it
(``edit_labels``); boxes and grades go through core under the widget's schema (as
``_widgets._common.logging_under`` does); proposals are logged as the Pre-label widget logs them
and decided as the Review widget decides them (``core.accept/edit/reject`` on the layer's data).
"""

from __future__ import annotations

import numpy as np
import pytest
from napari.components import ViewerModel

from napari_clinlabel import api
from napari_clinlabel._reader import read_layers
from napari_clinlabel.core.annotate.boxes import LesionBox, add_box
from napari_clinlabel.core.annotate.grading import grade_item, set_grade
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log
from napari_clinlabel.core.models.loader import load_model
from napari_clinlabel.core.models.run import run_model
from napari_clinlabel.core.proposals import lifecycle
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.layers import volume_from_layer
from napari_clinlabel.glue.session import get_session

QUALITY = """id: ct-quality
version: "1.0.0"
title: CT image quality
signed_off_by: {name: test board, date: "2026-12-01"}
scales:
  quality:
    name: Diagnostic image quality
    kind: ordinal
    per: image
    values:
      - {value: "1", key: "1", label: "Non-diagnostic"}
      - {value: "2", key: "2", label: "Diagnostic"}
"""
BOX = {"cls": "malignant", "confidence": 4, "attributes": {"margin": "spiculated"}}
LO, HI = (9.5, 40.5, 50.5), (14.5, 60.5, 72.5)


def _paint_cells(shape):
    """Two strokes: a block of liver (label 1) and part of it erased (0)."""
    block = np.zeros(shape, bool)
    block[20:24, 60:90, 40:70] = True
    erase = np.zeros(shape, bool)
    erase[22:24, 60:70, 40:50] = True
    return block, erase


def _decide(proposals):
    """The same human choices on both sides: accept the first, edit the second, reject the rest."""
    return {
        p.id: ("accept", "edit", *("reject",) * len(proposals))[i] for i, p in enumerate(proposals)
    }


def _edited_mask(mask):
    """The edit: the proposal without its first slice."""
    out = mask.copy()
    out[np.nonzero(mask.any(axis=(1, 2)))[0][0]] = False
    return out


@pytest.fixture
def actor(monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ana")
    for var in ("CLINLABEL_ROSTER", "CLINLABEL_ROLE"):
        monkeypatch.delenv(var, raising=False)
    return api.Actor("ana", "ana", "annotator")


def _through_napari(folder, quality_path):
    path = api.write_sample("ct", folder)
    viewer = ViewerModel()
    data, kwargs, _ = read_layers(str(path))[0]
    image = viewer.add_image(data, **kwargs)
    session = get_session(viewer)
    abdomen = load_schema("abdomen-ct")
    session.set_schema(image, abdomen)  # the Segmentation widget's choice
    log = session.log_for(image)
    labels = session.labels_layer_for(image, "segmentation")
    block, erase = _paint_cells(labels.data.shape)
    session.edit_labels(labels, np.flatnonzero(block), 1, tool="script")
    session.edit_labels(labels, np.flatnonzero(erase), 0, tool="script")
    volume = volume_from_layer(image)
    box = LesionBox(LO, HI, created_by=log.actor.id, **BOX)
    add_box(log, box, volume, abdomen)  # the lesion schema is the session's here
    quality = load_schema(quality_path)
    session.set_schema(image, quality)  # what logging_under does around a grade
    scale = quality.scales["quality"]
    set_grade(log, scale, "2", item=grade_item(scale, volume.meta.get("study_uid")))
    session.set_schema(image, abdomen)
    model = load_model("builtin:baseline")
    props = lifecycle.add_proposals(
        log, run_model(volume, model), model, labels_name="segmentation"
    )
    for p in props:
        choice = _decide(props)[p.id]
        if choice == "accept":
            lifecycle.accept(log, p, labels.data, "segmentation")
        elif choice == "edit":
            mask = _edited_mask(lifecycle.proposal_mask(log, p))
            lifecycle.edit(log, p, labels.data, "segmentation", np.flatnonzero(mask))
        else:
            lifecycle.reject(log, p)
    return session.log_path_for(image)


def _through_api(folder, quality_path, actor):
    path = api.write_sample("ct", folder)
    with api.open_image(path, actor, schema="abdomen-ct") as image:
        block, erase = _paint_cells(image.shape)
        image.paint(block, 1)
        image.paint(erase, 0)
        image.add_box(LO, HI, **BOX)
        image.set_grade("quality", "2", schema=quality_path)
        props = image.prelabel("builtin:baseline")
        for p in props:
            choice = _decide(props)[p.id]
            if choice == "accept":
                image.accept(p)
            elif choice == "edit":
                image.edit(p, mask=_edited_mask(image.proposal_mask(p)))
            else:
                image.reject(p)
        return image.log_path


def _comparable(log_path):
    """Records without time, chain, object digests; random ids replaced by their order."""
    ids: dict[str, str] = {}

    def norm(obj, key=None):
        if isinstance(obj, dict):
            return {k: norm(v, k) for k, v in obj.items() if k != "objects"}
        if isinstance(obj, list):
            return [norm(v) for v in obj]
        if key in ("proposal", "box", "id") and isinstance(obj, str):
            return ids.setdefault(obj, f"#{len(ids)}")
        return obj

    drop = ("time", "hash", "prev", "seq")
    return [norm({k: v for k, v in r.items() if k not in drop}) for r in iter_records(log_path)]


def test_api_log_holds_the_records_napari_writes(tmp_path, actor):
    quality = tmp_path / "ct-quality.yaml"
    quality.write_text(QUALITY)
    napari_log = _through_napari(tmp_path / "napari", quality)
    api_log = _through_api(tmp_path / "api", quality, actor)

    ours, theirs = _comparable(api_log), _comparable(napari_log)
    actions = [r["action"] for r in theirs]
    assert actions[:5] == ["image.open", "labels.create", "label.paint", "label.paint", "box.add"]
    assert {"grade.set", "proposal.add", "proposal.accept", "proposal.edit"} <= set(actions)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert a == b
    for log in (api_log, napari_log):
        assert verify_log(log).ok
    # both replay to the same labels, and the API's view of them is the replayed one
    np.testing.assert_array_equal(
        replay_labels(api_log).labels["segmentation"],
        replay_labels(napari_log).labels["segmentation"],
    )
