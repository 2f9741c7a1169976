"""The three annotation widgets open from napari's plugin menu (npe2 manifest) and share the
viewer's session even though napari hands each one a proxy of the viewer."""

from __future__ import annotations

from napari_clinlabel._widgets.grading import GradingWidget
from napari_clinlabel._widgets.lesion_boxes import LesionBoxWidget
from napari_clinlabel._widgets.tile_grading import TileGradingWidget
from napari_clinlabel.glue.session import get_session


def test_open_from_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    widgets = []
    for name, cls in (
        ("Lesion boxes", LesionBoxWidget),
        ("Grading", GradingWidget),
        ("Tile grading", TileGradingWidget),
    ):
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", name)
        assert isinstance(widget, cls)
        widgets.append(widget)
    assert all(w._session is get_session(viewer) for w in widgets)
