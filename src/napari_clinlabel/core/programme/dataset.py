"""A dataset: its folder, signed manifest, roster and dataset-level log.

The dataset log ``clinlabel-dataset.jsonl`` is an ordinary clinlabel log (format v2: attributed,
hash-chained, fsynced, verifiable with ``clinlabel log verify``); its ``image`` is the dataset
(``uid`` ``clinlabel-dataset:<id>``, ``sha256`` of the id). Records: ``dataset.init`` (seq 0; pins
the owner and the manifest's sha256), ``dataset.design`` (a new signed manifest), ``case.add``,
``calibration.result``, ``case.assign`` and ``case.flag`` (a reader flags an assigned case with a
reason). The state of the programme is these records; readers' reads live in
``reads/<case>__<reader>.clinlabel.jsonl``. A case is a file, a folder or a PACS series
(``kind`` ``pacs-series``: the DICOMweb URL and SeriesInstanceUID; pulled into the local cache
when opened; credentials never stored).

The state folded from the log is cached in ``.clinlabel-cache/state.json`` with the byte length
folded and a sha256 of the 4 KiB before it: a later fold reads only the records appended since,
and falls back to folding the whole log whenever the cache does not match the log's bytes. Changes that depend on the state (add,
assign) hold the dataset lock (``.clinlabel-dataset.lock``, flock) across read-decide-append, so
processes on several workstations keep one chain and never double-assign.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from napari_clinlabel.core.errors import InputError, LogIntegrityError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor, Roster, current_actor
from napari_clinlabel.core.log.reader import MAX_LINE_BYTES, open_regular, parse_line
from napari_clinlabel.core.pacs.client import check_uid
from napari_clinlabel.core.programme.manifest import (
    load_manifest,
    major,
    manifest_path,
    roster_of,
    write_manifest,
)
from napari_clinlabel.core.programme.reads import CACHE_DIR, load_cache, tail_digest, write_cache

LOG_NAME = "clinlabel-dataset.jsonl"
LOCK_NAME = ".clinlabel-dataset.lock"
READS = "reads"
_CASE_RE = re.compile(r"[^A-Za-z0-9-]+")


@dataclass
class Case:
    """One case of the dataset, as ``case.add`` recorded it."""

    id: str
    path: str
    cls: str | None = None
    honeypot: bool = False
    gold_authors: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    kind: str = "file"  # file | folder | pacs-series
    pacs: dict[str, str] | None = None  # {"url", "series_uid"} of a PACS series


@dataclass
class State:
    """The programme's state, from the dataset log."""

    cases: dict[str, Case] = field(default_factory=dict)
    assignments: list[dict[str, Any]] = field(default_factory=list)  # {case, reader, read, why}
    calibrations: list[dict[str, Any]] = field(default_factory=list)  # {reader, major, passed, ...}
    flags: list[dict[str, Any]] = field(default_factory=list)  # {case, reader, reason, seq, time}
    manifest_sha: str | None = None
    owner: dict[str, Any] | None = None

    def flagged(self, case_id: str, reader: str) -> dict[str, Any] | None:
        """The reader's latest flag on the case, or None."""
        found = None
        for f in self.flags:
            if f["case"] == case_id and f["reader"] == reader:
                found = f
        return found

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly form (for the state cache)."""
        return {"cases": [dataclasses.asdict(c) for c in self.cases.values()],
                "assignments": self.assignments, "calibrations": self.calibrations,
                "flags": self.flags, "manifest_sha": self.manifest_sha, "owner": self.owner}  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> State:
        """Inverse of :meth:`to_json` (TypeError/KeyError on anything else)."""
        cases = {c["id"]: Case(**c) for c in d["cases"]}
        return cls(cases, list(d["assignments"]), list(d["calibrations"]), list(d["flags"]),
                   d["manifest_sha"], d["owner"])  # fmt: skip

    def readers_of(self, case_id: str) -> list[str]:
        """Readers assigned ``case_id``, in assignment order."""
        return [a["reader"] for a in self.assignments if a["case"] == case_id]

    def calibrated(self, reader: str, guideline_major: str) -> bool:
        """True when the reader's latest calibration for this major version passed."""
        last = None
        for c in self.calibrations:
            if c["reader"] == reader and c["major"] == guideline_major:
                last = c
        return bool(last and last["passed"])


def dataset_image(ds_id: str) -> dict[str, Any]:
    """The ``image`` field of every record of the dataset log."""
    return {
        "uid": f"clinlabel-dataset:{ds_id}",
        "sha256": hashlib.sha256(ds_id.encode()).hexdigest(),
    }


def state_from_records(records: Any, st: State | None = None) -> State:
    """Fold the dataset log's records into a :class:`State` (continuing ``st`` when given)."""
    st = st or State()
    for r in records:
        a, t, d = r.get("action"), r.get("target") or {}, r.get("data") or {}
        if a == "dataset.init":
            st.owner, st.manifest_sha = d.get("owner"), d.get("manifest")
        elif a == "dataset.design":
            st.manifest_sha = d.get("manifest")
        elif a == "case.add":
            st.cases[t["case"]] = Case(
                t["case"], d["path"], d.get("class"), bool(d.get("honeypot")),
                list(d.get("gold_authors") or []), list(d.get("exclude") or []),
                d.get("kind") or "file", d.get("pacs"),
            )  # fmt: skip
        elif a == "case.assign":
            st.assignments.append({"case": t["case"], **d})
        elif a == "calibration.result":
            st.calibrations.append({"reader": t["reader"], **d, "seq": r["seq"], "time": r["time"]})
        elif a == "case.flag":
            st.flags.append({"case": t["case"], "reader": r["actor"]["id"],
                             "reason": d.get("reason", ""), "seq": r["seq"], "time": r["time"]})  # fmt: skip
    return st


_STATE_FORMAT = "clinlabel-dataset-state/1"


def _records_from(path: Path, offset: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(end offset, record) of each complete line from byte ``offset`` on (a torn last line is
    left for later); raises like :func:`iter_records` on a bad line."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        fh.seek(offset)
        pos = offset
        while True:
            line = fh.readline(MAX_LINE_BYTES + 2)
            if not line.endswith(b"\n"):
                return
            try:
                rec = parse_line(line)
            except ValueError as exc:
                raise LogIntegrityError(f"{path}: byte {pos}: {exc}.", -1) from None
            if type(rec) is not dict:
                raise LogIntegrityError(f"{path}: byte {pos}: not a JSON object.", -1)
            pos += len(line)
            yield pos, rec


def fold_log(log_path: Path, cache: Path) -> State:
    """The state of the dataset log, continuing the cached fold when the cache matches the log
    (its folded bytes end with the same 4 KiB); otherwise the whole log is folded."""
    st, start = State(), 0
    raw = load_cache(cache, _STATE_FORMAT)
    if raw is not None:
        try:
            offset = int(raw["offset"])
            if offset <= os.stat(log_path).st_size and tail_digest(log_path, offset) == raw["tail"]:
                st, start = State.from_json(raw["state"]), offset
        except (OSError, TypeError, KeyError, ValueError):
            st, start = State(), 0
    end = start
    for pos, rec in _records_from(log_path, start):
        state_from_records((rec,), st)
        end = pos
    if end != start:
        blob = {"format": _STATE_FORMAT, "offset": end, "tail": tail_digest(log_path, end),
                "state": st.to_json()}  # fmt: skip
        write_cache(cache, orjson.dumps(blob))
    return st


class Dataset:
    """An opened dataset: manifest checked against the roster, log, lock and state."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.manifest, self.manifest_sha, self.roster = load_manifest(self.folder)
        self.log_path = self.folder / LOG_NAME
        self.guideline = self.manifest["guideline"]
        self.major = major(self.guideline["version"])
        self.cache_dir = self.folder / CACHE_DIR

    # -- state ------------------------------------------------------------------------------
    def state(self, cached: bool = True) -> State:
        """The state from the log; refused when the manifest is not the one the log last named.

        ``cached=False`` folds the whole log and neither reads nor writes the cache: what every
        change (add, assign, flag) decides on, so a forged cache file can mislead a status
        display but never what is recorded.
        """
        if not self.log_path.is_file():
            st = State()
        elif cached:
            st = fold_log(self.log_path, self.cache_dir / "state.json")
        else:
            st = state_from_records(iter_records(self.log_path))
        if st.manifest_sha is not None and st.manifest_sha != self.manifest_sha:
            raise PermissionRefused(
                f"{manifest_path(self.folder)}: is not the manifest the dataset log last recorded "
                "(replaced outside clinlabel?); the owner runs 'clinlabel dataset init --update'"
            )
        if st.owner is not None and st.owner != self.roster.owner:
            raise PermissionRefused(
                f"{self.log_path}: pins owner {st.owner.get('id')!r}, the roster names "
                f"{(self.roster.owner or {}).get('id')!r}; the roster was swapped — restore it"
            )
        return st

    def read_log(self, case_id: str, reader: str) -> Path:
        """Where ``reader``'s read of ``case_id`` is logged."""
        return self.folder / READS / self.read_name(case_id, reader)

    def read_name(self, case_id: str, reader: str) -> str:
        """The file name of ``reader``'s read of ``case_id`` in ``reads/``."""
        return f"{case_id}__{reader}.clinlabel.jsonl"

    def readers(self, role: str = "annotator") -> list[str]:
        """Roster users granted ``role`` (sorted)."""
        return sorted(u for u in self.roster.users if role in self.roster.roles_of(u))

    # -- acting -----------------------------------------------------------------------------
    def actor(self) -> Actor:
        """The human acting now, by the dataset roster."""
        return current_actor(manifest_path(self.folder))

    def owner_actor(self) -> Actor:
        """The acting human, who must be the roster's owner."""
        who = self.actor()
        if self.roster.owner is None or who.id != self.roster.owner["id"]:
            raise PermissionRefused(
                f"{self.roster.path}: only the dataset owner "
                f"{(self.roster.owner or {}).get('id')!r} runs the programme, not {who.id!r}"
            )
        return who

    def log(self, actor: Actor) -> AuditLog:
        """The dataset log, written as ``actor``."""
        return AuditLog(self.log_path, dataset_image(self.manifest["id"]), actor, schema=None)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the dataset lock (exclusive flock) across read-decide-append."""
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- changes ----------------------------------------------------------------------------
    def add_cases(
        self,
        paths: list[str | os.PathLike[str]],
        cls: str | None = None,
        honeypot: bool = False,
        gold_authors: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[Case]:
        """Record each file or folder as a case (``case.add``); a path already added is refused."""
        items = []
        for p in map(Path, paths):
            if not p.exists():
                raise InputError(f"{p}: no such file or folder; check the path")
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                raise InputError(f"{p}: not a regular file or folder; give the image itself")
            kind = "folder" if p.is_dir() else "file"
            items.append((str(p), _relative(p, self.folder), p.name.split(".", 1)[0], kind, None))
        return self._add(items, cls, honeypot, gold_authors, exclude)

    def add_pacs_series(
        self,
        url: str,
        series_uids: list[str],
        cls: str | None = None,
        honeypot: bool = False,
        gold_authors: list[str] | None = None,
        exclude: list[str] | None = None,
    ) -> list[Case]:
        """Record each PACS series (DICOMweb ``url`` + SeriesInstanceUID) as a case; it is pulled
        into the local cache when a reader opens it. No credentials are recorded."""
        if not url.startswith(("http://", "https://")) or "@" in url.split("/")[2]:
            raise InputError(
                f"{url}: give the DICOMweb base URL (http(s)://host/dicom-web) without credentials"
            )
        url = url.rstrip("/")
        items = []
        for uid in series_uids:
            uid = check_uid(uid, "Series Instance UID")
            key = f"dicomweb:{url}#series={uid}"
            pacs = {"url": url, "series_uid": uid}
            items.append((uid, key, "series-" + uid.rsplit(".", 1)[-1], "pacs-series", pacs))
        return self._add(items, cls, honeypot, gold_authors, exclude)

    def _add(
        self,
        items: list[tuple[str, str, str, str, dict[str, str] | None]],
        cls: str | None,
        honeypot: bool,
        gold_authors: list[str] | None,
        exclude: list[str] | None,
    ) -> list[Case]:
        """Record cases given as (shown name, stored path/key, id stem, kind, pacs)."""
        who = self.owner_actor()
        if honeypot and not gold_authors:
            raise InputError(
                "a honeypot needs its gold answer's author(s) (--gold-author U) so they never read it"
            )
        for u in (gold_authors or []) + (exclude or []):
            if u not in self.roster.users:
                raise InputError(f"{self.roster.path}: {u!r} is not in the roster; check the id")
        out = []
        with self.locked():
            st = self.state(cached=False)
            known = {c.path for c in st.cases.values()}
            log = self.log(who)
            try:
                for shown, rel, stem, kind, pacs in items:
                    if rel in known:
                        raise InputError(
                            f"{shown}: is already case {_case_for(st, rel)!r}; nothing more was added"
                        )
                    base = _CASE_RE.sub("-", stem or "case").strip("-")[:64] or "case"
                    cid, n = base, 2
                    while cid in st.cases:
                        cid, n = f"{base}-{n}", n + 1
                    data = {"path": rel, "kind": kind, "class": cls, "honeypot": honeypot,
                            "gold_authors": sorted(gold_authors or []),
                            "exclude": sorted(exclude or [])}  # fmt: skip
                    if pacs is not None:
                        data["pacs"] = pacs
                    log.append("case.add", {"case": cid}, data)
                    case = Case(cid, rel, cls, honeypot, sorted(gold_authors or []),
                                sorted(exclude or []), kind, pacs)  # fmt: skip
                    st.cases[cid], known = case, known | {rel}
                    out.append(case)
            finally:
                log.close()
        return out

    def flag(self, case_id: str, reason: str) -> dict[str, Any]:
        """The acting reader flags their assigned case with a reason (``case.flag``)."""
        who = self.actor()
        reason = " ".join(reason.split())
        if not reason:
            raise InputError(f"{case_id}: a flag needs a reason (what is wrong with the case)")
        st = self.state(cached=False)
        if case_id not in st.cases:
            raise InputError(f"{self.log_path}: no case {case_id!r}; check the id")
        if who.id not in st.readers_of(case_id):
            raise PermissionRefused(
                f"{case_id}: is not assigned to {who.id!r}; nothing was flagged"
            )
        log = self.log(who)
        try:
            return log.append("case.flag", {"case": case_id}, {"reason": reason})
        finally:
            log.close()

    def record_calibration(self, reader: str, result: dict[str, Any]) -> dict[str, Any]:
        """Record a gold-panel result for ``reader`` under the guideline in force."""
        who = self.owner_actor()
        if reader not in self.roster.users:
            raise InputError(f"{self.roster.path}: {reader!r} is not in the roster; check the id")
        data = {"guideline": self.guideline["version"], "major": self.major,
                "passed": bool(result["passed"]), "failures": list(result.get("failures") or []),
                "figures": _figures(result)}  # fmt: skip
        log = self.log(who)
        try:
            return log.append("calibration.result", {"reader": reader}, data)
        finally:
            log.close()


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if result.get("segmentation"):
        out["mean_dice"] = result["segmentation"].get("mean_dice")
    if result.get("grading"):
        out["kappa"] = result["grading"].get("kappa")
        out["n"] = result["grading"].get("n")
    return out


def _relative(p: Path, folder: Path) -> str:
    p = p.resolve()
    try:
        return p.relative_to(folder.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def _case_for(st: State, rel: str) -> str:
    return next(c.id for c in st.cases.values() if c.path == rel)


def init_dataset(
    folder: str | os.PathLike[str], design: dict[str, Any], update: bool = False
) -> Dataset:
    """Write the owner-signed manifest and start (or, with ``update``, continue) the dataset log.

    A refused init leaves nothing behind: a folder it made is removed, and so is a manifest it
    wrote into an existing folder before the dataset log was started."""
    folder = Path(folder)
    if not folder.is_dir():
        # the owner-signed roster must be in the folder before init: a missing folder holds
        # none, so this refuses (roster_of says where the roster goes) and nothing is created
        roster_of(folder)
        raise InputError(f"{folder}: is not a folder; give the dataset folder")
    log_path = folder / LOG_NAME
    if log_path.exists() and not update:
        raise InputError(f"{folder}: is a dataset already; pass --update to change its design")
    if update and not log_path.exists():
        raise InputError(f"{folder}: is not a dataset yet; run dataset init without --update")
    if update:
        Dataset(folder).state()  # the manifest in place must be the owner's before it is replaced
    who = current_actor(manifest_path(folder))
    from_roster = _roster_owner(folder)
    if who.id != from_roster["id"]:
        raise PermissionRefused(
            f"{folder}: only the roster's owner {from_roster['id']!r} initialises the dataset, not {who.id!r}"
        )
    manifest, had_manifest = manifest_path(folder), manifest_path(folder).exists()
    try:
        write_manifest(folder, design, who.id)
        ds = Dataset(folder)
    except BaseException:
        if not update and not had_manifest and not log_path.exists():
            for made in (manifest, manifest.with_name(manifest.name + ".sig")):
                made.unlink(missing_ok=True)  # no half-made dataset: init can simply be rerun
        raise
    log = ds.log(who)
    try:
        data = {"manifest": ds.manifest_sha, "guideline": ds.guideline["version"]}
        if update:
            log.append("dataset.design", None, data)
        else:
            log.append(
                "dataset.init",
                None,
                {**data, "id": ds.manifest["id"], "owner": dict(ds.roster.owner or {})},
            )
    finally:
        log.close()
    return ds


def _roster_owner(folder: Path) -> dict[str, str]:
    roster: Roster = roster_of(folder)
    assert roster.owner is not None
    return roster.owner


__all__ = [
    "LOG_NAME",
    "Case",
    "State",
    "Dataset",
    "dataset_image",
    "state_from_records",
    "init_dataset",
]
