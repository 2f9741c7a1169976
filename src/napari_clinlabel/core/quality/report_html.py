"""Dataset report, the page: one self-contained HTML file, plots embedded as base64 PNG.

Plots are drawn with matplotlib's object API on an Agg canvas (no pyplot, no global backend
change), so rendering works headless and inside a running napari.
"""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict
from html import escape
from typing import Any

import numpy as np

from napari_clinlabel.core.quality.metrics import distance_units
from napari_clinlabel.core.quality.report import ORIGINS, DatasetReport
from napari_clinlabel.core.safe_text import plot_text

__all__ = ["render_html"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#1d2733;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #d0d7de;padding-bottom:4px;margin-top:32px}
.sub{color:#57606a;margin-top:4px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:right}th{background:#f3f5f7}
td.l,th.l{text-align:left}.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:6px;
padding:8px 14px;min-width:130px}.card b{display:block;font-size:1.5em}
img{max-width:100%;border:1px solid #eaeef2;margin:4px 0}.plots{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
.note{color:#57606a;font-size:0.9em}
"""


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float | np.floating):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "∞"
        return f"{x:.{digits}f}"
    return escape(str(x))


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    th = "".join(
        f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c if isinstance(c, _Raw) else _fmt(c)}</td>'
                         for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )  # fmt: skip
    return f"<table><tr>{th}</tr>{body}</table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _png(fig: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy: heavy, only plots need it

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure  # lazy: heavy, only plots need it

    return Figure(figsize=(w, h))


def _bar(title: str, counts: dict[str, int], color: str = "#4c78a8") -> str:
    fig = _figure(4.2, 2.8)
    ax = fig.add_subplot()
    keys = list(counts)
    ax.bar(range(len(keys)), [counts[k] for k in keys], color=color)
    ticks = [plot_text(k) for k in keys]
    ax.set_xticks(range(len(keys)), ticks, rotation=30, ha="right", fontsize=8)
    ax.set_title(plot_text(title), fontsize=10)
    ax.set_ylabel("count")
    ax.yaxis.get_major_locator().set_params(integer=True)  # counts: no 0.2 ticks
    return _png(fig)


def _distribution(title: str, by_label: dict[str, list[float]], ylabel: str) -> str:
    fig = _figure(4.8, 3.0)
    ax = fig.add_subplot()
    labels = list(by_label)
    data = [[v for v in by_label[k] if math.isfinite(v)] or [float("nan")] for k in labels]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, len(d)), d, s=12, alpha=0.7, color="#f58518", zorder=3
        )
    ax.set_xticks(range(1, len(labels) + 1), [plot_text(k) for k in labels], fontsize=8)
    ax.set_title(plot_text(title), fontsize=10)
    ax.set_ylabel(plot_text(ylabel))
    return _png(fig)


def _confusion(title: str, cm: list[list[int]], values: list[str], a: str, b: str) -> str:
    m = np.asarray(cm)
    fig = _figure(0.5 * len(values) + 2.2, 0.45 * len(values) + 1.8)
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Blues")
    for (i, j), n in np.ndenumerate(m):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8,
                    color="white" if n > m.max() / 2 else "black")  # fmt: skip
    ticks = [plot_text(v) for v in values]
    ax.set_xticks(range(len(values)), ticks, fontsize=8)
    ax.set_yticks(range(len(values)), ticks, fontsize=8)
    ax.set_xlabel(plot_text(b))
    ax.set_ylabel(plot_text(a))
    ax.set_title(plot_text(title), fontsize=10)
    return _png(fig)


def _summary(rep: DatasetReport) -> str:
    images = len({s.image_sha for s in rep.logs})
    readers = sorted({s.reader for s in rep.logs if s.reader})  # an adjudicator is no reader
    ok = sum(s.verified for s in rep.logs)
    cards = [
        ("images", images), ("logs", len(rep.logs)), ("readers", len(readers)),
        ("logs verified", f"{ok}/{len(rep.logs)}"),
        ("proposal acceptance", _fmt(rep.acceptance_rate * 100, 0) + " %" if rep.proposals else "n/a"),
    ]  # fmt: skip
    html = '<div class="cards">' + "".join(
        f'<div class="card"><b>{escape(str(v))}</b>{escape(k)}</div>' for k, v in cards
    )
    return html + "</div>"


def _verification(rep: DatasetReport) -> str:
    rows = [
        [s.path, s.reader, _Raw(f'<span class="{"ok" if s.verified else "bad"}">'
                                f'{"valid" if s.verified else "BROKEN"}</span>'), s.verify_summary]
        for s in rep.logs
    ]  # fmt: skip
    note = "" if all(s.verified for s in rep.logs) else (
        '<p class="bad">Broken logs are listed but their labels and grades are left out of every '
        "figure below: restore them from a backup.</p>"
    )  # fmt: skip
    return note + _table(["log", "reader", "result", "details"], rows, left=4)


def _provenance(rep: DatasetReport) -> str:
    rows = [[o, rep.origins.get(o, 0)] for o in ORIGINS]
    p = rep.proposals
    shown = {
        "accepted": "accepted",
        "edited": "edited",
        "rejected": "rejected",
        "proposed": "still undecided",
    }  # "proposed" is the state, not the total made
    prop_rows = [[text, p.get(k, 0)] for k, text in shown.items()]
    text = (
        f"<p>Proposals decided: accepted unchanged {_fmt(rep.unchanged_rate * 100, 1)} %, accepted "
        f"(unchanged or edited) {_fmt(rep.acceptance_rate * 100, 1)} %. Undecided proposals never "
        "count as labels.</p>"
    )
    plots = _bar("final segments by origin", {o: rep.origins.get(o, 0) for o in ORIGINS}, "#54a24b")
    if any(p.values()):
        plots += _bar("model proposals", {r[0]: r[1] for r in prop_rows}, "#e45756")
    return (
        _table(["how the final segment came about", "segments"], rows)
        + _table(["proposal state", "proposals"], prop_rows)
        + text
        + f'<div class="plots">{plots}</div>'
    )


def _segmentation(rep: DatasetReport) -> str:
    if not rep.seg_pairs:
        return '<p class="note">No image has label maps from two or more readers.</p>'
    by_unit: dict[str, list[dict[str, Any]]] = {"mm": [], "px": []}
    for r in rep.seg_pairs:
        by_unit[distance_units(r)].append(r)
    by_pair: dict[tuple[str, str], list[float]] = defaultdict(list)
    dice: dict[str, list[float]] = defaultdict(list)
    order: dict[str, int] = {}  # label shown (its name) -> value, to list labels by value
    hd: dict[str, dict[str, list[float]]] = {"mm": defaultdict(list), "px": defaultdict(list)}
    for r in rep.seg_pairs:
        unit = distance_units(r)
        by_pair[(r["reader_a"], r["reader_b"])].append(r["dice"])
        dice[_label(r)].append(r["dice"])
        order[_label(r)] = int(r["label"])
        hd[unit][_label(r)].append(r[f"hd95_{unit}"])
    pair_rows = [
        [a, b, len(d), float(np.mean(d)), float(np.min(d))] for (a, b), d in sorted(by_pair.items())
    ]
    units = [u for u in ("mm", "px") if by_unit[u]]

    def median(u: str, k: str) -> float:
        return float(np.median(hd[u][k])) if hd[u][k] else float("nan")

    class_rows = [
        [k, len(dice[k]), float(np.mean(dice[k])), *(median(u, k) for u in units)]
        for k in sorted(dice, key=lambda k: order[k])
    ]
    plots = _distribution("Dice per label", dice, "Dice")
    if by_unit["mm"]:
        plots += _distribution("HD95 per label", dict(hd["mm"]), "HD95 (mm)")
    if by_unit["px"]:
        plots += _distribution("HD95 per label, no pixel size", dict(hd["px"]), "HD95 (px)")
    every = ""
    if by_unit["mm"]:
        rows = [
            [r["image"], r["reader_a"], r["reader_b"], f'{r["layer"]}:{_label(r)}', r["dice"],
             r["hd95_mm"], r["mean_surface_distance_mm"], r["volume_difference_ml"]]
            for r in by_unit["mm"]
        ]  # fmt: skip
        every += "<h3>Every comparison</h3>" + _table(
            ["image", "reader A", "reader B", "label", "Dice", "HD95 mm", "MSD mm", "ΔV mL (B−A)"],
            rows,
            left=4,
        )
    if by_unit["px"]:
        rows = [
            [r["image"], r["reader_a"], r["reader_b"], f'{r["layer"]}:{_label(r)}', r["dice"],
             r["hd95_px"], r["mean_surface_distance_px"], r["size_difference_px"]]
            for r in by_unit["px"]
        ]  # fmt: skip
        every += (
            "<h3>Every comparison on images that state no pixel size</h3>"
            '<p class="note">PNG, JPEG and TIFFs without resolution tags have no millimetres: '
            "distances are in pixels, sizes in pixel counts.</p>"
            + _table(
                ["image", "reader A", "reader B", "label", "Dice", "HD95 px", "MSD px",
                 "Δ pixels (B−A)"],
                rows,
                left=4,
            )
        )  # fmt: skip
    return (
        "<h3>Per reader pair</h3>"
        + _table(
            ["reader A", "reader B", "labels compared", "mean Dice", "min Dice"], pair_rows, left=2
        )
        + "<h3>Per class</h3>"
        + _table(
            ["label", "pairs", "mean Dice", *(f"median HD95 ({u})" for u in units)], class_rows
        )
        + f'<div class="plots">{plots}</div>'
        + every
    )


def _grading(rep: DatasetReport) -> str:
    if not rep.grade_pairs:
        return '<p class="note">No item was graded by two or more readers.</p>'
    rows = [[g["scale"], g["reader_a"], g["reader_b"], g["n"], g["kappa"], g["weighted_kappa_quadratic"]]
            for g in rep.grade_pairs]  # fmt: skip
    plots = "".join(
        _confusion(f'{g["scale"]}: {g["reader_a"]} vs {g["reader_b"]}', g["confusion_matrix"],
                   g["values"], g["reader_a"], g["reader_b"])
        for g in rep.grade_pairs
    )  # fmt: skip
    return (
        _table(
            ["scale", "reader A", "reader B", "items", "kappa", "weighted kappa (quadratic)"],
            rows,
            left=3,
        )
        + f'<div class="plots">{plots}</div>'
        + "".join(_per_class(g) for g in rep.grade_pairs)
    )


def _per_class(g: dict[str, Any]) -> str:
    rows = [
        [v, m["support"], m["precision"], m["recall"], m["f1"]] for v, m in g["per_class"].items()
    ]
    head = f"<h3>{escape(g['scale'])}: per class, {escape(g['reader_b'])} against {escape(g['reader_a'])}</h3>"
    return head + _table(["grade", f"support ({g['reader_a']})", "precision", "recall", "F1"], rows)


def _demographics(rep: DatasetReport) -> str:
    tables, plots = [], []
    for key in ("sex", "age band", "site", "scanner"):
        counts = rep.demographics.get(key, {})
        tables.append(f"<div>{_table([key, 'images'], [[k, v] for k, v in counts.items()])}</div>")
        if counts:
            plots.append(_bar(f"cases by {key}", counts, "#72b7b2"))
    return (
        '<p class="note">From DICOM headers, one count per image; ages as 10-year bands; no names, '
        "IDs or birth dates. Non-DICOM images count as unknown.</p>"
        f'<div class="plots">{"".join(tables)}</div><div class="plots">{"".join(plots)}</div>'
    )


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * float(x):.0f} %"


def _programme(p: dict[str, Any]) -> str:
    """The programme view: design, throughput, honeypots, double reads, adjudication, calibration."""
    g = p["guideline"]
    rules = (
        ", ".join(f"{r['name']} {_pct(r['rate'])}" for r in p["design"]["double_read"]) or "none"
    )
    head = (
        f"<p>Guideline {escape(str(g.get('name', '')))} {escape(str(g['version']))}; "
        f"{p['cases']} cases ({p['honeypots']} honeypots), {p['assignments']} assignments; "
        f"design: {p['design']['readers_per_case']} reader(s) per case, honeypot rate "
        f"{_pct(p['design']['honeypot_rate'])}, double reads: {escape(rules)}.</p>"
    )
    thr = _table(
        ["reader", "assigned", "completed", "in progress", "flagged", "active days",
         "reads / active day", "median minutes / read"],
        [[u, p["readers"].get(u, {}).get("assigned", 0), t["completed"],
          p["readers"].get(u, {}).get("in progress", 0), p["readers"].get(u, {}).get("flagged", 0),
          t["active_days"], float(t["per_active_day"]),
          float("nan") if t["median_minutes"] is None else float(t["median_minutes"])]
         for u, t in p["throughput"].items()],
    )  # fmt: skip
    hp = _table(
        ["reader", "honeypot reads scored", "agreed with gold", "accuracy"],
        [
            [u, a["reads"], a["agreed"], _pct(a["accuracy"])]
            for u, a in p["honeypot_accuracy"].items()
        ],
    )
    flags = "".join(f"<li>{escape(f)}</li>" for f in p["flags_for_owner"])
    dr = _table(
        ["class", "cases", "design rate", "double-read rate achieved", "double reads completed"],
        [[c, v["cases"], _pct(v["design_rate"]), _pct(v["achieved_rate"]), v["double_completed"]]
         for c, v in sorted(p["classes"].items())],
    )  # fmt: skip
    outcomes = _table(
        ["outcome", "cases"],
        [[k, v] for k, v in p["adjudication_outcomes"].items()]
        + [[f"reader upheld: {k}", v] for k, v in p["adjudication_upheld"].items()]
        + [["still open", len(p["adjudication_open"])]],
    )
    adj = _table(
        ["case", "adjudicator", "decision", "reader upheld", "final grade", "reason"],
        [[a["case"], a["adjudicator"], a["decision"], a["reader"] or "",
          ", ".join(f"{k} {v}" for k, v in (a.get("grades") or {}).items()), a["reason"]]
         for a in p["adjudications"]],
    )  # fmt: skip
    cal_rows = []
    for u, c in p["calibration"].items():
        for h in c["history"]:
            figs = ", ".join(f"{k} {_fmt(v)}" for k, v in h.items()
                             if k not in ("guideline", "passed", "time") and v is not None)  # fmt: skip
            cal_rows.append([u, h["guideline"], "passed" if h["passed"] else "failed",
                             str(h["time"])[:10], figs])  # fmt: skip
        if not c["history"]:
            cal_rows.append([u, "—", "never calibrated", "", ""])
    cal = _table(["reader", "guideline", "result", "date", "figures"], cal_rows)
    current = ", ".join(
        f"{u}: {'yes' if c['current'] else 'NO'}" for u, c in p["calibration"].items()
    )
    extra = ""
    if p["flagged_cases"]:
        extra += "<h3>Cases flagged by readers</h3>" + _table(
            ["case", "reader", "reason"],
            [[f["case"], f["reader"], f["reason"]] for f in p["flagged_cases"]],
        )
    if p["unreadable"]:
        extra += "<h3>Unreadable read logs</h3>" + _table(
            ["case", "reader", "why"], [[u["case"], u["reader"], u["why"]] for u in p["unreadable"]]
        )
    return (
        head
        + "<h3>Throughput per reader</h3>" + thr
        + "<h3>Agreement with honeypots (gold cases mixed in blindly)</h3>" + hp
        + (f'<ul class="note">{flags}</ul>' if flags else "")
        + "<h3>Double-read rates per class: achieved against the design</h3>" + dr
        + "<h3>Adjudication outcomes</h3>" + outcomes + adj
        + f"<h3>Calibration history (calibrated for the guideline in force: {escape(current)})</h3>"
        + cal + extra
    )  # fmt: skip


def render_html(rep: DatasetReport, title: str = "Annotation quality report") -> str:
    """The whole report as one HTML page (UTF-8 text)."""
    versions = _table(
        ["schema and version", "logs"], [[k, v] for k, v in sorted(rep.schema_versions.items())]
    )
    sections = [
        ("Summary", _summary(rep)),
        *([("Programme", _programme(rep.programme))] if rep.programme else []),
        ("Log verification", _verification(rep)),
        ("Schema versions in force", versions),
        ("How each final label came about", _provenance(rep)),
        ("Segmentation agreement between readers", _segmentation(rep)),
        ("Grading agreement between readers", _grading(rep)),
        ("Cases by sex, age band, site and scanner", _demographics(rep)),
    ]
    body = "".join(f"<h2>{escape(h)}</h2>{s}" for h, s in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
        f'<p class="sub">Dataset: {escape(rep.root)} — Dice/HD95 on final labels only; HD95 is the '
        "larger of the two directed 95th percentiles of surface distances, in mm (in pixels for "
        "images that state no pixel size).</p>"
        f"{body}</body></html>"
    )


def _label(row: dict[str, Any]) -> str:
    """A label as the report shows it: its schema name ("liver"), else its value."""
    return str(row.get("name") or row["label"])
