"""Models: cards, loading (local files only), sliding-window inference and the classical baseline.

Re-exported here: ``card`` (:class:`ModelCard` and its parts, :func:`load_card`) and ``loader``
(:func:`load_model`, :class:`LoadedModel`, :func:`resolve_device`, ``BUILTIN_MODELS``). Used as
modules: ``run`` (a loaded model on a Volume → proposal drafts), ``inference`` (Gaussian-blended
sliding window), ``baseline`` (``builtin:baseline``, no weights), ``unet`` (the phantom 3D UNet).
torch is imported lazily inside these modules, so importing ``napari_clinlabel.core`` stays light.
"""

from napari_clinlabel.core.models.card import (
    ModelCard,
    ModelClass,
    Normalization,
    card_from_dict,
    load_card,
)
from napari_clinlabel.core.models.loader import (
    BUILTIN_MODELS,
    LoadedModel,
    ModelIdentity,
    load_model,
    resolve_device,
)

__all__ = [
    "BUILTIN_MODELS",
    "LoadedModel",
    "ModelCard",
    "ModelClass",
    "ModelIdentity",
    "Normalization",
    "card_from_dict",
    "load_card",
    "load_model",
    "resolve_device",
]
