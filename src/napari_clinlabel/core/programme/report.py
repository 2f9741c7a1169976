"""The programme view of ``clinlabel report``: throughput per reader, agreement with honeypots,
double-read rates achieved per class against the design, adjudication outcomes, flags, and each
reader's calibration history with the guideline versions.

Computed from the logs (the dataset log and the reads), like ``dataset status``; JSON-friendly,
rendered by :mod:`napari_clinlabel.core.quality.report_html` (which knows nothing of programmes).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.programme.dataset import READS, Dataset
from napari_clinlabel.core.programme.manifest import manifest_path
from napari_clinlabel.core.programme.status import status


def _day(t: str) -> str:
    return str(t)[:10]


def _seconds(a: str, b: str) -> float | None:
    try:
        return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()
    except ValueError:
        return None


def _throughput(ds: Dataset, st: Any) -> dict[str, dict[str, Any]]:
    """Per reader: reads completed, active days, reads per active day, median minutes per read
    (first record of the read to its latest ``image.done``)."""
    out: dict[str, dict[str, Any]] = {}
    days: dict[str, set[str]] = defaultdict(set)
    minutes: dict[str, list[float]] = defaultdict(list)
    done: Counter[str] = Counter()
    for a in st.assignments:
        path = ds.read_log(a["case"], a["reader"])
        if not path.is_file():
            continue
        try:
            recs = list(iter_records(path))
        except ClinlabelError:  # an unreadable read: status lists it
            continue
        finished = [r for r in recs if r.get("action") == "image.done"
                    and (r.get("actor") or {}).get("id") == a["reader"]]  # fmt: skip
        if not finished:
            continue
        done[a["reader"]] += 1
        days[a["reader"]].add(_day(finished[-1]["time"]))
        s = _seconds(recs[0]["time"], finished[-1]["time"])
        if s is not None:
            minutes[a["reader"]].append(s / 60.0)
    for u in sorted(set(done) | set(ds.readers("annotator"))):
        m = sorted(minutes[u])
        out[u] = {
            "completed": done[u],
            "active_days": len(days[u]),
            "per_active_day": done[u] / len(days[u]) if days[u] else 0.0,
            "median_minutes": m[len(m) // 2] if m else None,
        }
    return out


def _adjudications(ds: Dataset, st: Any) -> list[dict[str, Any]]:
    """Every adjudication in the reads: case, adjudicator, decision, reader upheld, the final
    grades chosen (``{scale: value}``, empty when no grade was decided), reason."""
    out = []
    for case in sorted(st.cases):
        for u in ds.readers("adjudicator"):
            path = ds.read_log(case, u)
            if not path.is_file():
                continue
            try:
                recs = list(iter_records(path))
            except ClinlabelError:
                continue
            for r in recs:
                if r.get("action") == "adjudicate":
                    d = r.get("data") or {}
                    out.append({"case": case, "adjudicator": u, "decision": d.get("decision"),
                                "reader": d.get("reader"),
                                "grades": dict(d.get("grades") or {}),
                                "reason": d.get("reason", ""),
                                "time": r.get("time")})  # fmt: skip
    return out


def programme_view(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The programme view of the dataset in ``folder`` (see the module doc)."""
    ds = Dataset(folder)
    st = ds.state()
    s = status(ds, st)
    adjudicated = _adjudications(ds, st)
    outcomes = Counter(str(a["decision"]) for a in adjudicated)
    upheld = Counter(str(a["reader"]) for a in adjudicated if a["reader"])
    return {
        "dataset": s["dataset"],
        "guideline": s["guideline"],
        "design": {
            "readers_per_case": ds.manifest["reading"]["readers_per_case"],
            "honeypot_rate": ds.manifest["reading"]["honeypot_rate"],
            "double_read": [
                {"name": r["name"], "rate": r["rate"]}
                for r in ds.manifest["reading"].get("double_read") or []
            ],  # fmt: skip
        },
        "cases": s["cases"],
        "honeypots": s["honeypots"],
        "assignments": s["assignments"],
        "readers": s["readers"],
        "throughput": _throughput(ds, st),
        "honeypot_accuracy": s["honeypot_accuracy"],
        "flags_for_owner": s["flags"],
        "classes": s["classes"],
        "adjudications": adjudicated,
        "adjudication_outcomes": dict(sorted(outcomes.items())),
        "adjudication_upheld": dict(sorted(upheld.items())),
        "adjudication_open": [
            {"case": q["case"], "why": q["why"]} for q in s["adjudication_queue"]
        ],
        "calibration": s["calibration"],
        "flagged_cases": s["flagged"],
        "unreadable": s["unreadable"],
        "reads_folder": str(Path(ds.folder) / READS),
    }


def is_dataset(folder: str | os.PathLike[str]) -> bool:
    """True when ``folder`` holds a dataset manifest."""
    return manifest_path(folder).is_file()


__all__ = ["programme_view", "is_dataset"]
