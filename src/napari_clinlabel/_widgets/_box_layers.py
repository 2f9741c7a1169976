"""The two Shapes layers of the lesion-box widget: editable rectangles and 3D-extent outlines.

"lesions" holds one editable rectangle per box, tagged with its box id (feature ``box_id``) and
labelled ``L<n> <class>``; "lesions 3D extent" (volumes only) holds thin, non-editable outlines on
the other slices of a 3D box. Both sit on the image's world grid. No domain logic: what to draw
comes from core ``annotate.box_view.box_shapes``, what a change means from ``core.annotate.box_edits``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from napari.layers import Image, Shapes

from napari_clinlabel._widgets._common import camera_of, copy_transform
from napari_clinlabel.core.annotate.box_view import BoxShapes

LAYER_NAME = "lesions"
EXTENT_NAME = "lesions 3D extent"


class BoxLayers:
    """Makes, fills and reads the "lesions" (and "lesions 3D extent") layers of one image."""

    def __init__(self, viewer: Any) -> None:
        self._viewer = viewer
        self.layer: Shapes | None = None
        self.extent: Shapes | None = None

    def make(self, image: Image, ndim: int, flat: bool, on_data: Callable[[Any], None],
             on_set_data: Callable[[Any], None], on_highlight: Callable[[Any], None]) -> None:  # fmt: skip
        """Replace the layers by new empty ones on ``image``'s grid (no extent layer if ``flat``)."""
        self.remove()
        # File ▸ Save of "lesions" (the plugin's JSON/CSV/COCO writers) exports the boxes of the
        # image's log: the writers find that image through metadata["clinlabel"]["source_path"]
        src = (image.metadata.get("clinlabel") or {}).get("source_path")
        meta = {"clinlabel": {"source_path": str(src)}} if src else {}
        wanted = (
            ((LAYER_NAME, "layer"),) if flat else ((EXTENT_NAME, "extent"), (LAYER_NAME, "layer"))
        )
        for name, attr in wanted:
            layer = Shapes(
                ndim=ndim,
                name=name,
                features={
                    "box_id": np.array([], dtype=object),
                    "label": np.array([], dtype=object),
                },
                shape_type="rectangle",
                face_color="transparent",
                metadata=meta if name == LAYER_NAME else {},
                edge_width=2 if name == LAYER_NAME else 1,
                opacity=1.0 if name == LAYER_NAME else 0.6,
                **copy_transform(image),
            )
            layer.feature_defaults["box_id"] = ""
            layer.feature_defaults["label"] = ""
            setattr(self, attr, layer)
            self._viewer.add_layer(layer)
        if self.extent is not None:
            self.extent.editable = False
        self.layer.events.data.connect(on_data)
        self.layer.events.set_data.connect(on_set_data)
        self.layer.events.highlight.connect(on_highlight)

    def remove(self) -> None:
        """Take both layers out of the viewer."""
        for layer in (self.extent, self.layer):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)
        self.layer = self.extent = None

    # -- reading ---------------------------------------------------------------------------
    def ids(self) -> list[str]:
        """The box id of each rectangle ("" for one drawn but not recorded yet)."""
        return [] if self.layer is None else [str(v) for v in self.layer.features["box_id"]]

    def rects(self) -> list[tuple[str, np.ndarray]]:
        """``(box id, vertices)`` of every rectangle, in layer order."""
        data = self.layer.data if self.layer is not None else []
        return [(bid, np.asarray(v)) for bid, v in zip(self.ids(), data, strict=True)]

    def verts_of(self, bid: str) -> np.ndarray | None:
        """The vertices of box ``bid``'s rectangle as the layer now holds them (None: not drawn)."""
        ids = self.ids()
        return np.asarray(self.layer.data[ids.index(bid)]) if bid in ids else None

    def selected_id(self) -> str | None:
        """The box id of the one rectangle selected (None when none or several are)."""
        sel = sorted(self.layer.selected_data) if self.layer is not None else []
        ids = self.ids()
        return ids[sel[0]] if len(sel) == 1 and sel[0] < len(ids) else None

    # -- writing ---------------------------------------------------------------------------
    def tag(self, index: int, bid: str) -> None:
        """Give rectangle ``index`` its box id once the box is recorded."""
        features = self.layer.features
        if features["box_id"].dtype != object:
            features["box_id"] = features["box_id"].astype(object)
        features.loc[index, "box_id"] = bid

    def drop(self, indices: list[int]) -> None:
        """Remove the rectangles at ``indices`` (boxes that were refused)."""
        self.layer.remove(indices)

    def select(self, bid: str | None) -> None:
        """Select box ``bid``'s rectangle (None: clear the selection; not drawn: no change)."""
        ids = self.ids()
        if bid is None:
            self.layer.selected_data = set()
        elif bid in ids:
            self.layer.selected_data = {ids.index(bid)}

    def delete(self, bid: str) -> None:
        """Remove box ``bid``'s rectangle as the user would (the layer's data event follows)."""
        ids = self.ids()
        if bid in ids:
            self.layer.remove([ids.index(bid)])

    def draw(self, shapes: BoxShapes, selected: str | None) -> None:
        """Show ``shapes``: rectangles and labels, 3D outlines; keep ``selected`` selected."""
        for layer, data, cols in (
            (self.layer, shapes.rects, shapes.colors),
            (self.extent, shapes.extent, shapes.extent_colors),
        ):
            if layer is None:  # a 2D image has no 3D-extent layer
                continue
            layer.selected_data = set()
            layer.data = []
            if data:
                layer.add_rectangles(data, edge_color=cols, face_color="transparent")
        self.layer.features = {
            "box_id": np.array(shapes.ids, dtype=object),
            "label": np.array(shapes.labels, dtype=object),
        }
        self.layer.feature_defaults["box_id"] = ""
        self.layer.feature_defaults["label"] = ""
        self.layer.text = {"string": "{label}", "color": "yellow", "anchor": "upper_left"}
        if selected in shapes.ids:
            self.layer.selected_data = {shapes.ids.index(selected)}

    def arm_drawing(self) -> None:
        """Select the rectangles layer in rectangle-drawing mode."""
        self._viewer.layers.selection.active = self.layer
        self.layer.mode = "add_rectangle"

    def centre_view_on(self, centre_data: np.ndarray) -> None:
        """Move the viewer's slice and camera to ``centre_data`` (layer data coordinates)."""
        world = np.asarray(self.layer.data_to_world(centre_data), dtype=float)
        dims = self._viewer.dims
        # a layer's axes are the viewer's last ones (a 2D image beside a CT has 2 of 3)
        axes = list(range(dims.ndim - len(world), dims.ndim))
        dims.set_point(axes, world)
        point = np.asarray(dims.point, dtype=float)
        point[axes] = world
        camera_of(self._viewer).center = tuple(point[list(dims.displayed)[-2:]])
