"""A reviewer's decision on a completed read, recorded in the read's own log: **approve** (a
``sign`` record, meaning ``approval``, by the existing signing code: the reviewer's key, the
roster's grant) or **return with comments** (a ``review.return`` record; the read counts as in
progress again until its reader marks it done anew)."""

from __future__ import annotations

from typing import Any

from napari_clinlabel.core.errors import InputError
from napari_clinlabel.core.log.audit_log import AuditLog
from napari_clinlabel.core.log.signing import sign_head
from napari_clinlabel.core.programme.reads import COMPLETED, RETURN, read_state


def _require_completed(log: AuditLog) -> None:
    st = read_state(log.path)
    if st.status != COMPLETED:
        raise InputError(
            f"{log.path.name}: the read is {st.status}, not completed; only a completed read is "
            "reviewed. Nothing was recorded."
        )


def approve(log: AuditLog) -> dict[str, Any]:
    """Sign the read's head with meaning ``approval`` (reviewer or adjudicator only)."""
    _require_completed(log)
    return sign_head(log, "approval")


def return_read(log: AuditLog, reader: str, comment: str) -> dict[str, Any]:
    """Send the read back to ``reader`` with ``comment`` (required)."""
    comment = " ".join(comment.split())
    if not comment:
        raise InputError(
            "returning a read needs a comment saying what to change; nothing was recorded"
        )
    _require_completed(log)
    return log.append(RETURN, {"read": reader}, {"comment": comment})


__all__ = ["approve", "return_read"]
