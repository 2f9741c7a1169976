"""Thin napari dock widgets: each translates layer events and clicks into one core call."""

# every dock widget brings the PHI guard: it shows each session's PHI checks (see phi_guard)
from napari_clinlabel._widgets import phi_guard  # noqa: F401
