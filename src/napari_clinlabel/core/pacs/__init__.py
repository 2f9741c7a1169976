"""DICOMweb: search (QIDO), resumable pull (WADO) and push (STOW) of studies, and a local cache."""

from napari_clinlabel.core.pacs.cache import cache_root, series_folder
from napari_clinlabel.core.pacs.client import (
    PacsConnection,
    PullProgress,
    PullResult,
    PushResult,
    SeriesSummary,
    StudySummary,
    find_series,
    find_studies,
    iter_pull,
    pull,
    pull_series_volumes,
    push,
)

__all__ = [
    "PacsConnection", "PullProgress", "PullResult", "PushResult", "SeriesSummary",
    "StudySummary", "cache_root", "find_series", "find_studies", "iter_pull", "pull",
    "pull_series_volumes", "push", "series_folder",
]  # fmt: skip
