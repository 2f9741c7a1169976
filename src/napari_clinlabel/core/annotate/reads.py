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

from napari_clinlabel.core.errors import PermissionRefused
from napari_clinlabel.core.log.identity import Actor, Roster

READS_BASE = "segmentation"  # the base name of the readers' own arrays
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


def records_adjudicated(records: Iterable[dict[str, Any]], grades: Iterable[str] = ()) -> bool:
    """True when the records hold an ``adjudicate`` record signed with meaning ``adjudication``
    (that chose a final value for each scale in ``grades``, when given)."""
    needed = set(grades)
    adjudications: set[str] = set()
    for rec in records:
        data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
        if rec.get("action") == "adjudicate":
            decided = data.get("grades") or {}
            if isinstance(decided, dict) and needed <= set(decided):
                adjudications.add(rec.get("hash"))
        elif rec.get("action") == "sign" and data.get("meaning") == "adjudication":
            target = rec.get("target") if isinstance(rec.get("target"), dict) else {}
            if target.get("hash") in adjudications:
                return True
    return False


def hidden_reader(
    arrays: dict[str, LabelArray], name: str, actor_id: str, base: str = READS_BASE
) -> str | None:
    """The reader whose read array ``name`` (of ``base``) is when it is not ``actor_id``'s own
    (else None: the actor's own read, nobody's yet, or not a reader's array)."""
    arr = arrays.get(name)
    if arr is None or not is_of_base(name, base) or arr.first_editor in (None, actor_id):
        return None
    return arr.first_editor


def readers_in(records: Iterable[dict[str, Any]], base: str = READS_BASE) -> set[str]:
    """Ids of the readers who keep an array of ``base`` in these records (made or changed it)."""
    people: set[str] = set()
    for arr in label_arrays(records).values():
        if is_of_base(arr.name, base):
            people.update(p for p in (arr.maker, arr.first_editor) if p is not None)
    return people


def shared_by_readers(records: Iterable[dict[str, Any]], base: str = READS_BASE) -> bool:
    """Whether two or more readers keep arrays of ``base`` in these records (a shared log,
    where who asks decides what they may see)."""
    return len(readers_in(records, base)) > 1


def _blinded(actor: Actor, readers: set[str]) -> bool:
    """Whether blinding concerns ``actor`` here: they read this image themselves, or several
    readers did (someone outside a single read, e.g. a researcher, is no reader to blind)."""
    return actor.id in readers or len(readers) > 1


def readable_arrays(
    records: list[dict[str, Any]],
    actor: Actor,
    roster: Roster | None,
    readers: set[str] | None = None,
) -> tuple[list[str], str | None]:
    """The labels arrays ``actor`` may read in ``records`` (in order of first appearance) and
    why they may read the other readers' (None: only their own and nobody's). ``readers``: the
    image's readers when more logs than these records tell (default: these records')."""
    arrays = label_arrays(records)
    readers = readers_in(records) if readers is None else readers
    why = may_see_other_reads(actor, roster, records_adjudicated(records))
    if why is not None or not _blinded(actor, readers):
        return list(arrays), why
    return [n for n in arrays if hidden_reader(arrays, n, actor.id) is None], None


def require_readable(
    records: list[dict[str, Any]],
    name: str,
    actor: Actor,
    roster: Roster | None,
    where: str,
    nothing: str = "Nothing was exported.",
    readers: set[str] | None = None,
) -> None:
    """Refuse (:class:`PermissionRefused`, one line) array ``name`` when it is another
    reader's read that ``actor`` may not see yet (``readers`` as for :func:`readable_arrays`)."""
    arrays = label_arrays(records)
    if hidden_reader(arrays, name, actor.id) is None:
        return
    if not _blinded(actor, readers_in(records) if readers is None else readers):
        return
    if may_see_other_reads(actor, roster, records_adjudicated(records)) is None:
        raise PermissionRefused(
            f"{where}: {actor.id!r} acts as {actor.role}; labels {name!r} are another reader's "
            "read, hidden until the image is adjudicated (a reviewer or adjudicator may see "
            f"them). {nothing}"
        )


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
    "READS_BASE",
    "VIEW_ROLES",
    "LabelArray",
    "is_of_base",
    "label_arrays",
    "hidden_reader",
    "may_see_other_reads",
    "readable_arrays",
    "readers_in",
    "records_adjudicated",
    "require_readable",
    "shared_by_readers",
    "other_readers",
    "own_labels_name",
    "reader_array_name",
    "reads_notice",
]
