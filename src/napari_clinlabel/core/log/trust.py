"""The trust checks of a log: who may act as what, whose signatures hold, what witnesses saw.

The verifier (:mod:`.verify`, :mod:`.checks`) proves the chain: bytes, order, fields, objects.
Everything about *trust* is decided here, in three places the verifier calls:

- :meth:`Trust.check_record`, once per record that needs it, in seq order, after the record's
  chain and field checks passed: the owner seq 0 pins, the actor's role against the roster, each
  ``sign`` record's signature and each ``adjudicate`` record's readers.
  Raise :class:`.checks.Broken` to fail the log at that seq; append to ``run.warnings`` to warn.
- :meth:`Trust.begin_chunk`, when a big log is checked in chunks side by side (separate
  processes): called in the chunk's process with seq 0's record before its first line, so
  state pinned by the first record (the log's identity, its owner) is known there too.
- :meth:`Trust.finish`, once, after the whole chain, with the report and every record's hash:
  the witnessed heads (:mod:`.witness`) are checked here.

Authority (DESIGN.md "Authority"): roles come from the roster only when its owner signed it; a
roster the owner did not sign, or no roster, grants nothing beyond annotator. A role not granted
is a failure at the record's seq, not a warning. When seq 0 pins an owner (``data.owner``) the
roster must name that same owner, or the log fails at seq 0. Ids that share a key or ``person``
are one person: an adjudicator who is one of the readers fails the ``adjudicate`` record.

Signatures: a v2 ``sign`` record must carry a binding signature (:mod:`.signing`, ``form``
``clinlabel-sign/2``) over the log's identity, target, meaning, signer, role and time; a v1
record's old signature (over the target hash only) verifies by the old rule with a warning.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_clinlabel.core.log.checks import Broken, Run, check_head
from napari_clinlabel.core.log.identity import Roster
from napari_clinlabel.core.log.signing import SIGNER_ROLES, is_binding, verify_signature
from napari_clinlabel.core.log.witness import check_heads, log_identity, witnessed_heads

MEANINGS = ("review", "approval", "adjudication")
_ROLE_ACTIONS = {"adjudicate": ("adjudicator",)}  # actions only some roles may record


class Trust:
    """Roles, signatures and witnesses, checked against a roster and extra public keys.

    ``roster``: the dataset's. ``enforce`` (default: whether a roster is given) checks roles
    and the pinned owner against it, and with no roster grants nobody more than annotator;
    not enforced, roles are not checked at all (the chain alone, as a plain :func:`verify_log`).
    ``public_keys`` adds keys by user id. ``log_path`` turns on the witness checks (the user's
    and the dataset's witness files, found by themselves) and ``witnesses`` adds files by hand.
    """

    def __init__(
        self,
        roster: Roster | None = None,
        public_keys: Mapping[str, Any] | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        witnesses: Sequence[str | os.PathLike[str]] = (),
        enforce: bool | None = None,
    ) -> None:
        self.registry: dict[str, set[str]] | None = None
        if roster is not None or public_keys is not None:
            self.registry = {}
            for uid in roster.users if roster else ():
                self.registry.setdefault(uid, set()).update(roster.public_keys(uid))
            for uid, keys in (public_keys or {}).items():
                keys = [keys] if isinstance(keys, str) else list(keys)
                self.registry.setdefault(uid, set()).update(keys)
        self.roster = roster
        # authority is enforced whenever a roster is given (clinlabel log verify and report
        # always enforce: no roster then means nobody above annotator); without either, only
        # the chain and the signatures' own keys are checked
        self.enforce = roster is not None if enforce is None else enforce
        self.log_path = None if log_path is None else Path(log_path)
        self.witnesses = list(witnesses)
        self.identity: str | None = None  # seq 0's hash
        self.owner: dict[str, Any] | None = None  # the owner seq 0 pins
        self.witnessed = 0  # heads checked by finish()
        self._actor_ok: Any = None
        self.actions = frozenset({"sign", *_ROLE_ACTIONS})  # records check_record always sees

    def fresh(self) -> Trust:
        """A copy for checking another chunk: same settings, nothing seen yet."""
        other = copy.copy(self)
        other._actor_ok = None
        return other

    def authority(self) -> str:
        """The authority this check uses, in one line."""
        if self.roster is None:
            return "no roster: nobody holds more than annotator"
        return self.roster.authority()

    # -- the verifier's hooks ----------------------------------------------------------------
    def begin_chunk(self, first: dict[str, Any]) -> None:
        """Called in a chunk's process with seq 0's record before the chunk's first line."""
        self._first(first)

    def check_record(self, rec: dict[str, Any], seq: int, run: Run) -> None:
        """The trust checks of one record (its chain and fields already hold). Called for a
        run's first record, when the actor changes, and for each action in :attr:`actions`."""
        if seq == 0:
            self._first(rec)
            if self.enforce:
                self.check_owner()
        actor = rec["actor"]
        if actor != self._actor_ok and self.enforce:
            self.check_role(actor, seq, run)
            self._actor_ok = actor
        action = rec["action"]
        allowed = _ROLE_ACTIONS.get(action)
        if allowed and actor["role"] not in allowed:
            raise Broken(f"{actor['id']!r} recorded {action} as {actor['role']}; only "
                         f"{' or '.join(allowed)} may")  # fmt: skip
        if action == "sign":
            self.check_sign(rec, seq, run)
        elif action == "adjudicate":
            self.check_adjudicate(rec)

    def finish(self, report: Any, hashes: Sequence[str], runs: Sequence[Run]) -> None:
        """After the whole chain: ``report`` the :class:`.verify.VerifyReport` (its ``warn`` and
        ``fail``; not imported: verify imports this), ``hashes`` by seq, ``runs`` the chunks.
        Checks every witnessed head of this log; the earliest departure fails the report."""
        unregistered = sum(r.unregistered for r in runs)
        if report.ok and unregistered:
            report.warn(f"{unregistered} signature(s) checked against the key they carry only; "
                        "pass a roster to check whose keys they are")  # fmt: skip
        if self.log_path is None or not hashes:  # broken at seq 0 already: nothing earlier
            return
        identity, owner = self.identity, self.owner
        if identity is None:  # seq 0 was checked in another process (its record is valid)
            identity, owner = hashes[0], log_identity(self.log_path)[1]
        problems: list[str] = []
        heads = witnessed_heads(self.log_path, identity, self.witnesses, problems)
        for p in problems:
            report.warn(p)
        self.witnessed = len(heads)
        key = owner.get("public_key") if isinstance(owner, dict) else None
        bad = check_heads(heads, hashes, identity, key)
        if bad is not None:
            report.fail(bad[0], bad[1], hashes)

    # -- the checks ------------------------------------------------------------------------
    def _first(self, rec: dict[str, Any]) -> None:
        self.identity = rec.get("hash")
        data = rec.get("data")
        owner = data.get("owner") if isinstance(data, dict) else None
        self.owner = owner if isinstance(owner, dict) else None

    def check_owner(self) -> None:
        """Seq 0 pins an owner: the roster must name that owner (and its key)."""
        if self.owner is None:
            return
        pinned = {"id": self.owner.get("id"), "public_key": self.owner.get("public_key")}
        if self.roster is None or self.roster.owner != pinned:
            where = ("no roster was given or found" if self.roster is None else
                     f"{self.roster.path} names owner "
                     f"{(self.roster.owner or {}).get('id')!r}")  # fmt: skip
            raise Broken(f"the log pins owner {pinned['id']!r} (key "
                         f"{str(pinned['public_key'])[:12]}…) but {where}: verify with the "
                         "dataset's roster signed by that owner")  # fmt: skip

    def check_role(self, actor: dict[str, Any], seq: int, run: Run) -> None:
        """The roster in force must grant the actor's role (annotator needs no roster, but a
        roster that lists users must list the actor)."""
        uid, role = actor["id"], actor["role"]
        if self.roster is None:
            if role != "annotator":
                raise Broken(f"{uid!r} acted as {role}, but no roster signed by its owner grants "
                             "anyone more than annotator here (give --roster)")  # fmt: skip
            return
        if not self.roster.users and role == "annotator":
            return
        if role not in self.roster.roles_of(uid):
            if not self.roster.signed and role in self.roster.listed_roles(uid):
                raise Broken(f"{uid!r} acted as {role}, but {self.roster.authority()}")
            raise Broken(f"{uid!r} acted as {role}, which {self.roster.path} does not grant")

    def check_sign(self, rec: dict[str, Any], seq: int, run: Run) -> None:
        """A ``sign`` record: meaning, signer role, target and head in this chain, the binding
        signature, the signer's key in the roster."""
        d = rec["data"]
        meaning, actor = d.get("meaning"), rec["actor"]
        if meaning not in MEANINGS:
            raise Broken(f"sign meaning {str(meaning)[:40]!r} is not one of "
                         f"{', '.join(MEANINGS)}")  # fmt: skip
        target = check_head(rec["target"], run, "sign target", seq)
        if check_head(d.get("head"), run, "sign head", seq) < target:
            raise Broken("sign head is before the record it signs")
        if self.enforce and actor["role"] not in SIGNER_ROLES[meaning]:
            raise Broken(f"{meaning!r} signed by {actor['id']!r} as {actor['role']}; it needs "
                         f"{' or '.join(SIGNER_ROLES[meaning])}")  # fmt: skip
        key = d.get("public_key")
        if type(key) is not str or type(d.get("signature")) is not str:
            raise Broken("sign record lacks signature or public_key")
        if is_binding(rec):
            if not verify_signature(rec, key, self.identity):
                raise Broken(f"signature by {actor['id']!r} does not verify (key {key[:16]}…): "
                             "its log, record, meaning, signer, role or time changed")  # fmt: skip
        elif rec.get("v", 1) >= 2:
            raise Broken("a v2 sign record without a binding signature (form clinlabel-sign/2)")
        else:
            if not verify_signature(rec, key):
                raise Broken(f"signature by {actor['id']!r} does not verify (key {key[:16]}…)")
            run.warnings.append((seq, "legacy-sign", f"seq {seq}: a v1 signature covers the "
                                 "signed record's hash only; its meaning, signer and role are "
                                 "not bound (re-sign to bind them)"))  # fmt: skip
        if self.registry is None:
            run.unregistered += 1
        elif key not in self.registry.get(actor["id"], ()):
            raise Broken(f"sign by {actor['id']!r} uses key {key[:16]}…, which the roster does "
                         "not list for that user")  # fmt: skip
        run.signed.append(seq)

    def check_adjudicate(self, rec: dict[str, Any]) -> None:
        """An adjudicator is none of the readers it decides between, under any of their ids."""
        reads = (rec.get("data") or {}).get("reads")
        if not isinstance(reads, list):
            return
        me = rec["actor"]["id"]
        for r in reads:
            reader = r.get("reader") if isinstance(r, dict) else None
            if not isinstance(reader, str):
                continue
            if reader == me or (
                self.roster is not None
                and self.roster.person_of(reader) == self.roster.person_of(me)
            ):
                raise Broken(f"adjudicator {me!r} and reader {reader!r} are one person (same "
                             "id, key or person in the roster): nobody adjudicates their own "
                             "read")  # fmt: skip
