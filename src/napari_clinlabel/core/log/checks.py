"""The per-record checks of a sidecar log (formats v1 and v2), as one loop over lines.

:func:`scan_range` reads a byte range of a log block by block and :func:`scan` checks its lines
from a given chain state (:class:`Chain`), recording in a :class:`Run` the hashes of the valid
records, the first bad seq and why, warnings, and heads naming records before the run (left to
the caller, which holds those hashes). Per record, in this order (so the reason given for a record
with several faults is always the same):

1. the line is within the reader's bounds (:mod:`.reader`) and is a JSON object (orjson);
2. it holds exactly the 12 fields; ``v`` is 1 or 2 and never goes back from 2 to 1;
3. ``hash``: v2 - the line ends with ``,"hash":"<hash>"}`` and ``hash`` is the sha256 of the
   line's bytes before that member followed by ``}`` (bytes hashed, nothing re-serialised);
   v1 - the sha256 of Python's canonical JSON of the record without ``hash``;
4. ``seq`` follows, ``prev`` is the previous hash; a human actor with a known role, a human,
   model or tool source, an action, seq 0's image, a UTC time, ``data`` an object, ``schema`` an
   object or null; every object in ``data.objects`` a regular file matching its digest; every
   head a record carries (``data.head``) a record of this chain;
5. the trust checks (:mod:`.trust`: roles against the roster, signatures), through
   ``ctx.trust.check_record`` - the one place per-record trust is decided.

A record's JSON is read by orjson, last duplicate key winning; the hash covers the bytes, so two
readers that resolve duplicates differently still agree on whether the bytes were changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import orjson

from napari_clinlabel.core.errors import LogError
from napari_clinlabel.core.log.identity import ACTOR_ROLES
from napari_clinlabel.core.log.reader import (
    LONG_INT,
    MAX_LINE_BYTES,
    MAX_NESTING,
    line_problem,
    open_regular,
    parse_exact,
)

GENESIS = "0" * 64
FIELDS = frozenset(
    ("v", "seq", "time", "actor", "action", "image", "target", "data", "source", "schema",
     "prev", "hash")
)  # fmt: skip
_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z", re.ASCII)
_HEX64 = re.compile(r"[0-9a-f]{64}")
_GET = itemgetter("action", "actor", "data", "hash", "image", "prev", "schema", "seq", "source",
                  "target", "time", "v")  # fmt: skip
_ENC = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_HASH_KEY = b',"hash":"'
_SHORT = 2 * MAX_NESTING  # a line nesting deeper holds more brackets than this
MAX_WARNINGS = 20
_BLOCK = 4 << 20  # read and split a log this much at a time


class Broken(Exception):
    """A record fails a check; ``reason`` says which and why (one line)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Chain:
    """Where a run of lines starts: the seq expected next, the previous hash and time, seq 0's
    image (None: the run starts at seq 0) and the newest format version seen."""

    expected: int = 0
    prev: str = GENESIS
    last_time: str = ""
    image0: Any = None
    version: int = 0


@dataclass
class Run:
    """What checking a run of lines found; ``hashes`` holds the valid records' from ``start``."""

    start: int
    hashes: list[str] = field(default_factory=list)
    bad_seq: int | None = None
    reason: str = ""
    torn: bool = False
    warnings: list[tuple[int, Any, str]] = field(default_factory=list)  # (seq, dedupe key, text)
    deferred: list[tuple[int, str, int, str]] = field(default_factory=list)  # heads before start
    signed: list[int] = field(default_factory=list)  # seqs of verified signatures
    unregistered: int = 0  # signatures checked against the key they carry only
    notes: list[tuple[int, Any]] = field(default_factory=list)  # (seq, anything trust keeps)
    time_warnings: int = 0


class TrustChecks(Protocol):
    """What :func:`scan` asks of the trust checks (:class:`.trust.Trust` implements it).

    ``check_record`` is called for seq 0 of a run, for every record whose actor differs from the
    previous record's, and for every record whose action is in ``actions`` (most records repeat
    their actor and need nothing more: not calling for them keeps verifying fast).
    """

    actions: frozenset[str]

    def check_record(self, rec: dict[str, Any], seq: int, run: Run) -> None:
        """Raise :class:`Broken` when the record's actor or signature is not trusted."""


class Context:
    """What the checks need across records: the objects folder and the trust checks."""

    def __init__(self, objects: Path, check_objects: bool, trust: TrustChecks) -> None:
        self.objects = objects
        self.check = check_objects
        self.trust = trust
        self.seen: set[str] = set()
        self.warned_keys: set[Any] = set()  # what merge() has reported once already

    def check_objects(self, named: Any) -> None:
        """Every ``role: digest`` names a regular file in the objects folder with that digest."""
        if type(named) is not dict:
            raise Broken("data.objects is not an object of role: digest")
        for role, digest in named.items():
            if type(digest) is not str or not _HEX64.fullmatch(digest):
                raise Broken(f"object {role!r} is not named by a sha256 digest")
            if not self.check or digest in self.seen:
                continue
            try:
                got = file_sha256(self.objects / digest)
            except FileNotFoundError:
                raise Broken(f"object {role!r} ({digest[:12]}…) is missing from "
                             f"{self.objects}") from None  # fmt: skip
            except LogError as exc:  # a symlink, FIFO or device: never followed or read
                raise Broken(f"object {role!r} ({digest[:12]}…): {str(exc).rstrip('.')}") from None
            except OSError as exc:
                raise Broken(f"object {role!r} ({digest[:12]}…) cannot be read "
                             f"({exc.strerror})") from None  # fmt: skip
            if got != digest:
                raise Broken(f"object {role!r} ({digest[:12]}…) does not match its digest "
                             "(altered)")  # fmt: skip
            self.seen.add(digest)


def file_sha256(path: Path) -> str:
    """sha256 hex of a regular file's bytes, read up to its size at open (never a symlink)."""
    fd = open_regular(path)
    try:
        left = os.fstat(fd).st_size
        h = hashlib.sha256()
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def scan_range(fd: int, start: int, end: int, chain: Chain, ctx: Context, run: Run) -> None:
    """Check the lines of bytes ``[start, end)`` of a log open as ``fd`` (read with pread, so
    processes sharing the descriptor do not move each other's position) from ``chain`` on, into
    ``run``; a last line with no newline is a torn tail."""
    pos = start
    rest: list[bytes] = []  # the start of a line that goes on in the next block
    held = 0
    while pos < end:
        data = os.pread(fd, min(_BLOCK, end - pos), pos)
        if not data:
            break
        pos += len(data)
        lines = data.split(b"\n")
        del data
        if len(lines) == 1:  # no newline in this block (a very long line)
            rest.append(lines[0])
            held += len(lines[0])
            if held > MAX_LINE_BYTES:  # never hold more of one line than the reader reads
                run.bad_seq, run.reason = chain.expected, line_problem(b" " * held)
                return
            continue
        if rest:
            lines[0] = b"".join(rest) + lines[0]
        rest = [lines.pop()]
        held = len(rest[0])
        if not scan(lines, chain, ctx, run):
            return
    run.torn = any(rest)


def scan(lines: list[bytes], chain: Chain, ctx: Context, run: Run) -> bool:
    """Check whole ``lines`` from ``chain`` on, into ``run`` (``chain`` moves past them); False
    at the first bad record."""
    append = run.hashes.append
    expected, prev, last_time, image0 = chain.expected, chain.prev, chain.last_time, chain.image0
    version = chain.version
    actor_ok: Any = None  # the last actor and source that passed: most records repeat them
    source_ok: Any = None
    loads, decode_error, get, sha256 = orjson.loads, orjson.JSONDecodeError, _GET, hashlib.sha256
    time_match, hex_match, check_files = _TIME_RE.fullmatch, _HEX64.fullmatch, ctx.check
    trust, trust_actions, trusted = ctx.trust.check_record, ctx.trust.actions, False
    for line in lines:
        try:
            if len(line) > _SHORT:  # shorter lines cannot nest MAX_NESTING deep: no count
                problem = line_problem(line)
                if problem:
                    raise Broken(problem)
            try:
                rec = loads(line)
            except decode_error:
                rec = _exact(line)
            if type(rec) is not dict:
                raise Broken("not a JSON object")
            try:
                if len(rec) != 12:
                    raise KeyError
                a, actor, d, h, image, p, schema, s, source, target, t, v = get(rec)
            except KeyError:
                raise Broken(_field_problem(rec)) from None
            if v == 2 and type(v) is int:
                if (
                    type(h) is not str
                    or line[-75:-2] != _HASH_KEY + h.encode()
                    or line[-2:] != b'"}'
                ):
                    raise Broken('hash is not the line\'s last member (,"hash":"<64 hex>"})')
                hasher = sha256(line[:-75])  # no copy of the line: hash it, then the "}"
                hasher.update(b"}")
                if hasher.hexdigest() != h:
                    raise Broken("hash does not match the record's bytes (the record was edited)")
                version = 2
            elif v == 1 and type(v) is int:
                if version == 2:
                    raise Broken("v is 1 after a v2 record (a log's format never goes back)")
                if LONG_INT.search(line):  # re-serialising needs the integers orjson rounded
                    rec = _exact(line)
                    a, actor, d, h, image, p, schema, s, source, target, t, v = get(rec)
                if not _canonical_hash_ok(rec, h):
                    raise Broken("hash does not match the record's content (the record was edited)")
                version = 1
            else:
                raise Broken(f"v is {repr(v)[:20]}, this verifier knows formats 1 and 2")
            if type(s) is not int or s != expected:
                raise Broken(f"seq is {str(s)[:30]}, expected {expected} (a record was deleted, "
                             "inserted or reordered)")  # fmt: skip
            if p != prev:
                raise Broken("prev is not the previous record's hash (a record before it was "
                             "deleted, edited or reordered)")  # fmt: skip
            if actor != actor_ok:
                _check_actor(actor)
                actor_ok = actor
                trusted = False
            if source != source_ok:
                _check_source(source)
                source_ok = source
            if type(a) is not str or not a:
                raise Broken("action is missing or not a string")
            if image0 is None:
                image0 = _check_image(image)
            elif image != image0:
                raise Broken("image differs from seq 0's image (records of another image)")
            if type(t) is not str or not time_match(t):
                raise Broken(f"time {str(t)[:40]!r} is not UTC ISO 8601 (…T…Z)")
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
                raise Broken("data is not an object")
            if schema is not None and type(schema) is not dict:
                raise Broken("schema is neither an object nor null")
            if "objects" in d:
                o = d["objects"]
                if check_files or type(o) is not dict:
                    ctx.check_objects(o)
                else:  # names only: each a sha256 digest (check_objects says which is not)
                    for digest in o.values():
                        if type(digest) is not str or not hex_match(digest):
                            ctx.check_objects(o)
            if "head" in d and a != "sign":
                check_head(d["head"], run, "data.head", s)
            if not trusted or a in trust_actions:
                trust(rec, s, run)
                trusted = True
        except Broken as exc:
            run.bad_seq, run.reason = expected, exc.reason
            return False
        except RecursionError:  # v1's json re-serialises only as deep as Python recurses
            run.bad_seq, run.reason = expected, "record nests too deeply to be checked"
            return False
        append(h)
        prev = h
        expected += 1
    chain.expected, chain.prev, chain.last_time, chain.image0 = expected, prev, last_time, image0
    chain.version = version
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


def _exact(line: bytes) -> Any:
    """The line read exactly by :mod:`json` (integers beyond 64 bits), else Broken."""
    try:
        return parse_exact(line)
    except ValueError:
        raise Broken(line_problem(line) or "not valid JSON") from None


def _canonical_hash_ok(rec: dict[str, Any], h: Any) -> bool:
    """Format v1: ``h`` is the sha256 of the record's canonical JSON (without ``hash``)."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    try:
        canon = _ENC.encode(body).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise Broken("record cannot be written as canonical JSON") from None
    return type(h) is str and hashlib.sha256(canon).hexdigest() == h


def _check_actor(actor: Any) -> None:
    if type(actor) is not dict:
        raise Broken("actor is missing: every record names a human")
    if type(actor.get("id")) is not str or not actor["id"]:
        raise Broken("actor has no id")
    if type(actor.get("name")) is not str:
        raise Broken("actor has no name")
    if actor.get("role") not in ACTOR_ROLES:
        raise Broken(
            f"actor role {str(actor.get('role'))[:40]!r} is not one of {', '.join(ACTOR_ROLES)}"
        )


def _check_source(src: Any) -> None:
    if type(src) is not dict:
        raise Broken("source is not an object")
    kind = src.get("kind")
    if kind == "model":
        for k in ("name", "version", "sha256"):
            if type(src.get(k)) is not str or not src[k]:
                raise Broken(f"a model source must name its {k}")
    elif kind == "tool":
        for k in ("name", "version"):
            if type(src.get(k)) is not str or not src[k]:
                raise Broken(f"a tool source must name its {k}")
    elif kind != "human":
        raise Broken(f"source kind {str(kind)[:40]!r} is neither 'human', 'model' nor 'tool'")


def _check_image(image: Any) -> dict[str, Any]:
    if type(image) is not dict or type(image.get("sha256")) is not str:
        raise Broken("image has no voxel sha256")
    if "uid" not in image or not (image["uid"] is None or type(image["uid"]) is str):
        raise Broken("image uid is neither a string nor null")
    if len(image) != 2:  # only strings: compared by value, nothing a reader could round
        raise Broken("image holds more than {uid, sha256}")
    return image


def check_head(head: Any, run: Run, what: str, seq: int) -> int:
    """Check a ``{seq, hash}`` a record carries; a head before the run's start is left to the
    merge (``run.deferred``), which knows those hashes. Returns the head's seq."""
    if (
        type(head) is not dict
        or type(head.get("seq")) is not int
        or type(head.get("hash")) is not str
    ):
        raise Broken(f"{what} is not {{seq, hash}}")
    s = head["seq"]
    if not 0 <= s < seq:
        raise Broken(f"{what} names seq {s}, not an earlier record of this log")
    if s < run.start:
        run.deferred.append((seq, what, s, head["hash"]))
    else:
        reason = head_mismatch(what, s, head["hash"], run.hashes[s - run.start])
        if reason:
            raise Broken(reason)
    return s


def head_mismatch(what: str, s: int, named: str, has: str) -> str:
    """Why a head naming record ``s`` with hash ``named`` is wrong ('' when record s has it)."""
    if has == named:
        return ""
    return f"{what} names record {s} with hash {named[:12]}…, but record {s} has {has[:12]}…"


def _time_key(t: str, other: str) -> str:
    """Comparable form of an ISO time (fractions padded when the two differ in length)."""
    if len(t) == len(other) or not t:
        return t
    frac = t[20:-1] if len(t) > 20 else ""
    return t[:19] + "." + frac.ljust(9, "0")
