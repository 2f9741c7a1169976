"""The local cache of series pulled from a PACS: ``$CLINLABEL_WORKSPACE/pacs-cache/<series>/``.

One folder per series, named by its SeriesInstanceUID (never by patient data), so a second open of
the same series reads the files already there and a broken download resumes where it stopped.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_clinlabel.core.pacs.client import check_uid


def cache_root() -> Path:
    """``$CLINLABEL_WORKSPACE/pacs-cache`` (default ``~/.clinlabel/workspace/pacs-cache``)."""
    base = os.environ.get("CLINLABEL_WORKSPACE")
    root = Path(base) if base else Path.home() / ".clinlabel" / "workspace"
    return root / "pacs-cache"


def series_folder(series_uid: str, root: Path | None = None) -> Path:
    """The cache folder of one series (not created)."""
    return (root or cache_root()) / check_uid(series_uid, "Series Instance UID")
