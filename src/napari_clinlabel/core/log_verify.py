"""Verify a sidecar log against format v1: chain, fields, objects, signatures and anchors.

A record is valid when it is a JSON object holding exactly the v1 fields, ``v`` is 1, ``seq``
follows the previous one (0 first), ``prev`` is the previous ``hash`` (64 zeros at seq 0) and
``hash`` is the sha256 of the canonical JSON of the record without ``hash``. Beyond the hash
chain this checks: a human actor with a v1 role, a ``human`` or fully named ``model`` source, the
same ``image`` as seq 0, every object named in ``data["objects"]`` present and matching its
digest, every ``sign`` record's signature (and, given a roster, that the key is the signer's),
and that every head a record carries (``data["head"]``) is a record of this chain.

Time running backwards is reported as a *warning*, not a failure: the chain, not the clock,
proves order, and a workstation clock stepped back by NTP is not tampering. A torn last line
(a crash mid-append) is reported (``torn_tail_present``) and does not fail the log; the next
open of the log keeps it aside and records it.

Speed: the writer puts ``"hash"`` last, so a line's canonical bytes are the line without its
last member (``line[:-75] + b"}"``); the verifier hashes that slice and re-dumps the record
only when the layout differs or the slice does not hash to ``hash``. The one thing this fast
path trusts is that a line whose hash matches its own slice is canonical: a foreign writer that
hashed non-canonical bytes (unsorted keys, duplicate keys, spaces) but put ``hash`` last passes
it, although the spec rejects such a line. ``strict=True`` re-dumps every record and catches it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from . import log_verify_parallel as _parallel
from .audit_log import GENESIS, Head
from .errors import LogError
from .identity import ROLES, Roster

FIELDS = frozenset(
    ("v", "seq", "time", "actor", "action", "image", "target", "data", "source", "schema",
     "prev", "hash")
)  # fmt: skip
MEANINGS = ("review", "approval", "adjudication")
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TAIL = b',"hash":"'
_GET = itemgetter("action", "actor", "data", "hash", "image", "prev", "schema", "seq", "source",
                  "target", "time", "v")  # fmt: skip
_ENC = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_MAX_WARNINGS = 20

try:  # optional accelerator: parses the same JSON to the same values, ~3x faster than json
    from orjson import JSONDecodeError as _FastError
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads, _FastError = json.loads, ValueError


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_log`; ``records`` counts the valid records before any failure."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str = ""
    head: Head | None = None
    signatures_checked: int = 0
    torn_tail_present: bool = False
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: ``valid: N records, head …`` or ``broken at seq N: why``."""
        if not self.ok:
            return f"broken at seq {self.first_bad_seq}: {self.reason}"
        head = f"head seq {self.head.seq} {self.head.hash}" if self.head else "empty log"
        sig = f", {self.signatures_checked} signature(s) valid" if self.signatures_checked else ""
        torn = (
            ", torn last line present (kept aside at next open)" if self.torn_tail_present else ""
        )
        return f"valid: {self.records} records, {head}{sig}{torn}"


class _Broken(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_log(
    path: str | Path,
    *,
    roster: Roster | None = None,
    public_keys: Mapping[str, Any] | None = None,
    check_objects: bool = True,
    objects: str | Path | None = None,
    strict: bool = False,
    workers: int | None = None,
) -> VerifyReport:
    """Check a whole log; the report names the first bad seq and why.

    ``public_keys`` maps user ids to a base64 key or a list of them (added to the roster's).
    ``objects`` is the objects folder (default ``<log minus .jsonl>/objects``).
    ``workers``: 1 checks in this process; n > 1 splits the log into n chunks checked by forked
    processes (same report); None (default) does that only for a big log in a single-threaded
    process (see :mod:`.log_verify_parallel`).
    """
    return _verify(Path(path), roster, public_keys, check_objects, objects, strict, workers)[0]


def verify_against_anchor(
    path: str | Path, head: Mapping[str, Any] | Head, **kwargs: Any
) -> VerifyReport:
    """Verify the log and that it still holds ``head`` (``{"seq", "hash"}``) an export or a
    signature recorded: a log truncated below it, or regrown differently past it, fails."""
    seq, h = (head.seq, head.hash) if isinstance(head, Head) else (head["seq"], head["hash"])
    rep, hashes = _verify(Path(path), kwargs.pop("roster", None), kwargs.pop("public_keys", None),
                          kwargs.pop("check_objects", True), kwargs.pop("objects", None),
                          kwargs.pop("strict", False), kwargs.pop("workers", None))  # fmt: skip
    if not isinstance(seq, int) or seq < 0:
        raise LogError(f"Anchor seq {seq!r} is not a record number; give SEQ:HASH from an export.")
    if not rep.ok and rep.first_bad_seq is not None and rep.first_bad_seq <= seq:
        return rep
    if len(hashes) <= seq:
        rep.ok, rep.first_bad_seq = False, len(hashes)
        rep.reason = (
            f"log truncated: an export or signature covers seq {seq} ({h[:12]}…) but the log "
            f"holds only {len(hashes)} record(s)"
        )
    elif hashes[seq] != h:
        rep.ok, rep.first_bad_seq = False, seq
        rep.reason = (
            f"record {seq} is not the one an export or signature covers (recorded hash "
            f"{h[:12]}…, log has {hashes[seq][:12]}…): the log was rewritten at or before seq {seq}"
        )
    return rep


def _verify(
    path: Path,
    roster: Roster | None,
    public_keys: Mapping[str, Any] | None,
    check_objects: bool,
    objects: str | Path | None,
    strict: bool,
    workers: int | None = None,
) -> tuple[VerifyReport, Sequence[str]]:
    if objects is None:
        stem = str(path).removesuffix(".jsonl")
        objects = Path(stem if stem != str(path) else stem + ".clinlabel") / "objects"
    ctx = _Context(Path(objects), roster, public_keys, check_objects)
    try:
        size = path.stat().st_size
        n = _parallel.chunk_count(size, workers)
        if n > 1:
            done = _parallel.verify_chunks(path, size, n, ctx, strict)
            if done is not None:
                return done
        buf = path.read_bytes()
    except FileNotFoundError:
        raise LogError(f"{path}: no such log; check the path (<image>.clinlabel.jsonl).") from None
    except OSError as exc:
        raise LogError(f"{path}: cannot read the log ({exc.strerror}).") from None
    lines = buf.split(b"\n")
    run = _Run(start=0)
    scan(lines, _Chain(), ctx, strict, run)
    return merge([run], ctx)


@dataclass
class _Chain:
    """Where a run of lines starts: the seq expected next, the previous hash and time, seq 0's
    image (None: the run starts at seq 0)."""

    expected: int = 0
    prev: str = GENESIS
    last_time: str = ""
    image0: Any = None


@dataclass
class _Run:
    """What checking a run of lines found; ``hashes`` holds the valid records' from ``start``."""

    start: int
    hashes: Any = field(default_factory=list)  # list[str] (bytes of 64-char hashes when sent)
    bad_seq: int | None = None
    reason: str = ""
    torn: bool = False
    warnings: list[tuple[int, Any, str]] = field(default_factory=list)  # (seq, dedupe key, text)
    deferred: list[tuple[int, str, int, str]] = field(default_factory=list)  # heads before start
    signed: list[int] = field(default_factory=list)  # seqs of verified signatures
    unregistered: int = 0
    time_warnings: int = 0


def scan(lines: list[bytes], chain: _Chain, ctx: _Context, strict: bool, run: _Run) -> None:
    """Check ``lines`` (a log split at newlines; a non-empty last item is a torn tail) from
    ``chain`` on, into ``run``; stops at the first bad record."""
    last = lines.pop() if lines else b""
    append = run.hashes.append
    expected, prev, last_time, image0 = chain.expected, chain.prev, chain.last_time, chain.image0
    actor_ok: Any = None  # the last actor and source that passed: most records repeat them
    source_ok: Any = None
    sha256, loads, fast_error, tail, get = hashlib.sha256, _fast_loads, _FastError, _TAIL, _GET
    time_match = _TIME_RE.fullmatch
    for line in lines:
        try:
            try:
                rec = loads(line)
            except fast_error:
                try:
                    rec = json.loads(line)  # what orjson declines (huge ints, …)
                except ValueError:
                    raise _Broken("not valid JSON") from None
            if type(rec) is not dict:
                raise _Broken("not a JSON object")
            try:
                if len(rec) != 12:
                    raise KeyError
                a, actor, d, h, image, p, schema, s, source, target, t, v = get(rec)
            except KeyError:
                raise _Broken(_field_problem(rec)) from None
            # fast path: canonical bytes are the line minus its last member, when hash is last
            if (
                strict
                or line[-75:-66] != tail
                or line[-2:] != b'"}'
                or not (sha256(line[:-75] + b"}").hexdigest() == h and line[-66:-2] == h.encode())
            ):
                _check_canonical_hash(rec, h)
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
            if type(t) is not str or not time_match(t):
                raise _Broken(f"time {str(t)[:40]!r} is not UTC ISO 8601 (…T…Z)")
            if (len(t) != len(last_time) or t < last_time) and _time_key(t, last_time) < _time_key(
                last_time, t
            ):
                if run.time_warnings <= _MAX_WARNINGS:
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
                ctx.check_objects(d["objects"])
            if a == "sign":
                ctx.check_sign(rec, run, s)
            elif "head" in d:
                _check_head(d["head"], run, "data.head", s)
        except _Broken as exc:
            run.bad_seq, run.reason = expected, exc.reason
            return
        append(h)
        prev = h
        expected += 1
    run.torn = bool(last)


def merge(runs: list[_Run], ctx: _Context) -> tuple[VerifyReport, Sequence[str]]:
    """One report from consecutive runs: the first bad seq (a head a run deferred, or its own
    failure), warnings and signatures before it, the hashes of the valid records."""
    rep = VerifyReport(ok=True, records=0)
    hashes = _Hashes()
    bad: int | None = None
    for run in runs:
        if run.start != len(hashes):
            raise RuntimeError("log chunks do not link")  # a bug: the caller verifies in one run
        for seq, what, s, h in run.deferred:
            if run.bad_seq is not None and seq > run.bad_seq:
                break
            reason = _head_mismatch(what, s, h, hashes[s])
            if reason:
                bad, rep.reason = seq, reason
                break
        if bad is None and run.bad_seq is not None:
            bad, rep.reason = run.bad_seq, run.reason
        hashes.add(run.hashes, (bad if bad is not None else run.start + _count(run)) - run.start)
        for seq, key, text in run.warnings:
            if bad is not None and seq > bad:
                break
            if key is None or key not in ctx.warned_keys:
                if key is not None:
                    ctx.warned_keys.add(key)
                _warn(rep, text)
        rep.signatures_checked += sum(1 for s in run.signed if bad is None or s < bad)
        if bad is not None:
            rep.ok, rep.first_bad_seq = False, bad
            break
        rep.torn_tail_present = run.torn
    rep.records = len(hashes)
    if rep.records:
        rep.head = Head(rep.records - 1, hashes[-1])
    unregistered = sum(r.unregistered for r in runs)
    if rep.ok and unregistered:
        _warn(rep, f"{unregistered} signature(s) checked against the key they carry only; "
                   "pass a roster to check whose keys they are")  # fmt: skip
    return rep, hashes.as_sequence()


def _count(run: _Run) -> int:
    return len(run.hashes) // 64 if isinstance(run.hashes, bytes) else len(run.hashes)


class _Hashes(Sequence[str]):
    """Record hashes by seq, kept as the runs held them: lists of str or 64-byte ASCII runs."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, Any]] = []
        self.n = 0

    def add(self, part: Any, count: int) -> None:
        if count > 0:
            self.parts.append((self.n, part[: 64 * count] if isinstance(part, bytes) else part))
            self.n += count

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> str:
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        k = bisect.bisect_right(self.parts, i, key=lambda p: p[0]) - 1
        start, part = self.parts[k]
        j = i - start
        return part[64 * j : 64 * j + 64].decode("ascii") if isinstance(part, bytes) else part[j]

    def as_sequence(self) -> Sequence[str]:
        """A plain list when one run held every hash as str (the single-process case)."""
        if len(self.parts) == 1 and isinstance(self.parts[0][1], list):
            part = self.parts[0][1]
            return part if len(part) == self.n else part[: self.n]
        return self if self.parts else []


def _field_problem(rec: dict[str, Any]) -> str:
    missing = sorted(FIELDS - rec.keys())
    extra = sorted(rec.keys() - FIELDS)
    parts = []
    if missing:
        parts.append("missing " + ", ".join(missing))
    if extra:
        parts.append("unexpected " + ", ".join(str(e)[:40] for e in extra))
    return "fields: " + "; ".join(parts)


def _check_canonical_hash(rec: dict[str, Any], h: Any) -> None:
    body = {k: v for k, v in rec.items() if k != "hash"}
    try:
        canon = _ENC.encode(body).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise _Broken("record cannot be written as canonical JSON") from None
    if type(h) is not str or hashlib.sha256(canon).hexdigest() != h:
        raise _Broken("hash does not match the record's content (the record was edited)")


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


def _check_head(head: Any, run: _Run, what: str, seq: int) -> int:
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
        reason = _head_mismatch(what, s, head["hash"], run.hashes[s - run.start])
        if reason:
            raise _Broken(reason)
    return s


def _head_mismatch(what: str, s: int, named: str, has: str) -> str:
    if has == named:
        return ""
    return f"{what} names record {s} with hash {named[:12]}…, but record {s} has {has[:12]}…"


def _time_key(t: str, other: str) -> str:
    """Comparable form of an ISO time (fractions padded when the two differ in length)."""
    if len(t) == len(other) or not t:
        return t
    frac = t[20:-1] if len(t) > 20 else ""
    return t[:19] + "." + frac.ljust(9, "0")


def _warn(rep: VerifyReport, text: str) -> None:
    if len(rep.warnings) < _MAX_WARNINGS:
        rep.warnings.append(text)
    elif len(rep.warnings) == _MAX_WARNINGS:
        rep.warnings.append("… more warnings not shown")


class _Context:
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

    def check_roster(self, actor: dict[str, Any], seq: int, run: _Run) -> None:
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

    def check_sign(self, rec: dict[str, Any], run: _Run, seq: int) -> None:
        from .signing import verify_signature  # cryptography only when a log holds signatures

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
