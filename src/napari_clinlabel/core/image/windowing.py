"""CT window/level presets (Hounsfield units) and the display range they give.

A window is (level, width): grey levels run linearly from ``level - width/2`` (black) to
``level + width/2`` (white), DICOM's "LINEAR_EXACT" VOI function (PS3.3 C.11.2.1.3.2).
"""

from __future__ import annotations

from napari_clinlabel.core.errors import InputError

# (level, width) in HU. Source: Radiopaedia, "Windowing (CT)" (Murphy A, Baba Y et al.,
# https://radiopaedia.org/articles/windowing-ct), typical values: head brain W:80 L:40,
# subdural W:130-300 L:50-100 (mid-range taken: W:215 L:75), stroke W:40 L:40, chest lungs
# W:1500 L:-600, mediastinum W:350 L:50, abdomen soft tissues W:400 L:50, liver W:150 L:30,
# bone W:1800 L:400. Order = the keys 1-8 of the Reading aids widget.
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
}


def window_limits(level: float, width: float) -> tuple[float, float]:
    """Display range ``(level - width/2, level + width/2)``; refuses a width ≤ 0."""
    if not width > 0:
        raise InputError(f"window width must be > 0 HU (got {width}); choose a positive width.")
    return (float(level) - float(width) / 2.0, float(level) + float(width) / 2.0)


def preset_limits(name: str) -> tuple[float, float]:
    """Display range of the preset ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"unknown window preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return window_limits(*PRESETS[name])


__all__ = ["PRESETS", "preset_limits", "window_limits"]
