"""Editing tools of the Segmentation widget: each computes a :class:`ToolResult`, never touching a layer.

A result is previewed, then applied as one ``label.paint`` record whose ``source`` is
``{"kind": "tool", "name", "version"}`` (:func:`tool_source`) and whose data carries the tool's
parameters and seeds; cancelling records nothing. :func:`planned_change` turns a result into the
``(indices, old, new)`` change, never over a locked label and never over another label unless
told to.
"""

from napari_clinlabel.core.annotate.tools.result import (
    TOOL_VERSION,
    ToolResult,
    planned_change,
    preview_array,
    tool_source,
)

__all__ = ["TOOL_VERSION", "ToolResult", "planned_change", "preview_array", "tool_source"]
