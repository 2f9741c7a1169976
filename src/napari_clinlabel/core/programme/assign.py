"""Assignments by the reading design: seeded, balanced, blinded, behind the calibration gate.

Eligible readers are the roster's annotators whose latest gold-panel result for the current
guideline's major version passed. Each case gets the readers the design asks for now (a second
read when its class's seeded draw selects it; classes that depend on findings are known once the
first read is completed, so re-run assign as reads complete). The least-loaded eligible reader is
chosen, ties broken by a seeded draw; a reader never gets a case twice, a case they are excluded
from (blinding), or a honeypot whose gold answer they wrote. Honeypots are mixed into each
reader's worklist at the design's rate. Every assignment is one ``case.assign`` record.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from napari_clinlabel.core.programme.dataset import Dataset, State
from napari_clinlabel.core.programme.design import draw, readers_needed
from napari_clinlabel.core.programme.reads import COMPLETED, read_state


def eligible_readers(ds: Dataset, st: State) -> list[str]:
    """Annotators calibrated for the current guideline major version."""
    return [u for u in ds.readers("annotator") if st.calibrated(u, ds.major)]


def plan(ds: Dataset, st: State, seed: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """New assignments the design asks for now, and the cases that could not be filled (why)."""
    seed = int(ds.manifest["reading"]["seed"] if seed is None else seed)
    readers = eligible_readers(ds, st)
    load = Counter(a["reader"] for a in st.assignments)
    have: dict[str, list[str]] = {}
    for a in st.assignments:
        have.setdefault(a["case"], []).append(a["reader"])
    new: list[dict[str, Any]] = []
    unfilled: list[str] = []
    if not readers:
        return [], [
            f"no annotator has passed the gold panel for guideline {ds.guideline['version']} "
            f"(major {ds.major}); record results with 'clinlabel dataset calibrate'"
        ]

    def pick(case_id: str, exclude: set[str]) -> str | None:
        free = [u for u in readers if u not in exclude]
        if not free:
            return None
        return min(free, key=lambda u: (load[u], draw(seed, "pick", case_id, u)))

    for case in sorted(st.cases.values(), key=lambda c: c.id):
        if case.honeypot:
            continue
        got = have.get(case.id, [])
        reads = [read_state(ds.read_log(case.id, u)) for u in got]
        done = [r for r in reads if r.status == COMPLETED]
        need, cls, _ = readers_needed(ds.manifest, case, done)
        while len(got) < need:
            who = pick(case.id, set(got) | set(case.exclude))
            if who is None:
                unfilled.append(f"{case.id}: no eligible reader left for read {len(got) + 1}")
                break
            why = "design" if len(got) == 0 else f"double read ({cls})"
            new.append(
                {"case": case.id, "reader": who, "read": len(got) + 1, "why": why, "seed": seed}
            )
            got = [*got, who]
            load[who] += 1
        have[case.id] = got
    rate = float(ds.manifest["reading"]["honeypot_rate"])
    honeypots = sorted((c for c in st.cases.values() if c.honeypot), key=lambda c: c.id)
    if rate > 0 and honeypots:
        for u in readers:
            prod = sum(1 for c, rs in have.items() if u in rs and not st.cases[c].honeypot)
            want = round(rate * prod / (1 - rate)) if rate < 1 else len(honeypots)
            mine = sum(1 for h in honeypots if u in have.get(h.id, []))
            pool = [h for h in honeypots if u not in have.get(h.id, [])
                    and u not in h.gold_authors and u not in h.exclude]  # fmt: skip
            pool.sort(key=lambda h: draw(seed, "honeypot", h.id, u))
            for h in pool[: max(0, want - mine)]:
                n = len(have.get(h.id, [])) + 1
                new.append({"case": h.id, "reader": u, "read": n, "why": "honeypot", "seed": seed})
                have.setdefault(h.id, []).append(u)
    return new, unfilled


def assign(ds: Dataset, seed: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Plan and record the assignments under the dataset lock (one ``case.assign`` each)."""
    who = ds.owner_actor()
    with ds.locked():
        st = ds.state(cached=False)  # decisions never rest on the cache
        new, unfilled = plan(ds, st, seed)
        log = ds.log(who)
        try:
            for a in new:
                data = {k: v for k, v in a.items() if k != "case"}
                log.append("case.assign", {"case": a["case"]}, data)
        finally:
            log.close()
    return new, unfilled


__all__ = ["eligible_readers", "plan", "assign"]
