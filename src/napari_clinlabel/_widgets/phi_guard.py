"""PHI guard: tells the user what the session's PHI check decided, and offers to de-identify.

The session (``glue.session``) scans each opened DICOM image, applies the roster's policy
(``core.privacy.policy``: warn, or refuse annotation) and logs ``phi.warning`` through its own
log; it then emits :attr:`Session.phi_checked`. This module only listens: a napari warning (or
error, for a refused image, which it also removes from the viewer) with a one-click
"De-identify to a new folder…" action. The action asks for a folder and the PS3.15 options
(retain dates shifted per patient, patient characteristics, device identity; clean burned-in
text), has the session de-identify the series and log ``deid`` (options included), and opens the
copy in place of the original layer.

Importing this module connects it to every session (``_widgets/__init__`` imports it, so
docking any widget brings the guard).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from napari.utils.notifications import Notification, notification_manager
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QLabel, QVBoxLayout

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.privacy.deid import DeidOptions
from napari_clinlabel.core.privacy.phi_scan import Finding
from napari_clinlabel.glue.session import PhiCheck, Session, get_session, on_new_session

DEID_ACTION = "De-identify to a new folder…"
_ATTACHED: weakref.WeakSet[Session] = weakref.WeakSet()


def _notify(message: str, severity: str, actions: list[tuple[str, Any]]) -> None:
    notification_manager.dispatch(Notification(message, severity=severity, actions=actions))


def _ask_folder() -> str:
    return QFileDialog.getExistingDirectory(None, "Folder to hold the de-identified copy")


OPTION_LABELS = (
    ("retain_temporal", "Retain dates, shifted by a secret offset per patient (intervals kept)"),
    ("retain_patient_chars", "Retain patient characteristics (sex, age, size, weight…)"),
    ("retain_device", "Retain device identity (serial numbers, station names)"),
    ("clean_pixels", "Blank burned-in text found by OCR (otherwise such images are refused)"),
)


def _ask_options() -> DeidOptions | None:
    """The PS3.15 options, chosen in a dialog (all off: the Basic Profile); None on Cancel."""
    dialog = QDialog()
    dialog.setWindowTitle("De-identification options")
    layout = QVBoxLayout(dialog)
    layout.addWidget(QLabel("PS3.15 Basic Profile, with these options:"))
    boxes = {}
    for name, text in OPTION_LABELS:
        boxes[name] = QCheckBox(text)
        layout.addWidget(boxes[name])
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                               | QDialogButtonBox.StandardButton.Cancel)  # fmt: skip
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)
    if not dialog.exec():
        return None
    return DeidOptions(**{name: box.isChecked() for name, box in boxes.items()})


def attach(session: Session) -> None:
    """Show every PHI check of ``session`` (called for each session; attaching twice is a no-op)."""
    if session in _ATTACHED:
        return
    _ATTACHED.add(session)
    ref = weakref.ref(session)
    session.phi_checked.connect(lambda check: _on_phi_checked(ref(), check))


def _on_phi_checked(session: Session | None, check: PhiCheck) -> None:
    viewer = session.viewer if session is not None else None
    if viewer is None or (check.repeat and not check.refused):
        return  # warned once per image, not again for a layer derived from it
    layer = check.layer
    action = [(DEID_ACTION, lambda *_: on_deidentify(viewer, layer))]
    if check.decision is None:
        _notify(f"PHI check: {check.error}", "error", [])
        fields = ""
    else:
        fields = ", ".join(check.decision.fields[:4])
    head = f"'{layer.name}' holds patient identifiers ({len(check.findings)} finding(s): {fields}"
    if check.refused:
        _remove(viewer, layer, later=check.inserting)
        _notify(f"{head}…). This dataset's policy refuses annotation of identified data: "
                "de-identify it first.", "error", action)  # fmt: skip
    else:
        _notify(f"{head}…). De-identify before annotating.", "warning", action)


def _remove(viewer: Any, layer: Any, later: bool) -> None:
    def remove() -> None:
        if layer in viewer.layers:
            viewer.layers.remove(layer)

    if later:  # napari selects an inserted layer right after its inserted event
        QTimer.singleShot(0, remove)
    else:
        remove()


def check_layer_for_phi(viewer: Any, layer: Any, defer_removal: bool = False) -> list[Finding]:
    """Have the viewer's session PHI-check ``layer`` (warn or refuse, logged); the findings.

    ``defer_removal`` removes a refused layer on the next event-loop turn (needed when called
    from napari's ``layers.events.inserted``, which selects the layer right after).
    """
    check = get_session(viewer).check_phi(layer, inserting=defer_removal)
    return [] if check is None else list(check.findings)


def on_deidentify(viewer: Any, layer: Any) -> Path | None:
    """Ask for a folder and the options; the session de-identifies the layer's series there
    and logs ``deid``; the copy is opened in place of the original layer."""
    parent = _ask_folder()
    if not parent:
        return None
    options = _ask_options()
    if options is None:
        return None
    try:
        out, report = get_session(viewer).deidentify(layer, parent, options)
    except ClinlabelError as exc:
        _notify(f"De-identification failed: {exc}", "error", [])
        return None
    refused = (
        f"; {len(report.skipped)} file(s) refused (burned-in text or unreadable: see "
        f"{out.name}/deid-report.json)"
        if report.skipped
        else ""
    )
    if not report.files_written:
        _notify(f"Nothing de-identified into {out}{refused}.", "error", [])
        return out
    _notify(f"De-identified {report.files_written} file(s) into {out}{refused}; the copy "
            "replaces the original.", "warning" if refused else "info", [])  # fmt: skip
    try:
        viewer.open(str(out), plugin="napari-clinlabel")
    except Exception as exc:  # noqa: BLE001 - the copy is written; say where it is
        _notify(f"Open {out} to annotate the de-identified copy ({exc}).", "warning", [])
        return out
    if layer in viewer.layers:  # the identified original goes once the copy is open
        viewer.layers.remove(layer)
    return out


on_new_session(attach)
