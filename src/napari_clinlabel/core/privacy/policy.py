"""What to do when an image about to be annotated holds patient identifiers, and what is logged.

The dataset roster's ``[policy] phi`` says ``"warn"`` (default: annotation may go on, the user is
told and offered de-identification) or ``"refuse"`` (nothing may be annotated on identified data).
A decision is logged as one ``phi.warning`` record holding counts and field names only, never a
value; a de-identified copy as one ``deid`` record holding counts and the new folder's name.
"""

from __future__ import annotations

import secrets
import string
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.identity import Roster
from napari_clinlabel.core.privacy.deid import DeidReport
from napari_clinlabel.core.privacy.phi_scan import Finding

WARN, REFUSE = "warn", "refuse"
POLICIES = (WARN, REFUSE)
PHI_WARNING = "phi.warning"
DEID = "deid"
TARGET = {"image_source": "dicom"}  # the ``target`` of both records


def phi_policy(roster: Roster | None) -> str:
    """The roster's PHI policy: ``"warn"`` (also without a roster) or ``"refuse"``."""
    policy = str((roster.policy if roster else {}).get("phi", WARN)).lower()
    if policy not in POLICIES:
        where = roster.path if roster is not None and roster.path else "roster"
        raise ClinlabelError(f'{where}: [policy] phi = {policy!r}; use "warn" or "refuse".')
    return policy


@dataclass(frozen=True)
class PhiDecision:
    """What a PHI scan found (counts and field names, never values) and the policy applied."""

    policy: str
    findings: int
    files: int
    fields: tuple[str, ...]

    @property
    def refused(self) -> bool:
        """True when annotation of this image is refused."""
        return self.policy == REFUSE

    def record_data(self) -> dict[str, Any]:
        """The ``data`` of the ``phi.warning`` record."""
        return {
            "findings": self.findings,
            "files": self.files,
            "fields": list(self.fields),
            "policy": self.policy,
        }


def decide(findings: list[Finding], roster: Roster | None) -> PhiDecision | None:
    """The decision for an image whose scan gave ``findings`` (None when it found nothing).

    Raises :class:`ClinlabelError` when the roster's policy is not one of :data:`POLICIES`.
    """
    if not findings:
        return None
    fields = Counter(f.where.split(" (")[0].split("[")[0] for f in findings)
    return PhiDecision(
        phi_policy(roster), len(findings), len({f.display for f in findings}), tuple(sorted(fields))
    )


def deid_folder(parent: str | Path) -> Path:
    """A new folder name under ``parent`` for a de-identified copy.

    Letters only: a random hex name sometimes holds seven digits, which the PHI scan of the copy
    then takes for a record number.
    """
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    return Path(parent) / f"deid-{letters}"


def deid_record_data(report: DeidReport, out: str | Path) -> dict[str, Any]:
    """The ``data`` of the ``deid`` record (counts and the new folder's name, no values)."""
    return {
        "files_in": report.files_in,
        "files_written": report.files_written,
        "skipped": len(report.skipped),
        "changes": sum(report.actions.values()),
        "private_tags_removed": report.private_removed,
        "uids_replaced": report.uids_replaced,
        "out_folder": Path(out).name,
        "options": [name for name, on in asdict(report.options).items() if on],
        "codes": [code[0] for code in report.to_dict()["codes"]],
    }


__all__ = [
    "DEID",
    "PHI_WARNING",
    "POLICIES",
    "PhiDecision",
    "decide",
    "deid_folder",
    "deid_record_data",
    "phi_policy",
]
