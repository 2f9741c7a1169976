"""PHI guard: opening DICOM that holds PHI warns (or, by dataset policy, refuses) and offers deid.

:func:`check_layer_for_phi` is called on layer insertion (by the session/reader glue). It scans the
layer's DICOM source with :func:`core.phi_scan.scan_path`; when anything is found it logs a
``phi.warning`` record (field names and counts only, never values) and shows a napari warning
with a one-click "De-identify to a new folder…" action. With ``[policy] phi = "refuse"`` in the
roster it removes the image instead, so nothing can be annotated on identified data. The action
de-identifies the series (PS3.15 Basic Profile) into a new folder, logs a ``deid`` record, and
opens the de-identified copy.
"""

from __future__ import annotations

import secrets
import string
from collections import Counter
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.privacy.phi_scan import Finding, scan_path

DEID_ACTION = "De-identify to a new folder…"
POLICIES = ("warn", "refuse")


def _meta(layer: Any) -> dict[str, Any]:
    return dict((getattr(layer, "metadata", None) or {}).get("clinlabel") or {})


def phi_policy(source: str | Path) -> str:
    """The dataset's PHI policy from the roster (``[policy] phi``): "warn" (default) or "refuse"."""
    from napari_clinlabel.core.log.identity import find_roster

    roster = find_roster(source)
    policy = str((roster.policy if roster else {}).get("phi", "warn")).lower()
    if policy not in POLICIES:
        raise ClinlabelError(
            f'{roster.path if roster else "roster"}: [policy] phi = {policy!r}; use "warn" or '
            '"refuse".'
        )
    return policy


def _summary(findings: list[Finding]) -> dict[str, Any]:
    fields = Counter(f.where.split(" (")[0].split("[")[0] for f in findings)
    return {
        "findings": len(findings),
        "files": len({f.display for f in findings}),
        "fields": sorted(fields),
    }


def _log(layer: Any, action: str, data: dict[str, Any]) -> None:
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import current_actor
    from napari_clinlabel.glue.session import image_sha256

    meta = _meta(layer)
    src = meta["source_path"]
    image = {"uid": meta.get("series_uid"), "sha256": image_sha256(layer)}
    log = AuditLog.for_image(src, image, current_actor(src))
    try:
        log.append(action, {"image_source": "dicom"}, data)
    finally:
        log.close()


def _notify(message: str, severity: str, actions: list[tuple[str, Any]]) -> None:
    from napari.utils.notifications import Notification, notification_manager

    notification_manager.dispatch(Notification(message, severity=severity, actions=actions))


def _ask_folder() -> str:
    from qtpy.QtWidgets import QFileDialog

    return QFileDialog.getExistingDirectory(None, "Folder to hold the de-identified copy")


def check_layer_for_phi(viewer: Any, layer: Any, defer_removal: bool = False) -> list[Finding]:
    """Scan a DICOM image layer's source; warn or refuse (roster policy) and log it. Returns findings.

    ``defer_removal`` removes a refused layer on the next event-loop turn (needed when called
    from napari's ``layers.events.inserted``, which selects the layer right after).
    """
    meta = _meta(layer)
    src = meta.get("source_path")
    if not src or not meta.get("series_uid") or not Path(src).exists():
        return []  # not DICOM (NIfTI etc. carry no DICOM attributes once read)
    findings = scan_path(src)
    if not findings:
        return []
    try:
        policy = phi_policy(src)
        _log(layer, "phi.warning", {**_summary(findings), "policy": policy})
    except ClinlabelError as exc:
        _notify(f"PHI check: {exc}", "error", [])
        policy = "refuse"
    action = [(DEID_ACTION, lambda *_: on_deidentify(viewer, layer))]
    head = f"'{layer.name}' holds patient identifiers ({len(findings)} finding(s): " + ", ".join(
        _summary(findings)["fields"][:4]
    )
    if policy == "refuse":

        def remove() -> None:
            if layer in viewer.layers:
                viewer.layers.remove(layer)

        if defer_removal:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, remove)
        else:
            remove()
        _notify(f"{head}…). This dataset's policy refuses annotation of identified data: "
                "de-identify it first.", "error", action)  # fmt: skip
    else:
        _notify(f"{head}…). De-identify before annotating.", "warning", action)
    return findings


def on_deidentify(viewer: Any, layer: Any) -> Path | None:
    """De-identify the layer's source series into a new folder, log ``deid``, open the copy."""
    from napari_clinlabel.core.privacy.deid import deidentify

    meta = _meta(layer)
    parent = _ask_folder()
    if not parent:
        return None
    # letters only: a random hex name sometimes holds seven digits, which the PHI scan of the
    # copy then takes for a record number
    out = Path(parent) / f"deid-{''.join(secrets.choice(string.ascii_lowercase) for _ in range(8))}"
    try:
        report = deidentify(meta["source_path"], out)
        _log(layer, "deid", {
            "files_in": report.files_in, "files_written": report.files_written,
            "skipped": len(report.skipped), "changes": sum(report.actions.values()),
            "private_tags_removed": report.private_removed, "uids_replaced": report.uids_replaced,
            "out_folder": out.name,
        })  # fmt: skip
    except ClinlabelError as exc:
        _notify(f"De-identification failed: {exc}", "error", [])
        return None
    _notify(
        f"De-identified {report.files_written} file(s) into {out}; opening the copy.", "info", []
    )
    try:
        viewer.open(str(out), plugin="napari-clinlabel")
    except Exception as exc:  # noqa: BLE001 - the copy is written; say where it is
        _notify(f"Open {out} to annotate the de-identified copy ({exc}).", "warning", [])
    return out
