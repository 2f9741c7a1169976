"""Where a case's image is on this machine: a file or folder of the dataset, or a PACS series
pulled into the local cache (``$CLINLABEL_WORKSPACE/pacs-cache/<SeriesInstanceUID>``).

The manifest/dataset log holds only the DICOMweb URL and the SeriesInstanceUID of a PACS case;
credentials come from this workstation's environment when the series is pulled
(``CLINLABEL_PACS_USER`` with ``CLINLABEL_PACS_PASSWORD``, or ``CLINLABEL_PACS_TOKEN``), as for
``clinlabel pacs``. A pull resumes: instances already in the cache are not fetched again.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from napari_clinlabel.core.errors import PacsError
from napari_clinlabel.core.pacs import PacsConnection, PullProgress, pull, series_folder

if TYPE_CHECKING:  # typing only: dataset imports nothing from here
    from napari_clinlabel.core.programme.dataset import Case, Dataset


def local_path(ds: Dataset, case: Case) -> Path:
    """The case's image on this machine (for a PACS series: its cache folder, maybe not there yet)."""
    if case.pacs is not None:
        return series_folder(case.pacs["series_uid"])
    p = Path(case.path)
    return p if p.is_absolute() else ds.folder / p


def pacs_connection(url: str) -> PacsConnection:
    """A connection to ``url`` with this workstation's credentials from the environment."""
    user = os.environ.get("CLINLABEL_PACS_USER") or None
    password = os.environ.get("CLINLABEL_PACS_PASSWORD")
    if user and password is None:
        raise PacsError(
            f"CLINLABEL_PACS_USER is {user!r}: set CLINLABEL_PACS_PASSWORD to the password too"
        )
    return PacsConnection(
        url, username=user, password=password if user else None,
        token=os.environ.get("CLINLABEL_PACS_TOKEN") or None,
    )  # fmt: skip


def fetch(ds: Dataset, case: Case, progress: Callable[[PullProgress], None] | None = None) -> Path:
    """The case's image on this machine, pulling a PACS series into the cache first."""
    path = local_path(ds, case)
    if case.pacs is None:
        return path
    pull(pacs_connection(case.pacs["url"]), path.parent, series_uid=case.pacs["series_uid"],
         progress=progress)  # fmt: skip
    return path


__all__ = ["local_path", "pacs_connection", "fetch"]
