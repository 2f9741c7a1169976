"""Every widget in the manifest docks from the Plugins menu path and shares one session."""

from __future__ import annotations

from pathlib import Path

import npe2
import pytest

MANIFEST = Path(__file__).resolve().parents[2] / "src" / "napari_clinlabel" / "napari.yaml"
WIDGETS = [w.display_name for w in npe2.PluginManifest.from_file(MANIFEST).contributions.widgets]


@pytest.mark.parametrize("name", WIDGETS)
def test_widget_docks_through_napari(make_napari_viewer, name):
    from napari_clinlabel.core.image.samples import ct_phantom
    from napari_clinlabel.glue.layers import volume_to_layer_data
    from napari_clinlabel.glue.session import get_session

    viewer = make_napari_viewer()
    data, kwargs, _ = volume_to_layer_data(ct_phantom(shape=(8, 48, 48)))
    viewer.add_image(data, **kwargs)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-clinlabel", name)
    assert widget is not None
    # napari hands plugin widgets a proxy of the viewer: the session must still be the viewer's
    assert get_session(viewer) is get_session(getattr(widget, "_viewer", viewer))
