"""Loading models: TorchScript + card from local files; bad files give clear errors."""

from __future__ import annotations

import hashlib
import json

import pytest

torch = pytest.importorskip("torch")

from napari_clinlabel.core.errors import ModelError  # noqa: E402
from napari_clinlabel.core.models.loader import load_model, resolve_device  # noqa: E402


class TinySeg(torch.nn.Module):
    def __init__(self, c_in: int = 1, n_cls: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(c_in, n_cls, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def card(n_cls=3, c_in=1, **kw):
    d = {
        "name": "tiny",
        "version": "0.1",
        "task": "segmentation",
        "in_channels": c_in,
        "patch_size": [8, 16, 16],
        "input_spacing": None,
        "normalization": {"kind": "zscore"},
        "classes": [{"index": 0, "name": "background"}]
        + [{"index": i, "label": i, "name": f"organ {i}"} for i in range(1, n_cls)],
    }
    d.update(kw)
    return d


def save(tmp_path, module, card_data, name="tiny.pt", card_name=None):
    pt = tmp_path / name
    torch.jit.script(module).save(str(pt))
    if card_data is not None:
        (tmp_path / (card_name or name + ".json")).write_text(json.dumps(card_data))
    return pt


def test_loads_scripted_model_with_identity(tmp_path):
    torch.manual_seed(0)
    pt = save(tmp_path, TinySeg(), card())
    m = load_model(str(pt), device="cpu")
    assert m.identity.name == "tiny" and m.identity.version == "0.1"
    assert m.identity.sha256 == hashlib.sha256(pt.read_bytes()).hexdigest()
    assert m.device == "cpu" and m.is_torch and m.card.n_classes == 3
    y = m.module(torch.zeros(1, 1, 8, 16, 16))
    assert tuple(y.shape) == (1, 3, 8, 16, 16)


def test_card_beside_without_pt_suffix_and_explicit_card(tmp_path):
    pt = save(tmp_path, TinySeg(), card(), card_name="tiny.json")
    assert load_model(pt, device="cpu").card.name == "tiny"
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps(card(name="renamed")))
    assert load_model(pt, device="cpu", card=other).identity.name == "renamed"


def test_garbage_bytes(tmp_path):
    pt = tmp_path / "junk.pt"
    pt.write_bytes(b"\x00not a zip at all" * 50)
    (tmp_path / "junk.pt.json").write_text(json.dumps(card()))
    with pytest.raises(ModelError, match="not a TorchScript model") as exc:
        load_model(pt, device="cpu")
    assert str(pt) in str(exc.value)


def test_truncated_and_empty_and_state_dict(tmp_path):
    pt = save(tmp_path, TinySeg(), card())
    data = pt.read_bytes()
    pt.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a TorchScript model"):
        load_model(pt, device="cpu")
    pt.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        load_model(pt, device="cpu")
    torch.save(TinySeg().state_dict(), pt)
    with pytest.raises(ModelError, match="state dict"):
        load_model(pt, device="cpu")


def test_missing_file_and_missing_card(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "absent.pt", device="cpu")
    pt = save(tmp_path, TinySeg(), None)
    with pytest.raises(ModelError, match="no model card found") as exc:
        load_model(pt, device="cpu")
    assert "--card" in str(exc.value)


def test_wrong_channels(tmp_path):
    pt = save(tmp_path, TinySeg(c_in=1), card(c_in=3))
    with pytest.raises(ModelError, match=r"in_channels=3") as exc:
        load_model(pt, device="cpu")
    assert str(pt) in str(exc.value)


def test_wrong_classes(tmp_path):
    pt = save(tmp_path, TinySeg(n_cls=3), card(n_cls=5))
    with pytest.raises(ModelError, match="outputs 3 classes but the card lists 5"):
        load_model(pt, device="cpu")


def test_unknown_builtin_and_devices():
    with pytest.raises(ModelError, match="no such built-in"):
        load_model("builtin:nope")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ModelError, match="use auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="no CUDA device"):
            resolve_device("cuda")


def test_builtin_baseline_identity_is_stable():
    a, b = load_model("builtin:baseline"), load_model("builtin:baseline")
    assert a.identity == b.identity and a.identity.name == "baseline" and not a.is_torch
    assert len(a.identity.sha256) == 64


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loads_onto_cuda(tmp_path):
    pt = save(tmp_path, TinySeg(), card())
    m = load_model(pt, device="cuda")
    assert m.device == "cuda"
    assert next(m.module.parameters()).is_cuda
