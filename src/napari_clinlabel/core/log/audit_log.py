"""The sidecar audit log, format v2 (see the README): append-only, locked, fsynced, hash-chained.

A record is one line of canonical JSON (sorted keys, no spaces, UTF-8) with ``"hash"`` moved to
be its last member. ``hash`` is the sha256 of the line's bytes before the final ``,"hash":"``
followed by ``}`` - which, the body being canonical, is also the sha256 of the canonical JSON of
the record without ``hash`` (format v1's rule), so v1 and v2 differ only in how a verifier gets
those bytes: v2 hashes the line as written, never re-serialising. ``prev`` is the previous
record's hash (64 zeros for seq 0). Bulky payloads live in ``<image>.clinlabel/objects/<sha256>``
and are named in ``data["objects"]``. Logs and objects are regular files; symlinks, FIFOs and
devices are refused.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import io
import json
import math
import os
import re
import secrets
import stat
import threading
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from napari_clinlabel.core.errors import LogError, LogIntegrityError
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.core.log.reader import (  # noqa: F401 - iter_records: its readers import it here
    MAX_LINE_BYTES,
    MAX_NESTING,
    iter_records,
    nesting,
    open_regular,
    parse_line,
    read_regular,
)

FORMAT_VERSION = 2
GENESIS = "0" * 64
HUMAN = {"kind": "human"}
_HASH_TAIL_LEN = len(',"hash":""}') + 64
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def canonical_bytes(rec: dict[str, Any]) -> bytes:
    """Canonical JSON bytes of a record (sorted keys, no spaces, UTF-8)."""
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def record_hash(rec: dict[str, Any]) -> str:
    """The ``hash`` of a record: sha256 hex of its canonical JSON without ``hash``."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    return hashlib.sha256(canonical_bytes(body)).hexdigest()


def utc_now() -> str:
    """Current UTC time, ISO 8601 with microseconds and a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sidecar_paths(image_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(<image>.clinlabel.jsonl, <image>.clinlabel/objects)`` for a file or a DICOM folder."""
    p = Path(image_path).resolve()
    base = p.parent / p.name
    return Path(f"{base}.clinlabel.jsonl"), Path(f"{base}.clinlabel") / "objects"


def model_source(name: str, version: str, sha256: str) -> dict[str, str]:
    """The ``source`` field for work a model did (still run and confirmed by a human actor)."""
    return {"kind": "model", "name": name, "version": version, "sha256": sha256}


def _json_default(obj: Any) -> Any:
    """numpy scalars/arrays and tuples-as-lists, so callers may pass what numpy hands them."""
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON")


def normalise_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The record as any reader will parse it back (so its hash is the hash a verifier computes).

    A JSON round trip turns int dict keys into strings (whose sort order differs), tuples into
    lists and numpy scalars into numbers; NaN and infinity are refused (not JSON).
    """
    try:
        text = json.dumps(rec, default=_json_default, allow_nan=False, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise LogError(
            f"Cannot log action {rec.get('action')!r}: its record is not plain JSON ({exc}); "
            "pass numbers, strings, lists and dicts only. Nothing was recorded."
        ) from None
    return json.loads(text)


def _encode_line(rec: dict[str, Any]) -> tuple[bytes, str]:
    body = canonical_bytes(rec)
    h = hashlib.sha256(body).hexdigest()
    line = body[:-1] + b',"hash":"' + h.encode("ascii") + b'"}\n'
    return line, h


@dataclass(frozen=True)
class Head:
    """The chain head a signature or an export covers."""

    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as carried by ``sign`` and ``export`` records."""
        return {"seq": self.seq, "hash": self.hash}


MAX_OBJECT_BYTES = 4 << 30  # the largest log object read (a 512³ uint16 snapshot is 256 MiB)


class ObjectStore:
    """Content-addressed files named by the sha256 of their bytes, written atomically.

    Objects are regular files in a real folder: a symlinked folder or object, a FIFO or a device
    is refused (:class:`LogError`), never followed or read.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _check_folder(self) -> None:
        for f in (self.folder, self.folder.parent):
            if f.is_symlink():
                raise LogError(
                    f"{f}: is a symbolic link; a log's objects folder must be a real folder "
                    "(replace the link with the folder it points to)."
                )

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 hex (idempotent)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.folder / digest
        self._check_folder()
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise LogError(f"{path}: cannot check the log object ({exc.strerror}).") from None
        if st is not None:
            if stat.S_ISREG(st.st_mode):
                return digest
            raise LogError(
                f"{path}: is not a regular file (a link, FIFO or device); move it aside. "
                "The action was not recorded."
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        except OSError as exc:
            raise LogError(
                f"{self.folder}: cannot write a log object ({exc.strerror}); free space or make "
                "the folder writable. The action was not recorded."
            ) from None
        return digest

    def has(self, digest: str) -> bool:
        """True when object ``digest`` is stored as a regular file (not checked against its
        digest)."""
        if not _DIGEST_RE.fullmatch(str(digest)):
            return False
        try:
            return stat.S_ISREG(os.lstat(self.folder / digest).st_mode)
        except OSError:
            return False

    def get(self, digest: str) -> bytes:
        """Bytes of object ``digest``, checked against the digest (read up to its size when
        opened, at most :data:`MAX_OBJECT_BYTES`)."""
        if not _DIGEST_RE.fullmatch(str(digest)):
            raise LogIntegrityError(f"{self.folder}: {str(digest)[:80]!r} is not an object digest.")
        path = self.folder / digest
        self._check_folder()
        try:
            data = read_regular(path, MAX_OBJECT_BYTES)
        except FileNotFoundError:
            raise LogIntegrityError(f"{path}: log object is missing.") from None
        except LogError as exc:
            raise LogIntegrityError(str(exc)) from None
        except OSError as exc:
            raise LogIntegrityError(
                f"{path}: cannot read the log object ({exc.strerror})."
            ) from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise LogIntegrityError(f"{path}: log object does not match its digest (altered).")
        return data

    def put_arrays(self, **arrays: np.ndarray) -> str:
        """Store numpy arrays as one ``.npz`` object; return its digest."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return self.put(buf.getvalue())

    def get_arrays(self, digest: str, max_elements: int | None = None) -> dict[str, np.ndarray]:
        """Arrays of an ``.npz`` object written by :meth:`put_arrays`.

        ``max_elements``: refuse (LogIntegrityError) an array with more elements, read from its
        header before anything is decompressed (a small object cannot unpack into a huge array).
        """
        data = self.get(digest)
        where = self.folder / digest
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                out = {}
                for info in zf.infolist():
                    name = info.filename.removesuffix(".npy")
                    with zf.open(info) as fh:
                        version = np.lib.format.read_magic(fh)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)  # fmt: skip
                        shape, fortran, dtype = read_header(fh)
                        if dtype.hasobject:
                            raise ValueError(f"array {name!r} holds Python objects")
                        n = math.prod(shape)
                        if max_elements is not None and n > max_elements:
                            raise _TooBig(f"array {name!r} has shape {shape}, more than the "
                                          f"{max_elements} elements this image allows")  # fmt: skip
                        raw = fh.read(n * dtype.itemsize + 1)
                        if len(raw) != n * dtype.itemsize:
                            raise ValueError(f"array {name!r} is truncated")
                        arr = np.frombuffer(bytearray(raw), dtype=dtype)  # writable, as np.load
                        out[name] = arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)
                return out
        except _TooBig as exc:
            raise LogIntegrityError(f"{where}: log object is too large: {exc}.") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise LogIntegrityError(
                f"{where}: log object is not a numpy archive ({exc})."
            ) from None


class _TooBig(Exception):
    pass


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename (never half-written).

    ``mode``: permissions of the new file (0o600 for anything identifying, e.g. a UID map).
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # not widened by the umask, not left at a looser pre-existing mode
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(p.parent)


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so a rename into it survives a crash (best effort: errors are ignored)."""
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


class AuditLog:
    """Appender for one image's sidecar log; every append is locked, chained and fsynced.

    Parameters
    ----------
    path : the ``.clinlabel.jsonl`` file (created on first append).
    image : the ``image`` field (``{"uid", "sha256"}``); an existing log of another image is refused.
    actor : the human acting; every record carries an actor.
    schema : the schema in force (``{"id", "version", "sha256"}``) or None.
    objects : folder for content-addressed objects (default: beside the log).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        image: dict[str, Any],
        actor: Actor,
        schema: dict[str, Any] | None = None,
        objects: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.image = dict(image)
        self.actor = actor
        self.schema = schema
        if objects is None:
            stem = str(self.path).removesuffix(".jsonl")
            objects = Path(stem if stem != str(self.path) else stem + ".clinlabel") / "objects"
        self.objects = ObjectStore(objects)
        self._fd: int | None = None
        self._pid = os.getpid()
        self._thread_lock = threading.RLock()  # flock does not exclude threads sharing one fd
        self._known: tuple[int, int, str] | None = None  # (file size, last seq, last hash)
        if os.path.lexists(self.path):
            self._check_image()
            self._with_lock(self._recover)  # a torn tail now, not at the first edit

    @classmethod
    def for_image(
        cls,
        image_path: str | os.PathLike[str],
        image: dict[str, Any],
        actor: Actor,
        schema: dict[str, Any] | None = None,
    ) -> AuditLog:
        """The sidecar log beside ``image_path`` (a file or a DICOM folder)."""
        log, objects = sidecar_paths(image_path)
        return cls(log, image, actor, schema, objects)

    # -- writing ---------------------------------------------------------------------------
    def append(
        self,
        action: str,
        target: Any = None,
        data: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
        *,
        actor: Actor | None = None,
        schema: dict[str, Any] | None | bool = True,
    ) -> dict[str, Any]:
        """Append one record and return it once it is on disk (flushed and fsynced).

        Raises :class:`LogError` when the log cannot be written; the caller must then undo the
        action it was about to record.
        """
        who = actor or self.actor
        rec_schema = self.schema if schema is True else schema
        src = dict(source) if source else dict(HUMAN)
        if src.get("kind") == "model" and not all(
            src.get(k) for k in ("name", "version", "sha256")
        ):
            raise LogError("A model's work must name the model (name, version, sha256).")

        if not isinstance(action, str) or not action:
            raise LogError("An action name is required (e.g. 'label.paint'). Nothing was recorded.")
        if data is not None and not isinstance(data, dict):
            raise LogError(f"Action {action!r}: data must be a dict. Nothing was recorded.")
        named = (data or {}).get("objects") or {}
        if not isinstance(named, dict):
            raise LogError(f"Action {action!r}: data['objects'] must map roles to digests.")
        for role, digest in named.items():
            if not self.objects.has(digest):
                raise LogError(
                    f"{self.path}: object {role!r} ({str(digest)[:12]}…) is not in "
                    f"{self.objects.folder}; store it with put_object first. Nothing was recorded."
                )

        def write() -> dict[str, Any]:
            seq, prev = self._tail()
            rec = {
                "v": FORMAT_VERSION,
                "seq": seq + 1,
                "time": utc_now(),
                "actor": who.to_dict(),
                "action": action,
                "image": self.image,
                "target": target,
                "data": data if data is not None else {},
                "source": src,
                "schema": rec_schema if rec_schema is not False else None,
                "prev": prev,
            }
            try:
                rec = normalise_record(rec)
                line, h = _encode_line(rec)
            except RecursionError:
                line, h = b"[" * (MAX_NESTING + 1), ""  # refused just below
            if nesting(line) > MAX_NESTING:  # a verifier would refuse it: never write it
                raise LogError(
                    f"Action {action!r}: its record nests deeper than {MAX_NESTING} levels, "
                    "more than a log can be verified with. Nothing was recorded."
                )
            if len(line) > MAX_LINE_BYTES:
                raise LogError(
                    f"Action {action!r}: its record is over {MAX_LINE_BYTES >> 20} MiB, more "
                    "than a log's reader reads; store bulky data as an object. Nothing was recorded."
                )
            self._write_line(line)
            rec["hash"] = h
            return rec

        return self._with_lock(write)

    def put_object(self, data: bytes) -> str:
        """Store a bulky payload; name the returned digest in ``data["objects"]``."""
        return self.objects.put(data)

    def put_arrays(self, **arrays: np.ndarray) -> str:
        """Store arrays as one ``.npz`` object and return its digest."""
        return self.objects.put_arrays(**arrays)

    def get_arrays(self, digest: str) -> dict[str, np.ndarray]:
        """Arrays of an object, verified against its digest."""
        return self.objects.get_arrays(digest)

    # -- reading ---------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """All complete records, in order."""
        return list(iter_records(self.path))

    def head(self) -> Head:
        """The current chain head (seq -1 and the genesis hash for an empty log)."""
        seq, h = self._with_lock(self._tail)
        return Head(seq, h)

    def close(self) -> None:
        """Release the file handle."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    # -- internals -------------------------------------------------------------------------
    def _open(self) -> int:
        if self._fd is not None and self._pid != os.getpid():
            # a forked child shares the parent's open file, hence its flock: open our own
            os.close(self._fd)
            self._fd, self._known, self._pid = None, None, os.getpid()
        if self._fd is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # never through a symlink, never a FIFO or device: records would land elsewhere
                self._fd = open_regular(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
            except LogError as exc:
                raise LogError(f"{exc} Nothing was changed.") from None
            except OSError as exc:
                raise LogError(
                    f"{self.path}: cannot open the audit log for writing ({exc.strerror}); make "
                    "the folder writable. Nothing was changed."
                ) from None
        return self._fd

    def _with_lock(self, fn: Any) -> Any:
        with self._thread_lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._check_same_file(fd)
                return fn()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _check_same_file(self, fd: int) -> None:
        """Under the lock: the path still names the file this writer holds (not replaced,
        moved or deleted since it was opened), so nothing is appended to an orphaned file."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            st = None
        mine = os.fstat(fd)
        if st is None or (st.st_dev, st.st_ino) != (mine.st_dev, mine.st_ino):
            self._known = None
            raise LogError(
                f"{self.path}: the log file was replaced, moved or deleted while open; nothing "
                "was recorded. Find out what changed it, then reopen the image."
            )

    def _write_line(self, line: bytes) -> None:
        fd = self._open()
        size_before = os.fstat(fd).st_size
        try:
            n = os.write(fd, line)
            if n != len(line):
                raise OSError(28, "short write (disk full?)")
            os.fsync(fd)
        except OSError as exc:
            # leave no partial record behind: cut back to where this append started
            try:
                os.ftruncate(fd, size_before)
                os.fsync(fd)
            except OSError:
                pass
            self._known = None
            raise LogError(
                f"{self.path}: cannot write the audit log ({exc.strerror}); free space or make "
                "the folder writable. The action was not recorded and must not count as done."
            ) from None
        rec_seq = self._known[1] + 1 if self._known else None
        h = line[-(64 + 3) : -3].decode("ascii")
        if rec_seq is None:
            self._known = None
        else:
            self._known = (size_before + len(line), rec_seq, h)

    def _tail(self) -> tuple[int, str]:
        """(last seq, last hash) under the lock; recovers a torn tail first."""
        fd = self._open()
        size = os.fstat(fd).st_size
        if self._known is not None and self._known[0] == size:
            return self._known[1], self._known[2]
        if size == 0:
            self._known = (0, -1, GENESIS)
            return -1, GENESIS
        last, torn_at = _read_last_line(fd, size)
        if torn_at is not None:
            self._recover_torn_tail(fd, torn_at, size)
            return self._tail()
        try:
            rec = parse_line(last)
            seq, h = int(rec["seq"]), str(rec["hash"])
        except (ValueError, KeyError, TypeError) as exc:
            why = f" ({exc})" if isinstance(exc, ValueError) else ""
            raise LogIntegrityError(
                f"{self.path}: the last record is not a valid record{why}; run 'clinlabel log "
                "verify' and restore the log from a backup."
            ) from None
        self._known = (size, seq, h)
        return seq, h

    def _recover(self) -> None:
        self._tail()  # recovers a torn tail
        self._recover_pending()

    def _recover_torn_tail(self, fd: int, torn_at: int, size: int) -> None:
        """Keep a torn last line aside and record it. Crash-safe: the bytes go to
        ``<log>.torn-<digest>.pending`` first, then the log is cut back, the ``log.recover``
        record appended, and only then the file renamed without ``.pending``; a pending file
        found on the next open is recorded then (:meth:`_recover_pending`)."""
        os.lseek(fd, torn_at, os.SEEK_SET)
        torn = os.read(fd, size - torn_at)
        digest = hashlib.sha256(torn).hexdigest()
        aside = self.path.with_name(f"{self.path.name}.torn-{digest[:16]}")
        pending = aside.with_name(aside.name + ".pending")
        try:
            atomic_write_bytes(pending, torn)
            os.ftruncate(fd, torn_at)
            os.fsync(fd)
        except OSError as exc:
            raise LogError(
                f"{self.path}: the log ends in a torn record and cannot be repaired here "
                f"({exc.strerror}); make the folder writable and open it again."
            ) from None
        self._known = None
        self._record_recovery(pending, len(torn), digest, torn_at)

    def _record_recovery(self, pending: Path, n: int, digest: str, at: int | None) -> None:
        aside = pending.with_name(pending.name.removesuffix(".pending"))
        seq, prev = self._tail()
        data: dict[str, Any] = {"torn_bytes": n, "torn_sha256": digest, "kept_as": aside.name,
                                "at_offset": at}  # fmt: skip
        if at is None:
            data["recorded_after_a_crash"] = True  # kept aside by a writer that died then
        rec = {
            "v": FORMAT_VERSION,
            "seq": seq + 1,
            "time": utc_now(),
            "actor": self.actor.to_dict(),
            "action": "log.recover",
            "image": self.image,
            "target": {"log": self.path.name},
            "data": data,
            "source": dict(HUMAN),
            "schema": self.schema,
            "prev": prev,
        }
        line, _ = _encode_line(normalise_record(rec))
        self._write_line(line)
        try:
            os.replace(pending, aside)
            fsync_dir(aside.parent)
        except OSError as exc:
            raise LogError(
                f"{pending}: recorded, but cannot be renamed to {aside.name} ({exc.strerror})."
            ) from None

    def _recover_pending(self) -> None:
        """Under the lock, on open: record torn lines a crashed writer kept aside but did not
        record (``<log>.torn-<digest>.pending``); rename those it recorded but did not rename."""
        pattern = glob.escape(self.path.name) + ".torn-*.pending"
        for pending in sorted(self.path.parent.glob(pattern)):
            aside_name = pending.name.removesuffix(".pending")
            try:
                torn = read_regular(pending, MAX_LINE_BYTES + 2)
            except (LogError, OSError):
                continue  # not ours to touch (not a regular file): verify will not see it either
            digest = hashlib.sha256(torn).hexdigest()
            if not aside_name.endswith(f".torn-{digest[:16]}"):
                continue  # half-written by the crash itself (atomic writes make this a stray)
            last = self._last_record()
            if (last.get("action") == "log.recover"
                    and (last.get("data") or {}).get("kept_as") == aside_name):  # fmt: skip
                os.replace(pending, pending.with_name(aside_name))  # recorded, not yet renamed
                continue
            self._record_recovery(pending, len(torn), digest, None)

    def _last_record(self) -> dict[str, Any]:
        fd = self._open()
        size = os.fstat(fd).st_size
        if not size:
            return {}
        last, _ = _read_last_line(fd, size)
        try:
            rec = parse_line(last)
        except ValueError:
            return {}
        return rec if isinstance(rec, dict) else {}

    def _check_image(self) -> None:
        try:
            first = next(iter_records(self.path), None)
        except LogIntegrityError as exc:
            raise LogIntegrityError(
                f"{exc} Run 'clinlabel log verify' and restore the log from a backup.", 0
            ) from None
        if first is None:
            return
        image = first.get("image")
        theirs = image.get("sha256") if isinstance(image, dict) else None
        if theirs and theirs != self.image.get("sha256"):
            raise LogError(
                f"{self.path}: this log belongs to another image (voxel digest "
                f"{theirs[:12]}…, this image {str(self.image.get('sha256'))[:12]}…); move the "
                "log aside or open the image it belongs to."
            )


def _read_last_line(fd: int, size: int) -> tuple[bytes, int | None]:
    """Last complete line, and the offset of a torn (unterminated) tail if there is one."""
    window = 1 << 16
    while True:
        if window > 4 * (MAX_LINE_BYTES + 2):
            raise LogIntegrityError(
                f"the log's last line is longer than {MAX_LINE_BYTES >> 20} MiB (not a record); "
                "run 'clinlabel log verify' and restore the log from a backup."
            )
        start = max(0, size - window)
        os.lseek(fd, start, os.SEEK_SET)
        chunk = os.read(fd, size - start)
        torn_at = None
        end = len(chunk)
        if not chunk.endswith(b"\n"):
            nl = chunk.rfind(b"\n")
            if nl < 0 and start > 0:
                window *= 4
                continue
            torn_at = start + nl + 1
            end = nl + 1
        if end == 0:
            return b"", torn_at
        nl = chunk.rfind(b"\n", 0, end - 1)
        if nl < 0 and start > 0:
            window *= 4
            continue
        return chunk[nl + 1 : end], torn_at
