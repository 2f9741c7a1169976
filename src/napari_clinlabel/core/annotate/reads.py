"""Each reader's own labels in a shared log: whose labels array is whose, who may see the others.

Readers of one image in one folder share the image's sidecar log. Each reader keeps their own
labels array in it: the first reader's array keeps the plain name (``segmentation``: its reader
is whoever first changed it; an array nobody changed yet is no one's read), every later reader's is
``segmentation (<reader id>)``.
A reader's labels layer is restored from their own array only, so another reader's read never
becomes their starting point and their strokes never land on it. Until the image is adjudicated
only a reviewer, an adjudicator or the dataset's owner may see the other reads
(:func:`may_see_other_reads`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from napari_clinlabel.core.log.identity import Actor, Roster

VIEW_ROLES = ("reviewer", "adjudicator")  # roles that may see other readers' reads


@dataclass(frozen=True)
class LabelArray:
    """One labels array of a log: its name, who made it and who edited it."""

    name: str
    maker: str | None  # actor id of the first record naming it (its labels.create)
    editors: frozenset[str]  # actor ids of the records that changed it (create excluded)
    first_editor: str | None = None  # whose read it is (None: nobody changed it yet)


def reader_array_name(base: str, reader_id: str) -> str:
    """The name of ``reader_id``'s own array when another reader made ``base`` first."""
    return f"{base} ({reader_id})"


def label_arrays(records: Iterable[dict[str, Any]]) -> dict[str, LabelArray]:
    """Every labels array the records name, in order of first appearance."""
    makers: dict[str, str | None] = {}
    editors: dict[str, set[str]] = {}
    first: dict[str, str] = {}
    for rec in records:
        target = rec.get("target")
        name = target.get("labels") if isinstance(target, dict) else None
        if not isinstance(name, str):
            continue
        actor = (rec.get("actor") or {}).get("id")
        actor = None if actor is None else str(actor)
        makers.setdefault(name, actor)
        edits = editors.setdefault(name, set())
        if rec.get("action") != "labels.create" and actor is not None:
            edits.add(actor)
            first.setdefault(name, actor)
    return {n: LabelArray(n, makers[n], frozenset(editors[n]), first.get(n)) for n in makers}


def is_of_base(name: str, base: str) -> bool:
    """Whether array ``name`` is a reader's array of ``base`` (``base`` or ``base (<id>)``)."""
    return name == base or (name.startswith(f"{base} (") and name.endswith(")"))


def own_labels_name(records: Iterable[dict[str, Any]], base: str, reader_id: str) -> str:
    """The array ``reader_id`` works on: ``base`` unless it is another reader's read (someone
    else changed it first), else ``base (<reader id>)``."""
    arrays = label_arrays(records)
    mine = reader_array_name(base, reader_id)
    if mine in arrays:
        return mine
    first = arrays.get(base)
    taken = first is not None and first.first_editor not in (None, reader_id)
    return mine if taken else base


def other_readers(records: Iterable[dict[str, Any]], base: str, reader_id: str) -> list[str]:
    """Ids of the other readers whose array of ``base`` holds at least one edit (their read)."""
    out = {
        arr.first_editor
        for arr in label_arrays(records).values()
        if is_of_base(arr.name, base) and arr.first_editor not in (None, reader_id)
    }
    return sorted(str(r) for r in out)


def may_see_other_reads(actor: Actor, roster: Roster | None, adjudicated: bool) -> str | None:
    """Why ``actor`` may see other readers' reads (after adjudication; as a reviewer, an
    adjudicator or the owner of a signed roster), or None: an annotator may not before
    adjudication."""
    if adjudicated:
        return "the image is adjudicated"
    if actor.role in VIEW_ROLES:
        return f"your role ({actor.role}) may see them"
    owner = roster.owner if roster is not None and roster.signed else None
    if owner and owner.get("id") == actor.id:
        return "you own this dataset's roster"
    return None


def reads_notice(others: list[str], why_visible: str | None) -> str | None:
    """One line telling a reader about the other reads (None when there are none);
    ``why_visible`` from :func:`may_see_other_reads`."""
    if not others:
        return None
    n = len(others)
    head = f"{n} other read{'s' if n > 1 else ''} of this image exist{'s' if n == 1 else ''}"
    if why_visible is None:
        return f"{head}; {'it stays' if n == 1 else 'they stay'} hidden until adjudication."
    return (
        f"{head} ({', '.join(others)}): {why_visible}, in the Adjudication widget; this layer "
        "holds your own read only."
    )


__all__ = [
    "VIEW_ROLES",
    "LabelArray",
    "is_of_base",
    "label_arrays",
    "may_see_other_reads",
    "other_readers",
    "own_labels_name",
    "reader_array_name",
    "reads_notice",
]
