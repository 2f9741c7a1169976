"""The trust checks of a log: who may act as what, and whose signatures hold.

The verifier (:mod:`.verify`, :mod:`.checks`) proves the chain: bytes, order, fields, objects.
Everything about *trust* is decided here, in three places the verifier calls:

- :meth:`Trust.check_record`, in seq order, after the record's chain and field checks passed,
  for a run's first record, whenever the actor changes, and for every record whose action is in
  :attr:`Trust.actions` (``sign``): the actor's role against the roster, and each signature.
  Raise :class:`.checks.Broken` to fail the log at that seq; append to ``run.warnings`` to warn.
- :meth:`Trust.begin_chunk`, when a big log is checked in chunks side by side (separate
  processes): called in the chunk's process with seq 0's record before its first line, so
  state pinned by the first record is known there too.
- :meth:`Trust.finish`, once, after the whole chain, with the report and every record's hash:
  checks against heads kept outside the log belong here. It may fail the report
  (``report.fail(seq, reason)``) or add warnings (``report.warn``).

Per-chunk findings that :meth:`finish` needs travel in ``run.notes`` (``(seq, value)`` pairs,
picklable); only those before the first bad seq reach :meth:`finish`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from napari_clinlabel.core.log.checks import Broken, Run, check_head
from napari_clinlabel.core.log.identity import Roster

if TYPE_CHECKING:
    from napari_clinlabel.core.log.verify import VerifyReport

MEANINGS = ("review", "approval", "adjudication")


class Trust:
    """Roles and signatures, checked against a roster and extra public keys (either optional).

    Without a roster or keys a signature is checked against the key it carries only (reported
    as a warning at the end); with them, a signature by a key not listed for its signer fails.
    A role the roster does not grant is a warning (once per user and role).
    """

    def __init__(
        self, roster: Roster | None = None, public_keys: Mapping[str, Any] | None = None
    ) -> None:
        self.registry: dict[str, set[str]] | None = None
        if roster is not None or public_keys is not None:
            self.registry = {}
            for uid, u in roster.users.items() if roster else ():
                keys = [u.get("public_key")] + list(u.get("public_keys") or [])
                self.registry.setdefault(uid, set()).update(k for k in keys if k)
            for uid, keys in (public_keys or {}).items():
                keys = [keys] if isinstance(keys, str) else list(keys)
                self.registry.setdefault(uid, set()).update(keys)
        self.roster = roster if roster is not None and roster.users else None
        self.warned: set[tuple[str, str]] = set()
        self._actor_ok: Any = None
        self.actions = frozenset({"sign"})  # records check_record sees whoever acts

    def fresh(self) -> Trust:
        """A copy for checking another chunk: same settings, nothing warned yet."""
        other = copy.copy(self)
        other.warned, other._actor_ok = set(), None
        return other

    # -- the verifier's hooks ----------------------------------------------------------------
    def begin_chunk(self, first: dict[str, Any]) -> None:
        """Called in a chunk's process with seq 0's record before the chunk's first line."""

    def check_record(self, rec: dict[str, Any], seq: int, run: Run) -> None:
        """The trust checks of one record (its chain and fields already hold). Called for a
        run's first record, when the actor changes, and for each action in :attr:`actions`."""
        actor = rec["actor"]
        if actor != self._actor_ok:
            self.check_role(actor, seq, run)
            self._actor_ok = actor
        if rec["action"] == "sign":
            self.check_sign(rec, seq, run)

    def finish(self, report: VerifyReport, hashes: Sequence[str], runs: Sequence[Run]) -> None:
        """After the whole chain: ``hashes`` by seq (the valid records'), ``runs`` the chunks."""
        unregistered = sum(r.unregistered for r in runs)
        if report.ok and unregistered:
            report.warn(f"{unregistered} signature(s) checked against the key they carry only; "
                        "pass a roster to check whose keys they are")  # fmt: skip

    # -- the checks ------------------------------------------------------------------------
    def check_role(self, actor: dict[str, Any], seq: int, run: Run) -> None:
        """Warn (once per user and role) about actors the roster does not grant that role."""
        who = (actor["id"], actor["role"])
        if self.roster is None or who in self.warned:
            return
        if actor["role"] not in self.roster.roles_of(actor["id"]):
            self.warned.add(who)
            run.warnings.append((seq, who, f"seq {seq}: {actor['id']!r} acted as {actor['role']}, "
                                           "which the roster does not grant (now)"))  # fmt: skip

    def check_sign(self, rec: dict[str, Any], seq: int, run: Run) -> None:
        """A ``sign`` record: meaning, target and head in this chain, signature, key."""
        from napari_clinlabel.core.log.signing import (  # cryptography only when a log signs
            verify_signature,
        )

        d = rec["data"]
        if d.get("meaning") not in MEANINGS:
            raise Broken(f"sign meaning {str(d.get('meaning'))[:40]!r} is not one of "
                         f"{', '.join(MEANINGS)}")  # fmt: skip
        target = check_head(rec["target"], run, "sign target", seq)
        if check_head(d.get("head"), run, "sign head", seq) < target:
            raise Broken("sign head is before the record it signs")
        key = d.get("public_key")
        if type(key) is not str or type(d.get("signature")) is not str:
            raise Broken("sign record lacks signature or public_key")
        if not verify_signature(rec, key):
            raise Broken(f"signature by {rec['actor']['id']!r} does not verify (key {key[:16]}…)")
        if self.registry is None:
            run.unregistered += 1
        elif key not in self.registry.get(rec["actor"]["id"], ()):
            raise Broken(f"sign by {rec['actor']['id']!r} uses key {key[:16]}…, which the roster "
                         "does not list for that user")  # fmt: skip
        run.signed.append(seq)
