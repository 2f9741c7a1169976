"""Domain core: geometry, IO, schemas, audit log, proposals, models, metrics, export.

Nothing in this package imports Qt, magicgui or napari (checked by import-linter).
"""
