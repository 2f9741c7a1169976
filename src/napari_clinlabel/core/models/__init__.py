"""Models: cards, loading (local files only), sliding-window inference and the classical baseline.

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
