"""Where the programme stands (``dataset status``), the adjudication queue its triggers fill,
and the next case for a reader (``dataset next``).

A trigger trips for a case with two or more completed production reads when, between any two of
them, a label's Dice (final labels, :func:`~napari_clinlabel.core.quality.agreement.logs_agreement`)
falls below the design's ``dice_below`` threshold for that label (``default`` otherwise), or a
high-stakes grade differs. The case then waits in the adjudication queue until an adjudicator's
log of it holds a signed ``adjudicate`` record — one that chose the final grade of each
high-stakes scale the reads disagree on, when a grade tripped it (a labels-only decision leaves a
grade dispute open). Status is read from the logs; the only thing written is
the read-state cache (:class:`~napari_clinlabel.core.programme.reads.ReadIndex`). A read log that
cannot be read is listed under ``unreadable`` (case, reader, why) and counted; the rest proceeds.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError, InputError, PermissionRefused
from napari_clinlabel.core.programme.dataset import READS, Dataset, State
from napari_clinlabel.core.programme.design import readers_needed
from napari_clinlabel.core.programme.reads import (
    COMPLETED,
    CORRUPT,
    IN_PROGRESS,
    NOT_STARTED,
    ReadIndex,
    ReadState,
)
from napari_clinlabel.core.programme.source import local_path
from napari_clinlabel.core.quality.adjudication import is_adjudicated
from napari_clinlabel.core.quality.agreement import logs_agreement


def triggers(
    ds: Dataset, case_id: str, readers: list[str], states: dict[str, ReadState]
) -> list[str]:
    """Why ``case_id`` needs adjudication (empty: it does not)."""
    adj = ds.manifest["adjudication"]
    dice_below = adj.get("dice_below") or {}
    stakes = [str(s) for s in adj.get("high_stakes_grades") or []]
    done = [u for u in readers if states[u].status == COMPLETED]
    why: list[str] = []
    for a, b in itertools.combinations(done, 2):
        for scale in stakes:
            ga, gb = states[a].grades.get(scale), states[b].grades.get(scale)
            if ga != gb:
                why.append(f"{scale}: {a} {ga} vs {b} {gb} (high-stakes grade)")
        try:
            labels = logs_agreement(ds.read_log(case_id, a), ds.read_log(case_id, b))["labels"]
        except InputError:  # no labels in these reads (a grading-only read): grades decide
            continue
        for label, m in sorted(labels.items()):
            t = float(dice_below.get(label, dice_below.get("default", 0.0)))
            if m["dice"] is not None and m["dice"] < t:
                why.append(f"label {label}: Dice {m['dice']:.3f} between {a} and {b} < {t}")
    return why


DEFAULT_HONEYPOT_FLOOR = 0.8  # reading.honeypot_min_accuracy when the design names none


def _score_honeypot(
    ds: Dataset, case: Any, states: dict[str, ReadState], index: ReadIndex,
    out: dict[str, list[bool]],
) -> None:  # fmt: skip
    """A completed honeypot read agrees with the gold answer (the gold author's completed read of
    the case) when no adjudication trigger trips between them."""
    for author in case.gold_authors:
        gold = index.state(ds.read_name(case.id, author))
        if gold.status != COMPLETED:
            continue
        for u, s in states.items():
            if s.status == COMPLETED and u != author:
                out[u].append(not triggers(ds, case.id, [u, author], {u: s, author: gold}))
        return


def disputed_grades(ds: Dataset, states: dict[str, ReadState]) -> list[str]:
    """The high-stakes scales on which the completed reads in ``states`` disagree."""
    stakes = [str(s) for s in ds.manifest["adjudication"].get("high_stakes_grades") or []]
    done = [s for s in states.values() if s.status == COMPLETED]
    return [sc for sc in stakes if len({s.grades.get(sc) for s in done}) > 1]


def _adjudicated(ds: Dataset, case_id: str, grades: list[str] | None = None) -> bool:
    """An adjudicator's signed decision of the case (choosing each of ``grades``) is logged."""
    return any(
        ds.read_log(case_id, u).is_file() and is_adjudicated(ds.read_log(case_id, u), grades or ())
        for u in ds.readers("adjudicator")
    )


def status(ds: Dataset, st: State | None = None) -> dict[str, Any]:
    """Progress per reader and class, double-read rates achieved vs design, open adjudications,
    calibration state (JSON-friendly)."""
    st = st or ds.state()
    by_case: dict[str, list[str]] = defaultdict(list)
    for a in st.assignments:
        by_case[a["case"]].append(a["reader"])
    per_reader: dict[str, Counter[str]] = defaultdict(Counter)
    per_class: dict[str, dict[str, Any]] = {}
    queue: list[dict[str, Any]] = []
    honeypots: dict[str, list[bool]] = defaultdict(list)  # reader -> agreed with gold, per read
    index = ReadIndex(ds.folder / READS)
    unreadable: list[dict[str, str]] = []
    for case in st.cases.values():
        readers = by_case.get(case.id, [])
        states = {u: index.state(ds.read_name(case.id, u)) for u in readers}
        for u, s in states.items():
            per_reader[u][s.status] += 1
            per_reader[u]["assigned"] += 1
            if s.status == CORRUPT:
                unreadable.append({"case": case.id, "reader": u, "why": s.problem or ""})
            elif s.status != COMPLETED and st.flagged(case.id, u):
                per_reader[u]["flagged"] += 1
            if case.honeypot:
                per_reader[u]["honeypots"] += 1
        if case.honeypot:
            _score_honeypot(ds, case, states, index, honeypots)
            continue
        done = [s for s in states.values() if s.status == COMPLETED]
        _, cls, rate = readers_needed(ds.manifest, case, done)
        c = per_class.setdefault(cls, {"design_rate": rate, "cases": 0, "double_assigned": 0,
                                       "double_completed": 0, "reads_completed": 0})  # fmt: skip
        c["cases"] += 1
        c["double_assigned"] += len(readers) >= 2
        c["double_completed"] += len(done) >= 2
        c["reads_completed"] += len(done)
        if len(done) >= 2 and not _adjudicated(ds, case.id, disputed_grades(ds, states)):
            why = triggers(ds, case.id, readers, states)
            if why:
                queue.append(
                    {
                        "case": case.id,
                        "readers": [u for u in readers if states[u].status == COMPLETED],
                        "why": why,
                    }
                )
    index.save()
    for c in per_class.values():
        c["achieved_rate"] = c["double_assigned"] / c["cases"] if c["cases"] else 0.0
    calibration = {}
    for u in ds.readers("annotator"):
        hist = [c for c in st.calibrations if c["reader"] == u]
        calibration[u] = {
            "current": st.calibrated(u, ds.major),
            "history": [
                {
                    "guideline": c["guideline"],
                    "passed": c["passed"],
                    "time": c["time"],
                    **c.get("figures", {}),
                }
                for c in hist
            ],  # fmt: skip
        }
    floor = float(ds.manifest["reading"].get("honeypot_min_accuracy", DEFAULT_HONEYPOT_FLOOR))
    accuracy = {u: {"reads": len(v), "agreed": sum(v), "accuracy": sum(v) / len(v)}
                for u, v in sorted(honeypots.items())}  # fmt: skip
    flags = [f"{u}: honeypot accuracy {a['accuracy']:.0%} over {a['reads']} gold case(s) is below "
             f"{floor:.0%}" for u, a in accuracy.items() if a["accuracy"] < floor]  # fmt: skip
    return {
        "honeypot_accuracy": accuracy,
        "flags": flags,
        "dataset": ds.manifest["id"],
        "guideline": ds.guideline,
        "cases": len(st.cases),
        "honeypots": sum(c.honeypot for c in st.cases.values()),
        "assignments": len(st.assignments),
        "readers": {
            u: {
                k: int(per_reader[u][k])
                for k in (
                    "assigned",
                    NOT_STARTED,
                    IN_PROGRESS,
                    COMPLETED,
                    "flagged",
                    CORRUPT,
                    "honeypots",
                )
            }
            for u in sorted(set(per_reader) | set(ds.readers("annotator")))
        },  # fmt: skip
        "classes": per_class,
        "adjudication_queue": queue,
        "calibration": calibration,
        "unreadable": unreadable,
        "flagged": [f for f in st.flags if f["reader"] in by_case.get(f["case"], [])],
    }


FLAGGED, RETURNED = "flagged", "returned"


def _require_calibrated(ds: Dataset, st: State, reader: str) -> None:
    if not st.calibrated(reader, ds.major):
        raise PermissionRefused(
            f"{reader!r} has not passed the gold panel for guideline {ds.guideline['version']} "
            f"(major version {ds.major}); no cases until calibrated: the owner records it with "
            "'clinlabel dataset calibrate'"
        )


def worklist(
    ds: Dataset, reader: str, st: State | None = None, index: ReadIndex | None = None
) -> list[dict[str, Any]]:
    """The reader's assigned cases in assignment order: ``case`` and ``status`` (not started, in
    progress, completed, flagged, returned — a reviewer sent it back — or unreadable), with the
    flag's reason or the reviewer's comment as ``note``. Honeypots are not told apart."""
    st = st or ds.state()
    index = index or ReadIndex(ds.folder / READS)
    rows = []
    for a in st.assignments:
        if a["reader"] != reader:
            continue
        rs = index.state(ds.read_name(a["case"], reader))
        flag = st.flagged(a["case"], reader) if rs.status != COMPLETED else None
        row = {"case": a["case"], "status": rs.status, "note": ""}
        if flag is not None:
            row.update(status=FLAGGED, note=flag["reason"])
        elif rs.returned is not None:
            row.update(status=RETURNED, note=rs.returned)
        elif rs.status == CORRUPT:
            row["note"] = rs.problem or ""
        rows.append(row)
    return rows


def review_queue(
    ds: Dataset, reviewer: str, st: State | None = None, index: ReadIndex | None = None
) -> list[dict[str, Any]]:
    """Completed production reads by someone else with no review or approval signature after
    their latest ``image.done``: ``case``, ``reader``, ``read`` (the read's log)."""
    st = st or ds.state()
    index = index or ReadIndex(ds.folder / READS)
    person = ds.roster.person_of(reviewer)
    out = []
    for a in st.assignments:
        if ds.roster.person_of(a["reader"]) == person or st.cases[a["case"]].honeypot:
            continue
        name = ds.read_name(a["case"], a["reader"])
        rs = index.state(name)
        if rs.status == COMPLETED and not rs.reviewed:
            out.append(
                {"case": a["case"], "reader": a["reader"], "read": str(ds.folder / READS / name)}
            )
    return out


def adjudication_queue(
    ds: Dataset, adjudicator: str, st: State | None = None
) -> list[dict[str, Any]]:
    """Open adjudications the adjudicator did not read: ``case``, ``readers``, ``why``,
    ``reads`` (the completed reads' logs)."""
    st = st or ds.state()
    person = ds.roster.person_of(adjudicator)
    out = []
    for item in status(ds, st)["adjudication_queue"]:
        if all(ds.roster.person_of(u) != person for u in item["readers"]):
            reads = [str(ds.read_log(item["case"], u)) for u in item["readers"]]
            out.append({**item, "reads": reads})
    return out


def next_case(ds: Dataset, reader: str, st: State | None = None) -> dict[str, Any] | None:
    """The next case for ``reader``: their first unfinished assignment (in progress before not
    started; flagged ones skipped); for a reviewer, the first completed production read by someone
    else not yet reviewed; for an adjudicator, the first open adjudication they did not read."""
    st = st or ds.state()
    if reader not in ds.roster.users:
        owner = ds.roster.owner or {}
        if owner.get("id") == reader:  # named under [owner] only: owns the dataset, reads nothing
            raise InputError(
                f"{ds.roster.path}: {reader!r} is the dataset's owner and holds no reading role, "
                "so has no cases; add a [[users]] entry with a role to read, or use 'dataset "
                "status' for the programme"
            )
        raise InputError(f"{ds.roster.path}: {reader!r} is not in the roster; check the id")
    roles = ds.roster.roles_of(reader)
    index = ReadIndex(ds.folder / READS)
    if "annotator" in roles:
        _require_calibrated(ds, st, reader)
        rows = worklist(ds, reader, st, index)
        for wanted in ((IN_PROGRESS, RETURNED), (NOT_STARTED,)):
            for row in rows:
                if row["status"] in wanted:
                    e = _entry(ds, st, row["case"], reader, row["status"], "read")
                    if row["status"] == RETURNED:
                        e["returned"] = row["note"]
                    return e
    if "reviewer" in roles:
        for item in review_queue(ds, reader, st, index)[:1]:
            e = _entry(ds, st, item["case"], reader, "to review", "review")
            e.update(read=item["read"], reader=item["reader"])
            return e
    if "adjudicator" in roles:
        for item in adjudication_queue(ds, reader, st)[:1]:
            e = _entry(ds, st, item["case"], reader, "to adjudicate", "adjudicate")
            e.update(reads=item["reads"], why=item["why"])
            return e
    return None


def _entry(
    ds: Dataset, st: State, case_id: str, reader: str, state: str, task: str
) -> dict[str, Any]:
    case = st.cases[case_id]
    # whether the case is a honeypot is never said: gold cases are mixed in blindly
    e = {"case": case_id, "path": str(local_path(ds, case)), "task": task, "status": state,
         "log": str(ds.read_log(case_id, reader))}  # fmt: skip
    if case.pacs is not None:
        e["pacs"] = dict(case.pacs)
    return e


__all__ = [
    "triggers", "disputed_grades", "status", "worklist", "review_queue", "adjudication_queue", "next_case",
    "FLAGGED", "RETURNED", "ClinlabelError",
]  # fmt: skip
