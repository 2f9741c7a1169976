"""One verification for every reader of a log: ``clinlabel log verify``, ``clinlabel report``
and the API check a log the same way, roster and witnesses included, and say which authority
(which roster, signed by which owner) they used."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from napari_clinlabel.core.log.identity import Roster, find_roster
from napari_clinlabel.core.log.trust import Trust
from napari_clinlabel.core.log.verify import VerifyReport, verify_against_anchors


def verify_trusted(
    path: str | os.PathLike[str],
    roster: Roster | None = None,
    *,
    find: bool = True,
    witnesses: Sequence[str | os.PathLike[str]] = (),
    anchors: Sequence[Mapping[str, Any]] = (),
    check_objects: bool = True,
    workers: int | None = None,
) -> tuple[VerifyReport, Trust]:
    """Verify a log: chain, objects, roles and signatures against ``roster`` (when None and
    ``find``: ``CLINLABEL_ROSTER`` or the roster beside the log), every witnessed head of the log
    (plus the files in ``witnesses``) and ``anchors``. Returns the report and the trust checks
    (``trust.authority()`` says which roster and owner were used)."""
    if roster is None and find:
        roster = find_roster(path)
    trust = Trust(roster, log_path=path, witnesses=witnesses, enforce=True)
    report = verify_against_anchors(path, list(anchors), trust=trust,
                                    check_objects=check_objects, workers=workers)  # fmt: skip
    return report, trust


def summary_line(report: VerifyReport, trust: Trust) -> str:
    """``valid: …`` or ``broken at seq N: …``, then the authority and the witnesses checked."""
    seen = f"; {trust.witnessed} witnessed head(s) checked" if trust.witnessed else ""
    return f"{report.summary()}; authority: {trust.authority()}{seen}"


__all__ = ["summary_line", "verify_trusted"]
