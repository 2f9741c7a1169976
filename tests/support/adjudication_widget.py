"""Set-up shared by the Adjudication widget tests: the user's role and a signed roster, reader logs
of the image on the viewer, the docked widget with its error reports kept, and loading logs by
typing them and clicking *Load*, as a user does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt

from napari_clinlabel._widgets.adjudication import AdjudicationWidget
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.glue.session import get_session, image_sha256
from support.agreement_fixtures import write_reader_log
from support.trusted_roster import write_roster


def act_as(
    monkeypatch: Any, folder: Path, user: str, role: str, roles: dict[str, list[str]]
) -> None:
    """Act as ``user`` in ``role``; ``roles`` go into an owner-signed roster in ``folder``."""
    monkeypatch.setenv("CLINLABEL_USER", user)
    monkeypatch.setenv("CLINLABEL_ROLE", role)
    write_roster(folder, roles)


def write_reads(
    image: Any,
    folder: Path,
    file_name: str,
    reads: dict[str, np.ndarray],
    grades: dict[str, dict[str, str]] | None = None,
    schema: Any = None,
) -> list[Path]:
    """Each reader's log of ``image`` (its sha256 and grid) at ``folder/READER/file_name``.

    ``reads`` maps reader → label array; ``grades`` (reader → {scale: value}) are set under
    ``schema``. Returns the log paths in the order of ``reads``.
    """
    geom = Geometry.from_dict(image.metadata["clinlabel"]["geometry"])
    sha = image_sha256(image)
    logs = []
    for reader, labels in reads.items():
        (folder / reader).mkdir()
        logs.append(write_reader_log(folder / reader / file_name, labels, reader, image_sha=sha,
                                     geom=geom, grades=(grades or {}).get(reader),
                                     schema=schema))  # fmt: skip
    return logs


def dock_adjudication(viewer: Any, monkeypatch: Any) -> tuple[AdjudicationWidget, list[str]]:
    """The Adjudication widget docked in ``viewer``, and the list its error reports land in."""
    widget = AdjudicationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    errors: list[str] = []
    monkeypatch.setattr(get_session(viewer), "report_error", lambda exc: errors.append(str(exc)))
    return widget, errors


def load_logs(qtbot: Any, widget: AdjudicationWidget, logs: list[Any]) -> None:
    """Type the log paths (``;``-separated) into the widget and click *Load*."""
    qtbot.keyClicks(widget._logs, ";".join(map(str, logs)))
    qtbot.mouseClick(widget._load, Qt.MouseButton.LeftButton)
