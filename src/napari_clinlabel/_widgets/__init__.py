"""Thin napari dock widgets: each translates layer events and clicks into one core call."""
