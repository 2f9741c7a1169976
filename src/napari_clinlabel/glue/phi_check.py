"""PHI checks of one session's images: one scan, one decision and one ``phi.warning`` per image.

Qt-free. The session owns one :class:`PhiChecks`. It decides by the roster's policy
(``core.privacy.policy``) and records through the session's own log (the ``open_log`` it is
given), never a log of its own; an image whose check refused annotation then gets no log to
annotate into (:meth:`PhiChecks.refusal`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError, LogError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.identity import Roster
from napari_clinlabel.core.privacy.phi_scan import Finding, scan_path
from napari_clinlabel.core.privacy.policy import PHI_WARNING, TARGET, PhiDecision, decide


@dataclass(frozen=True)
class PhiCheck:
    """The PHI scan of one image layer as the session decided and logged it.

    ``decision`` is None when the policy could not be applied (``error`` says why); annotation
    is then refused too. ``inserting``: the layer is being added right now, so a listener that
    removes a refused layer must wait for the next event-loop turn. ``repeat``: the image was
    already checked through another layer (e.g. the labels layer derived from it): the user was
    told once, per image.
    """

    layer: Any
    findings: list[Finding] = field(repr=False)
    decision: PhiDecision | None
    error: str | None = None
    inserting: bool = False
    repeat: bool = False

    @property
    def refused(self) -> bool:
        """True when nothing may be annotated on this image."""
        return self.decision is None or self.decision.refused


_Outcome = tuple[list[Finding], PhiDecision | None, str | None]  # findings, decision, error


class SharedBlockLogError(LogError):
    """An even block of an unevenly spaced series whose folder log belongs to another block:
    it is shown, but nothing of it can be logged (the session says how to annotate it)."""


class PhiChecks:
    """The PHI checks of one session (by image digest and by layer)."""

    def __init__(
        self,
        open_log: Callable[[Any], AuditLog],
        roster_for: Callable[[Any], Roster | None],
    ) -> None:
        self._open_log = open_log
        self._roster_for = roster_for
        self._by_image: dict[str, _Outcome] = {}
        self._by_layer: dict[int, PhiCheck] = {}
        self._clean: set[str] = set()  # images scanned without findings (never scanned again)
        self._logged: dict[str, PhiDecision] = {}  # source -> decision its phi.warning records
        self._shared: set[str] = set()  # blocks whose files' phi.warning another block logged

    def known(self, layer: Any) -> PhiCheck | None:
        """The check already made for ``layer`` (None when it was never checked)."""
        check = self._by_layer.get(id(layer))
        return check if check is not None and check.layer is layer else None

    def check(self, layer: Any, sha: str, source: str, inserting: bool) -> PhiCheck | None:
        """Scan ``source`` once per image, decide and log; the layer's check (None: clean).

        A second layer of an already checked image (the labels layer derived from it) gets the
        same outcome marked ``repeat``: nothing is scanned or logged again.
        """
        if sha in self._clean:
            return None
        repeat = sha in self._by_image
        if not repeat:
            findings = scan_path(source)
            if not findings:
                self._clean.add(sha)
                return None
            self._by_image[sha] = self._decide(layer, findings, source, sha)
        findings, decision, error = self._by_image[sha]
        repeat = repeat or sha in self._shared  # the same files' warning was already told
        check = PhiCheck(layer, findings, decision, error, inserting, repeat)
        self._by_layer[id(layer)] = check
        return check

    def refusal(self, sha: str) -> str | None:
        """Why annotation of image ``sha`` is refused, or None when it is not."""
        outcome = self._by_image.get(sha)
        if outcome is None:
            return None
        _findings, decision, error = outcome
        if decision is not None and not decision.refused:
            return None
        return error or "this dataset's policy refuses annotation of identified data"

    def _decide(self, layer: Any, findings: list[Finding], source: str, sha: str) -> _Outcome:
        """Apply the roster's policy and log ``phi.warning``; a failure refuses (and says why).

        A block of an uneven series whose folder log is another block's: the ``phi.warning`` of
        these same files is already in that log, so the block keeps that decision (it is shown,
        and gets no log of its own: :class:`SharedBlockLogError`)."""
        try:
            decision = decide(findings, self._roster_for(layer))
        except ClinlabelError as exc:
            return findings, None, f"its PHI policy cannot be read ({exc})"
        assert decision is not None  # decide() gives None only for no findings
        try:
            self._open_log(layer).append(PHI_WARNING, dict(TARGET), decision.record_data())
        except SharedBlockLogError as exc:
            logged = self._logged.get(source)
            if logged is None:
                return findings, None, f"its PHI warning cannot be logged ({exc})"
            self._shared.add(sha)
            return findings, logged, None
        except ClinlabelError as exc:
            return findings, None, f"its PHI warning cannot be logged ({exc})"
        self._logged[source] = decision
        return findings, decision, None


__all__ = ["PhiCheck", "PhiChecks", "SharedBlockLogError"]
