"""Load a model from a local file (never the network): TorchScript + card, or a built-in.

``load_model("builtin:baseline")`` is the classical scikit-image detector;
``load_model("builtin:phantom-unet")`` the small UNet shipped in the package;
``load_model("/path/model.pt")`` a TorchScript file with its card at ``/path/model.pt.json`` (or
``/path/model.json``, or ``card=``). The sha256 of the exact bytes loaded is the model's identity.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ModelError
from napari_clinlabel.core.models.baseline import BaselineDetector
from napari_clinlabel.core.models.card import ModelCard, ModelIdentity, load_card

BUILTIN_MODELS = ("baseline", "phantom-unet", "phantom-interactive")
_SHIPPED = {"phantom-unet": "phantom_unet.pt", "phantom-interactive": "phantom_interactive.pt"}


@dataclass
class LoadedModel:
    """A model ready to run: its card, identity, device and the callable network (or detector)."""

    card: ModelCard
    identity: ModelIdentity
    device: str
    module: Any  # torch.jit.ScriptModule / nn.Module, or a BaselineDetector
    spec: str = ""

    @property
    def is_torch(self) -> bool:
        """True for a torch network (False for the classical baseline)."""
        return not hasattr(self.module, "detect")


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` or ``"cpu"`` for ``auto|cpu|cuda`` (``cuda:N`` too); errors when CUDA is absent."""
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    dev = (device or "auto").strip().lower()
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        return "cpu"
    if dev == "cuda" or dev.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(
                "--device cuda: no CUDA device is available here (torch "
                f"{torch.__version__}); use --device cpu or auto."
            )
        return dev
    raise ModelError(f"--device {device!r}: use auto, cpu or cuda.")


def load_model(
    spec: str | os.PathLike[str],
    device: str = "auto",
    card: str | os.PathLike[str] | None = None,
    verify: bool = True,
) -> LoadedModel:
    """Load ``builtin:NAME`` or a local TorchScript file with its card; ``verify`` runs one probe patch.

    Raises :class:`ModelError` for a missing/garbage file, a missing or bad card, or a network whose
    input channels or output classes differ from its card.
    """
    text = str(spec)
    if text.startswith("builtin:"):
        name = text.split(":", 1)[1]
        if name == "baseline":
            det = BaselineDetector()
            return LoadedModel(det.card, det.identity, "cpu", det, text)
        if name not in _SHIPPED:
            raise ModelError(
                f"{text}: no such built-in model; use one of "
                f"{', '.join('builtin:' + n for n in BUILTIN_MODELS)} or a .pt file."
            )
        ref = resources.files("napari_clinlabel") / "models" / _SHIPPED[name]
        with resources.as_file(ref) as path:
            return _load_torchscript(Path(path), device, card, verify, text)
    return _load_torchscript(Path(text), device, card, verify, text)


def card_for(spec: str | os.PathLike[str], card: str | os.PathLike[str] | None = None) -> ModelCard:
    """The card of ``builtin:NAME`` or a model file, read without loading the network (no torch)."""
    text = str(spec)
    if text == "builtin:baseline":
        return BaselineDetector().card
    if text.startswith("builtin:"):
        name = text.split(":", 1)[1]
        if name not in _SHIPPED:
            raise ModelError(f"{text}: no such built-in model.")
        ref = resources.files("napari_clinlabel") / "models" / _SHIPPED[name]
        with resources.as_file(ref) as path:
            return load_card(_card_path(Path(path), card))
    return load_card(_card_path(Path(text), card))


def _card_path(model_path: Path, card: str | os.PathLike[str] | None) -> Path:
    if card is not None:
        return Path(card)
    for cand in (model_path.with_name(model_path.name + ".json"), model_path.with_suffix(".json")):
        if cand.is_file():
            return cand
    raise ModelError(
        f"{model_path}: no model card found (looked for {model_path.name}.json and "
        f"{model_path.with_suffix('.json').name}); write one beside the model or pass --card."
    )


def _load_torchscript(
    path: Path, device: str, card: str | os.PathLike[str] | None, verify: bool, spec: str
) -> LoadedModel:
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: model file not found; check the path.") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a TorchScript model file.") from None
    except OSError as exc:
        raise ModelError(f"{path}: model file cannot be read ({exc.strerror}).") from None
    model_card = load_card(_card_path(path, card))
    if not data:
        raise ModelError(f"{path}: model file is empty (0 bytes); copy the model again.")
    dev = resolve_device(device)
    try:
        with (
            warnings.catch_warnings()
        ):  # torch ≥ 2.9 flags TorchScript as deprecated; still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(io.BytesIO(data), map_location=dev)
    except Exception:  # torch raises RuntimeError/ValueError/zipfile errors for non-TorchScript
        raise ModelError(
            f"{path}: not a TorchScript model (corrupt, truncated, or a plain state dict); export "
            "it with torch.jit.script(model).save(path)."
        ) from None
    module.eval()
    identity = ModelIdentity(model_card.name, model_card.version, hashlib.sha256(data).hexdigest())
    loaded = LoadedModel(model_card, identity, dev, module, spec)
    if verify:
        check_model_io(loaded, where=str(path))
    return loaded


def check_model_io(model: LoadedModel, where: str = "model") -> None:
    """Run one zero patch through the network; its channels and classes must match the card."""
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    c = model.card
    x = torch.zeros((1, c.in_channels, *c.patch_size), device=model.device)
    if c.task == "interactive":
        _check_interactive_io(model, x, where)
        return
    try:
        with torch.inference_mode():
            y = model.module(x)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{where}: the network does not accept the card's input (in_channels={c.in_channels}, "
            f"patch_size={list(c.patch_size)}): {msg}; fix the card or the model."
        ) from None
    if isinstance(y, tuple | list | dict):
        raise ModelError(f"{where}: the network must return one tensor, not {type(y).__name__}.")
    expected_spatial = tuple(c.patch_size) if c.task != "grading" else ()
    if y.ndim < 2 or y.shape[1] != c.n_classes:
        raise ModelError(
            f"{where}: the network outputs {y.shape[1] if y.ndim > 1 else '?'} classes but the card "
            f"lists {c.n_classes}; fix the card's 'classes' or use the matching model."
        )
    if expected_spatial and tuple(y.shape[2:]) != expected_spatial:
        raise ModelError(
            f"{where}: the network's output grid {tuple(y.shape[2:])} differs from its input "
            f"patch {expected_spatial}; a segmentation model must keep the grid."
        )


def _check_interactive_io(model: LoadedModel, x: Any, where: str) -> None:
    """An interactive network takes (image, points, labels, box) and returns (1, 1|2, *patch)."""
    import torch  # lazy: torch takes seconds to import; only running a model needs it

    c, dev, nd = model.card, model.device, len(model.card.patch_size)
    mid = [(n - 1) / 2 for n in c.patch_size]
    args = (
        x,
        torch.tensor([mid], dtype=torch.float32, device=dev),
        torch.ones(1, dtype=torch.int64, device=dev),
        -torch.ones((2, nd), dtype=torch.float32, device=dev),
    )
    try:
        with torch.inference_mode():
            y = model.module(*args)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{where}: the interactive network does not take (image (1, {c.in_channels}, "
            f"{', '.join(map(str, c.patch_size))}), points (N, {nd}), labels (N,), box (2, {nd})): "
            f"{msg}; export it with that forward signature (README: interactive models)."
        ) from None
    if not hasattr(y, "shape") or tuple(y.shape) not in (
        (1, 1, *c.patch_size),
        (1, 2, *c.patch_size),
    ):
        got = tuple(y.shape) if hasattr(y, "shape") else type(y).__name__
        raise ModelError(
            f"{where}: the interactive network returns {got}, not (1, 1, *patch_size) logits or "
            "(1, 2, *patch_size) scores; fix the model or its card's patch_size."
        )
