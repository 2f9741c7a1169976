"""May this actor act on this image? The roster in force must grant the user the role.

Used by napari's session and by the Python API before they open a log, so a script cannot act
under a role the dataset's roster does not grant any more than a napari user can.
"""

from __future__ import annotations

from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.log.identity import Actor, Roster, not_granted


def require_granted(roster: Roster | None, actor: Actor) -> None:
    """Raise :class:`PermissionRefused` unless ``roster`` (when it lists users) grants ``actor``'s
    role to ``actor.id``; without a roster its owner signed nobody acts above annotator."""
    if actor.role != "annotator" and (roster is None or not roster.signed):
        raise PermissionRefused(not_granted(roster, actor.id, actor.role))
    if roster is None or not roster.users:
        return
    granted = roster.roles_of(actor.id)
    if not granted:
        raise PermissionRefused(
            f"{roster.path}: user {actor.id!r} is not in the roster; ask the dataset owner to add "
            "you."
        )
    if actor.role not in granted:
        raise PermissionRefused(
            f"{roster.path}: user {actor.id!r} may act as {', '.join(granted)}, not {actor.role!r}."
        )


__all__ = ["require_granted"]
