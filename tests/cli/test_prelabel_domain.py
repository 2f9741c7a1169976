"""``clinlabel prelabel`` warns before a run on an image outside the model card's input domain,
one line per property, and the card's post-processing keeps the proposals reviewable."""

from __future__ import annotations

import pytest
import SimpleITK as sitk

pytest.importorskip("torch")

from napari_clinlabel.api import session as api_session  # noqa: E402
from napari_clinlabel.cli import main  # noqa: E402
from napari_clinlabel.cli.prelabel import prelabel_one  # noqa: E402
from napari_clinlabel.core.image.samples import ct_phantom_truth  # noqa: E402
from napari_clinlabel.core.log.audit_log import sidecar_paths  # noqa: E402
from napari_clinlabel.core.models.loader import load_model  # noqa: E402
from napari_clinlabel.core.proposals.lifecycle import load_proposals  # noqa: E402


@pytest.fixture
def write(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "rita")
    monkeypatch.setenv("CLINLABEL_ROLE", "annotator")
    monkeypatch.delenv("CLINLABEL_ROSTER", raising=False)

    def _write(shape, name="ct.nii.gz"):
        vol, _truth = ct_phantom_truth(shape=shape, seed=3)
        path = tmp_path / name
        sitk.WriteImage(vol.to_itk(), str(path))
        return path

    return _write


def test_out_of_domain_warns_per_property_and_proposals_stay_bounded(write, capsys):
    # 16 slices × 2.5 mm = 40 mm deep, 320 × 0.8 mm = 256 mm wide: outside the card's
    # field of view on all three axes (card: z 80–180, y/x 100–180 mm)
    path = write((16, 320, 320))
    assert main(["prelabel", str(path), "--model", "builtin:phantom-unet", "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    warn = [ln for ln in err if "warning: outside builtin:phantom-unet's input domain" in ln]
    assert any(ln.endswith("field of view along z is 40 mm, trained on 80–180") for ln in warn)
    assert any("field of view along y is 256 mm" in ln for ln in warn)
    assert any("field of view along x is 256 mm" in ln for ln in warn)
    assert len(warn) == 3  # spacing and median intensity are inside: not named
    card = load_model("builtin:phantom-unet", device="cpu", verify=False).card
    props = load_proposals(sidecar_paths(path)[0])
    voxel_mm3 = 2.5 * 0.8 * 0.8
    mins = card.postprocess["min_component_mm3"]
    by_name: dict[str, int] = {}
    for p in props:
        by_name[p.name] = by_name.get(p.name, 0) + 1
        assert p.payload["voxels"] * voxel_mm3 >= mins[p.name]
    for organ in card.postprocess["largest_component"]:
        assert by_name.get(organ, 0) <= 1
    assert by_name.get("lesion", 0) <= card.postprocess["max_components"]["lesion"] == 10
    assert len(props) <= 15  # was 33 (28 lesions) before the card's post-processing


def test_warning_comes_before_the_run_and_none_in_domain(write, monkeypatch):
    seen = []
    real = api_session.run_model

    def spy(volume, model):
        seen.append(("run", len(warnings)))
        return real(volume, model)

    monkeypatch.setattr(api_session, "run_model", spy)
    warnings: list[str] = []
    res = prelabel_one(str(write((16, 320, 320))), "builtin:phantom-unet", "cpu",
                       warn=warnings.append)  # fmt: skip
    assert seen == [("run", 3)] and res["warnings"] == warnings
    warnings.clear()
    res = prelabel_one(str(write((40, 144, 144), "in.nii.gz")), "builtin:phantom-unet", "cpu",
                       warn=warnings.append)  # fmt: skip
    assert warnings == [] and res["warnings"] == []
