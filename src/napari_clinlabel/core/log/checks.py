"""The per-record checks of format v1 behind :mod:`.log_verify`, as one loop over lines
(:mod:`.log_blocks` feeds it a log block by block).

:func:`scan` checks a run of lines from a given chain state (:class:`Chain`) and records what it
finds in a :class:`Run`: the hashes of the valid records, the first bad seq and why, warnings,
verified signatures, and heads naming records before the run (left to the caller, which holds
those hashes). The checks run in a fixed order within a record, so the reason given for a record
with several faults does not depend on how the log was split.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_clinlabel.core.log.audit_log import GENESIS, MAX_NESTING, nesting
from napari_clinlabel.core.log.identity import ROLES, Roster

if TYPE_CHECKING:
    from napari_clinlabel.core.log.blocks import Batch

FIELDS = frozenset(
    ("v", "seq", "time", "actor", "action", "image", "target", "data", "source", "schema",
     "prev", "hash")
)  # fmt: skip
MEANINGS = ("review", "approval", "adjudication")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_GET = itemgetter("action", "actor", "data", "hash", "image", "prev", "schema", "seq", "source",
                  "target", "time", "v")  # fmt: skip
_ENC = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
MAX_WARNINGS = 20

try:  # optional accelerator: parses the same JSON to the same values, ~3x faster than json
    from orjson import JSONDecodeError as _FastError
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads, _FastError = json.loads, ValueError


# an integer token of 19+ digits (after ``:``, ``[`` or ``,``, before ``,``, ``]`` or ``}``),
# which orjson might read as a float; digit runs inside strings (DICOM UIDs) do not count
_LONG_INT = re.compile(rb"[:\[,]\s*-?\d{19,}\s*[,\]}]")


class _NotFast(Exception):
    """This line is for json's reader, not orjson's."""


def _json_loads(line: bytes) -> Any:
    """A line as json reads it, from UTF-8 only (format v1): no BOM, no UTF-16/32 guessing."""
    try:
        return json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise _Broken("not valid JSON") from None


class _Broken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Chain:
    """Where a run of lines starts: the seq expected next, the previous hash and time, seq 0's
    image (None: the run starts at seq 0)."""

    expected: int = 0
    prev: str = GENESIS
    last_time: str = ""
    image0: Any = None


class HashList:
    """The hashes of consecutive valid records, kept as 64 ASCII bytes each (as the compiled
    checker hands them over); indexing gives ``str``."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes = b"") -> None:
        self.raw = bytearray(raw)

    def append(self, h: str) -> None:
        """Add one record's hash (a sha256 hex digest: 64 ASCII characters)."""
        self.raw += h.encode("ascii")

    def extend_raw(self, raw: bytes) -> None:
        """Add hashes given as 64 ASCII bytes each."""
        self.raw += raw

    def __len__(self) -> int:
        return len(self.raw) // 64

    def __getitem__(self, i: int) -> str:
        n = len(self.raw) // 64
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self.raw[64 * i : 64 * i + 64].decode("ascii")

    def __delitem__(self, cut: slice) -> None:
        if not isinstance(cut, slice) or cut.stop is not None or cut.step is not None:
            raise TypeError("only del hashes[n:] is supported")
        del self.raw[64 * (cut.start or 0) :]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashList) and self.raw == other.raw


@dataclass
class Run:
    """What checking a run of lines found; ``hashes`` holds the valid records' from ``start``."""

    start: int
    hashes: Any = field(default_factory=HashList)  # HashList (bytes when sent by a worker)
    bad_seq: int | None = None
    reason: str = ""
    torn: bool = False
    warnings: list[tuple[int, Any, str]] = field(default_factory=list)  # (seq, dedupe key, text)
    deferred: list[tuple[int, str, int, str]] = field(default_factory=list)  # heads before start
    signed: list[int] = field(default_factory=list)  # seqs of verified signatures
    unregistered: int = 0
    time_warnings: int = 0


def scan(
    lines: list[bytes],
    chain: Chain,
    ctx: Context,
    run: Run,
    batch: Batch | None = None,
) -> bool:
    """Check whole ``lines`` from ``chain`` on, into ``run`` (``chain`` moves past them); False
    at the first bad record. Every record is re-serialised to check its hash. With ``batch``, times and object names are only collected there:
    the caller checks them (``batch.valid()``) and scans again without a batch if they fail."""
    append = run.hashes.append
    times = batch.times.append if batch else None
    digests = batch.digests.extend if batch and batch.digests is not None else None
    expected, prev, last_time, image0 = chain.expected, chain.prev, chain.last_time, chain.image0
    actor_ok: Any = None  # the last actor and source that passed: most records repeat them
    source_ok: Any = None
    loads, fast_error, get = _fast_loads, _FastError, _GET
    long_int, json_loads = _LONG_INT.search, _json_loads
    time_match, hex_match, check_files = _TIME_RE.fullmatch, _HEX64.fullmatch, ctx.check
    for line in lines:
        try:
            if nesting(line) > MAX_NESTING:
                raise _Broken(f"record nests deeper than {MAX_NESTING} levels (not checkable)")
            try:
                if long_int(line):  # orjson would read an int beyond 64 bits as a float
                    raise _NotFast
                rec = loads(line)
            except (fast_error, _NotFast):
                rec = json_loads(line)  # what orjson declines: json's reading decides
            if type(rec) is not dict:
                raise _Broken("not a JSON object")
            try:
                if len(rec) != 12:
                    raise KeyError
                a, actor, d, h, image, p, schema, s, source, target, t, v = get(rec)
            except KeyError:
                raise _Broken(_field_problem(rec)) from None
            if not _canonical_hash_ok(rec, h):
                raise _Broken("hash does not match the record's content (the record was edited)")
            if type(v) is not int or v != 1:
                raise _Broken(f"v is {v!r}, this verifier knows format v1")
            if type(s) is not int or s != expected:
                raise _Broken(f"seq is {s!r}, expected {expected} (a record was deleted, "
                              "inserted or reordered)")  # fmt: skip
            if p != prev:
                raise _Broken("prev is not the previous record's hash (a record before it was "
                              "deleted, edited or reordered)")  # fmt: skip
            if actor != actor_ok:
                _check_actor(actor)
                actor_ok = actor
                ctx.check_roster(actor, s, run)
            if source != source_ok:
                _check_source(source)
                source_ok = source
            if type(a) is not str or not a:
                raise _Broken("action is missing or not a string")
            if image0 is None:
                image0 = _check_image(image)
            elif image != image0:
                raise _Broken("image differs from seq 0's image (records of another image)")
            if type(t) is not str or (times is None and not time_match(t)):
                raise _Broken(f"time {str(t)[:40]!r} is not UTC ISO 8601 (…T…Z)")
            if times is not None:
                times(t)
            if (len(t) != len(last_time) or t < last_time) and _time_key(t, last_time) < _time_key(
                last_time, t
            ):
                if run.time_warnings <= MAX_WARNINGS:
                    run.warnings.append(
                        (s, None, f"seq {s}: time {t} is before the previous record's {last_time}")
                    )
                run.time_warnings += 1
            last_time = t
            if type(d) is not dict:
                raise _Broken("data is not an object")
            if schema is not None and type(schema) is not dict:
                raise _Broken("schema is neither an object nor null")
            if "objects" in d:
                o = d["objects"]
                if check_files or type(o) is not dict:
                    ctx.check_objects(o)
                elif digests is not None:
                    digests(o.values())
                else:  # names only: each a sha256 digest (check_objects says which is not)
                    for digest in o.values():
                        if type(digest) is not str or not hex_match(digest):
                            ctx.check_objects(o)
            if a == "sign":
                ctx.check_sign(rec, run, s)
            elif "head" in d:
                _check_head(d["head"], run, "data.head", s)
        except _Broken as exc:
            run.bad_seq, run.reason = expected, exc.reason
            return False
        except RecursionError:  # json reads and writes nesting only as deep as Python recurses
            run.bad_seq, run.reason = expected, "record nests too deeply to be checked"
            return False
        append(h)
        prev = h
        expected += 1
    chain.expected, chain.prev, chain.last_time, chain.image0 = expected, prev, last_time, image0
    return True


def _field_problem(rec: dict[str, Any]) -> str:
    missing = sorted(FIELDS - rec.keys())
    extra = sorted(rec.keys() - FIELDS)
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(str(e)[:40] for e in extra))
    return "fields: " + "; ".join(parts)


def _canonical_hash_ok(rec: dict[str, Any], h: Any) -> bool:
    """``h`` is the sha256 of the record's canonical JSON (without ``hash``)."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    try:
        canon = _ENC.encode(body).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise _Broken("record cannot be written as canonical JSON") from None
    return type(h) is str and hashlib.sha256(canon).hexdigest() == h


def _check_actor(actor: Any) -> None:
    if type(actor) is not dict:
        raise _Broken("actor is missing: every record names a human")
    if type(actor.get("id")) is not str or not actor["id"]:
        raise _Broken("actor has no id")
    if type(actor.get("name")) is not str:
        raise _Broken("actor has no name")
    if actor.get("role") not in ROLES:
        raise _Broken(f"actor role {actor.get('role')!r} is not one of {', '.join(ROLES)}")


def _check_source(src: Any) -> None:
    if type(src) is not dict:
        raise _Broken("source is not an object")
    kind = src.get("kind")
    if kind == "model":
        for k in ("name", "version", "sha256"):
            if type(src.get(k)) is not str or not src[k]:
                raise _Broken(f"a model source must name its {k}")
    elif kind != "human":
        raise _Broken(f"source kind {kind!r} is neither 'human' nor 'model'")


def _check_image(image: Any) -> dict[str, Any]:
    if type(image) is not dict or type(image.get("sha256")) is not str:
        raise _Broken("image has no voxel sha256")
    if "uid" not in image or not (image["uid"] is None or type(image["uid"]) is str):
        raise _Broken("image uid is neither a string nor null")
    return image


def _check_head(head: Any, run: Run, what: str, seq: int) -> int:
    """Check a ``{seq, hash}`` a record carries; a head before the run's start is left to
    :func:`merge` (``run.deferred``), which knows those hashes."""
    if (
        type(head) is not dict
        or type(head.get("seq")) is not int
        or type(head.get("hash")) is not str
    ):
        raise _Broken(f"{what} is not {{seq, hash}}")
    s = head["seq"]
    if not 0 <= s < seq:
        raise _Broken(f"{what} names seq {s}, not an earlier record of this log")
    if s < run.start:
        run.deferred.append((seq, what, s, head["hash"]))
    else:
        reason = head_mismatch(what, s, head["hash"], run.hashes[s - run.start])
        if reason:
            raise _Broken(reason)
    return s


def head_mismatch(what: str, s: int, named: str, has: str) -> str:
    if has == named:
        return ""
    return f"{what} names record {s} with hash {named[:12]}…, but record {s} has {has[:12]}…"


def _time_key(t: str, other: str) -> str:
    """Comparable form of an ISO time (fractions padded when the two differ in length)."""
    if len(t) == len(other) or not t:
        return t
    frac = t[20:-1] if len(t) > 20 else ""
    return t[:19] + "." + frac.ljust(9, "0")


class Context:
    """What checking objects and signatures needs across records."""

    def __init__(
        self,
        objects: Path,
        roster: Roster | None,
        public_keys: Mapping[str, Any] | None,
        check_objects: bool,
    ) -> None:
        self.objects = objects
        self.check = check_objects
        self.seen: set[str] = set()
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
        self.warned_keys: set[Any] = set()  # what merge() has reported once already

    def fresh(self) -> Context:
        """A copy for checking another chunk at the same time: same settings, nothing seen or
        warned yet (the merge keeps the warnings of the earliest seq)."""
        other = copy.copy(self)
        other.seen, other.warned, other.warned_keys = set(), set(), set()
        return other

    def check_roster(self, actor: dict[str, Any], seq: int, run: Run) -> None:
        """Warn (once per user and role) about actors the roster does not grant that role."""
        who = (actor["id"], actor["role"])
        if self.roster is None or who in self.warned:
            return
        if actor["role"] not in self.roster.roles_of(actor["id"]):
            self.warned.add(who)
            run.warnings.append((seq, who, f"seq {seq}: {actor['id']!r} acted as {actor['role']}, "
                                           "which the roster does not grant (now)"))  # fmt: skip

    def check_objects(self, named: Any) -> None:
        if type(named) is not dict:
            raise _Broken("data.objects is not an object of role: digest")
        for role, digest in named.items():
            if type(digest) is not str or not _HEX64.fullmatch(digest):
                raise _Broken(f"object {role!r} is not named by a sha256 digest")
            if not self.check or digest in self.seen:
                continue
            try:
                with open(self.objects / digest, "rb") as fh:
                    got = hashlib.file_digest(fh, "sha256").hexdigest()
            except FileNotFoundError:
                raise _Broken(f"object {role!r} ({digest[:12]}…) is missing from "
                              f"{self.objects}") from None  # fmt: skip
            if got != digest:
                raise _Broken(f"object {role!r} ({digest[:12]}…) does not match its digest "
                              "(altered)")  # fmt: skip
            self.seen.add(digest)

    def check_sign(self, rec: dict[str, Any], run: Run, seq: int) -> None:
        from napari_clinlabel.core.log.signing import (
            verify_signature,
        )  # cryptography only when a log holds signatures

        d = rec["data"]
        if d.get("meaning") not in MEANINGS:
            raise _Broken(f"sign meaning {d.get('meaning')!r} is not one of {', '.join(MEANINGS)}")
        target = _check_head(rec["target"], run, "sign target", seq)
        if _check_head(d.get("head"), run, "sign head", seq) < target:
            raise _Broken("sign head is before the record it signs")
        key = d.get("public_key")
        if type(key) is not str or type(d.get("signature")) is not str:
            raise _Broken("sign record lacks signature or public_key")
        if not verify_signature(rec, key):
            raise _Broken(f"signature by {rec['actor']['id']!r} does not verify (key {key[:16]}…)")
        if self.registry is None:
            run.unregistered += 1
        elif key not in self.registry.get(rec["actor"]["id"], ()):
            raise _Broken(f"sign by {rec['actor']['id']!r} uses key {key[:16]}…, which the roster "
                          "does not list for that user")  # fmt: skip
        run.signed.append(seq)
