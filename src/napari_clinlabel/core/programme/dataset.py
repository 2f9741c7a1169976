"""A dataset: its folder, signed manifest, roster and dataset-level log.

The dataset log ``clinlabel-dataset.jsonl`` is an ordinary clinlabel log (format v2: attributed,
hash-chained, fsynced, verifiable with ``clinlabel log verify``); its ``image`` is the dataset
(``uid`` ``clinlabel-dataset:<id>``, ``sha256`` of the id). Records: ``dataset.init`` (seq 0; pins
the owner and the manifest's sha256), ``dataset.design`` (a new signed manifest), ``case.add``,
``calibration.result`` and ``case.assign``. The state of the programme is these records; readers'
reads live in ``reads/<case>__<reader>.clinlabel.jsonl``. Changes that depend on the state (add,
assign) hold the dataset lock (``.clinlabel-dataset.lock``, flock) across read-decide-append, so
processes on several workstations keep one chain and never double-assign.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import AuditLog, iter_records
from napari_clinlabel.core.log.identity import Actor, Roster, current_actor
from napari_clinlabel.core.programme.manifest import (
    load_manifest,
    major,
    manifest_path,
    roster_of,
    write_manifest,
)

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


@dataclass
class State:
    """The programme's state, from the dataset log."""

    cases: dict[str, Case] = field(default_factory=dict)
    assignments: list[dict[str, Any]] = field(default_factory=list)  # {case, reader, read, why}
    calibrations: list[dict[str, Any]] = field(default_factory=list)  # {reader, major, passed, ...}
    manifest_sha: str | None = None
    owner: dict[str, Any] | None = None

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


def state_from_records(records: Any) -> State:
    """Fold the dataset log's records into a :class:`State`."""
    st = State()
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
            )  # fmt: skip
        elif a == "case.assign":
            st.assignments.append({"case": t["case"], **d})
        elif a == "calibration.result":
            st.calibrations.append({"reader": t["reader"], **d, "seq": r["seq"], "time": r["time"]})
    return st


class Dataset:
    """An opened dataset: manifest checked against the roster, log, lock and state."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.manifest, self.manifest_sha, self.roster = load_manifest(self.folder)
        self.log_path = self.folder / LOG_NAME
        self.guideline = self.manifest["guideline"]
        self.major = major(self.guideline["version"])

    # -- state ------------------------------------------------------------------------------
    def state(self) -> State:
        """The state from the log; refused when the manifest is not the one the log last named."""
        st = state_from_records(iter_records(self.log_path)) if self.log_path.is_file() else State()
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
        who = self.owner_actor()
        if honeypot and not gold_authors:
            raise InputError(
                "a honeypot needs its gold answer's author(s) (--gold-author U) so they never read it"
            )
        for u in (gold_authors or []) + (exclude or []):
            if u not in self.roster.users:
                raise InputError(f"{self.roster.path}: {u!r} is not in the roster; check the id")
        for p in map(Path, paths):
            if not p.exists():
                raise InputError(f"{p}: no such file or folder; check the path")
            if p.is_symlink() or not (p.is_file() or p.is_dir()):
                raise InputError(f"{p}: not a regular file or folder; give the image itself")
        out = []
        with self.locked():
            st = self.state()
            known = {c.path for c in st.cases.values()}
            log = self.log(who)
            try:
                for p in map(Path, paths):
                    rel = _relative(p, self.folder)
                    if rel in known:
                        raise InputError(
                            f"{p}: is already case {_case_for(st, rel)!r}; nothing more was added"
                        )
                    stem = p.name.split(".", 1)[0] or "case"
                    base = _CASE_RE.sub("-", stem).strip("-")[:64] or "case"
                    cid, n = base, 2
                    while cid in st.cases:
                        cid, n = f"{base}-{n}", n + 1
                    data = {"path": rel, "kind": "folder" if p.is_dir() else "file", "class": cls,
                            "honeypot": honeypot, "gold_authors": sorted(gold_authors or []),
                            "exclude": sorted(exclude or [])}  # fmt: skip
                    log.append("case.add", {"case": cid}, data)
                    case = Case(
                        cid, rel, cls, honeypot, sorted(gold_authors or []), sorted(exclude or [])
                    )
                    st.cases[cid], known = case, known | {rel}
                    out.append(case)
            finally:
                log.close()
        return out

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
    """Write the owner-signed manifest and start (or, with ``update``, continue) the dataset log."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
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
    write_manifest(folder, design, who.id)
    ds = Dataset(folder)
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
