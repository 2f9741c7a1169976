"""``clinlabel demo``: napari with a sample image open from a real file and the widgets docked."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from napari_clinlabel.api import SAMPLE_FILES, write_sample
from napari_clinlabel.core.schema import load_schema

# sample key -> (file name written to the workspace, schema, widgets docked)
DEMOS: dict[str, tuple[str, str | None, tuple[str, ...]]] = {
    "ct": (SAMPLE_FILES["ct"], "abdomen-ct", ("Segmentation", "Lesion boxes")),
    "ct_oblique": (SAMPLE_FILES["ct_oblique"], "abdomen-ct", ("Segmentation", "Lesion boxes")),
    "mammogram": (SAMPLE_FILES["mammogram"], "birads", ("Grading", "Lesion boxes")),
    "fundus": (SAMPLE_FILES["fundus"], "icdr", ("Grading",)),
    "slide": (SAMPLE_FILES["slide"], "isup", ("Tile grading",)),
}
COMMON_WIDGETS = ("Session", "Audit log")
EXTRA_WIDGETS = ("Pre-label", "Review proposals")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    p = sub.add_parser("demo", help="open napari with sample data and the plugin's widgets")
    p.add_argument("--sample", default="ct", choices=sorted(DEMOS), help="sample to open")
    p.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="folder for the sample file and its sidecar log (default: ~/.clinlabel/demo)",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        help="save a screenshot of the window to this PNG and quit (for docs and checks)",
    )
    p.set_defaults(func=run)


def sample_file(key: str, workspace: Path) -> Path:
    """Write sample ``key`` to ``workspace`` once (so its sidecar log has a home) and return it."""
    return write_sample(key, workspace)


# the window the demo opens: fits a 1080p laptop screen with a taskbar and a title bar
WINDOW_SIZE = (1600, 1000)


def run(args: argparse.Namespace) -> int:
    """Start napari with the demo; returns when the window closes."""
    # the GUI stack (napari, Qt and the glue on top of them): only this command opens a window,
    # every other command runs headless and must not need a display
    import napari
    from qtpy.QtCore import QTimer

    workspace = args.workspace or Path(
        os.environ.get("CLINLABEL_DEMO_DIR", Path.home() / ".clinlabel" / "demo")
    )
    viewer = napari.Viewer(title=f"napari-clinlabel demo — {args.sample}")
    set_up(viewer, args.sample, workspace)
    QTimer.singleShot(800, viewer.reset_view)  # fit once the docks and the window size settled
    if args.screenshot is not None:

        def shoot() -> None:
            viewer.screenshot(str(args.screenshot), canvas_only=False)
            viewer.close()

        QTimer.singleShot(1500, shoot)
    napari.run()
    return 0


def set_up(viewer: Any, sample: str, workspace: Path) -> None:
    """Open sample ``sample`` (written to ``workspace``) in ``viewer`` and dock the widgets."""
    # Qt and the glue on top of napari: imported by the GUI path only (see run)
    from qtpy.QtCore import QTimer

    from napari_clinlabel.glue.session import get_session

    path = sample_file(sample, workspace)
    layers = viewer.open(str(path), plugin="napari-clinlabel")
    _file, schema_name, widgets = DEMOS[sample]
    session = get_session(viewer)
    if schema_name:
        for layer in layers:
            session.set_schema(layer, load_schema(schema_name))
    viewer.window.resize(*WINDOW_SIZE)
    # two tab groups on the right: who/what is logged, and the task widgets (first one in front)
    task = (*widgets, *(EXTRA_WIDGETS if sample.startswith("ct") else ()))
    for group in (COMMON_WIDGETS, task):
        docks = [
            viewer.window.add_plugin_dock_widget("napari-clinlabel", name, tabify=i > 0)[0]
            for i, name in enumerate(group)
        ]
        QTimer.singleShot(0, docks[0].raise_)  # after Qt has laid out the tabs
    for layer in layers:  # the image, not the helper layers the widgets add, chooses the view
        viewer.layers.selection.active = layer
