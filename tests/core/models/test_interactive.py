"""Interactive prompts on the shipped phantom model: a point or a box on an organ of a phantom
it never saw gives a mask that matches the phantom's own truth (Dice), as ONE logged proposal;
bad prompts and wrong models get one clear error each."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("torch")

from napari_clinlabel.core.errors import ClinlabelError, ModelError  # noqa: E402
from napari_clinlabel.core.image.samples import ct_phantom_truth  # noqa: E402
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records  # noqa: E402
from napari_clinlabel.core.log.identity import Actor  # noqa: E402
from napari_clinlabel.core.models.interactive import Prompt, predict_mask, propose  # noqa: E402
from napari_clinlabel.core.models.loader import load_model  # noqa: E402
from napari_clinlabel.core.models.run import run_model  # noqa: E402
from napari_clinlabel.core.proposals.lifecycle import accept, load_proposals  # noqa: E402

SHIPPED = resources.files("napari_clinlabel") / "models" / "phantom_interactive.pt"


@pytest.fixture(scope="module")
def model():
    if not SHIPPED.is_file():
        pytest.skip("phantom_interactive.pt not built (run scripts/train_phantom_interactive.py)")
    return load_model("builtin:phantom-interactive", device="cpu")


@pytest.fixture(scope="module")
def phantom():
    return ct_phantom_truth(seed=9)  # seeds 1–4 trained on; 9 never seen


def _dice(indices, truth_mask):
    m = np.zeros(truth_mask.size, bool)
    m[indices] = True
    t = truth_mask.reshape(-1)
    return 2 * np.logical_and(m, t).sum() / (m.sum() + t.sum())


def _centre(mask):
    """The voxel deepest inside the mask (what a reader clicks: the middle of the organ)."""
    return np.unravel_index(int(np.argmax(ndimage.distance_transform_edt(mask))), mask.shape)


def test_shipped_files_small_card_interactive(model):
    data = SHIPPED.read_bytes()
    assert len(data) < 2_000_000
    assert model.identity.sha256 == hashlib.sha256(data).hexdigest()
    assert model.card.task == "interactive" and model.identity.name == "phantom-interactive"


# measured with the shipped weights: one central point 0.83 / 0.81 (kidneys; only 0.62 spleen and
# 0.09 liver: too few training steps to learn large organs from a point), a tight box 0.85–0.88
@pytest.mark.parametrize(("value", "min_dice"), [(3, 0.75), (4, 0.75)])
def test_one_point_finds_the_organ(model, phantom, value, min_dice):
    vol, truth = phantom
    organ = truth == value  # right, left kidney
    res = predict_mask(vol, model, Prompt.make([_centre(organ)], shape=truth.shape))
    assert res.shape == truth.shape and 0.5 < res.score <= 1
    assert _dice(res.indices, organ) >= min_dice


@pytest.mark.parametrize("value", [1, 2])
def test_box_prompt_finds_the_organ(model, phantom, value):
    vol, truth = phantom
    organ = truth == value  # liver, spleen
    idx = np.argwhere(organ)
    res = predict_mask(vol, model, Prompt.make([], box=[idx.min(0), idx.max(0)], shape=truth.shape))
    assert _dice(res.indices, organ) >= 0.8


def test_propose_logs_one_proposal_then_one_decision(model, phantom, tmp_path):
    vol, truth = phantom
    log = AuditLog(tmp_path / "ct.nii.clinlabel.jsonl", {"uid": None, "sha256": "0" * 64},
                   Actor("rita", "Rita", "annotator"))  # fmt: skip
    idx = np.argwhere(truth == 1)
    prompt = Prompt.make([_centre(truth == 1)], [[2, 2, 2]], [idx.min(0), idx.max(0)], truth.shape)
    p = propose(log, vol, model, prompt, label=1, name="liver", labels_name="segmentation")
    recs = list(iter_records(log.path))
    adds = [r for r in recs if r["action"] == "proposal.add"]
    assert len(adds) == 1 and adds[0]["target"]["proposal"] == p.id
    assert adds[0]["source"] == {"kind": "model", **model.identity.to_dict()}
    assert adds[0]["actor"]["id"] == "rita"
    assert adds[0]["data"]["prompt"]["negative"] == [[2.0, 2.0, 2.0]]
    assert [q.id for q in load_proposals(log.path)] == [p.id]
    labels = np.zeros(truth.shape, np.uint8)
    rec = accept(log, p, labels, "segmentation")
    assert rec["action"] == "proposal.accept" and rec["actor"]["id"] == "rita"
    assert _dice(np.flatnonzero(labels == 1), truth == 1) >= 0.8


@pytest.mark.parametrize(("pos", "neg", "box", "msg"), [
    ([], [], None, "at least one positive point or a box"),
    ([[1, 2]], [], None, "3 coordinates each"),
    ([[0, 0, 900]], [], None, "outside the image"),
    ([[np.nan, 1, 1]], [], None, "3 coordinates each"),
    ([], [], [[0, 0, 0]], "two corners"),
])  # fmt: skip
def test_bad_prompts_one_clear_error(pos, neg, box, msg):
    with pytest.raises(ClinlabelError, match=msg):
        Prompt.make(pos, neg, box, (48, 160, 160))


def test_wrong_model_kinds_refused(model, phantom):
    vol, truth = phantom
    seg = load_model("builtin:phantom-unet", device="cpu")
    with pytest.raises(ModelError, match="interactive prompts need a model card of task"):
        predict_mask(vol, seg, Prompt.make([[20, 80, 80]], shape=truth.shape))
    with pytest.raises(ModelError, match="needs prompts"):
        run_model(vol, model)
