"""``clinlabel agreement A B [--json] [--scale NAME]``: two readers' label maps, grade tables or logs.

With ``--json`` the output is strict JSON: values that are NaN (undefined, e.g. precision of a
grade nobody gave) or infinite (HD95 when one reader left a label empty) are written as ``null``;
``voxels_a`` / ``voxels_b`` and ``support`` say why. Label maps that state no pixel size (PNG, a
TIFF without resolution tags, logs of such images) give ``hd95_px``, ``mean_surface_distance_px``
and ``size_difference_px`` instead of the mm/mL keys, and the table says px.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from napari_clinlabel.core.quality.agreement import agreement
from napari_clinlabel.core.quality.metrics import MM_KEYS, PX_KEYS, distance_units


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``agreement`` subcommand."""
    p = sub.add_parser(
        "agreement",
        help="inter-rater agreement of two label maps, grade tables (CSV item,grade) or sidecar logs",
        description="Dice, HD95 (mm), mean surface distance and volume difference per label for two "
        "label maps or two readers' logs of one image (in pixels and pixel counts for PNG/TIFF "
        "maps that state no pixel size); kappa, quadratic-weighted kappa and "
        "per-class precision/recall/F1 (B against A) for two grade tables.",
    )
    p.add_argument(
        "a",
        help="reader A: label map (.nii/.nii.gz/.nrrd/.mha/.png/.tif), grade table (.csv) or log (.clinlabel.jsonl)",
    )
    p.add_argument("b", help="reader B: the same kind of file as A")
    p.add_argument("--json", action="store_true", help="print JSON (NaN/inf as null)")
    p.add_argument(
        "--scale",
        metavar="NAME",
        default=None,
        help="grade scale, e.g. birads:assessment or icdr:dr (default: the grades found, numeric order if numeric)",
    )
    p.add_argument(
        "--labels",
        metavar="NAME",
        default=None,
        help="label layer to compare when logs hold several",
    )
    p.add_argument(
        "--exclude-pending",
        action="store_true",
        help="compare logs that still hold undecided model proposals (proposals never count)",
    )
    p.set_defaults(func=run)


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj


def _num(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        if math.isnan(x):
            return "n/a"
        if math.isinf(x):
            return "inf"
        return f"{x:.{digits}f}"
    return str(x)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def format_result(res: dict[str, Any]) -> str:
    """Readable tables of an agreement result (labels or grades)."""
    if "labels" in res:
        px = any(distance_units(m) == "px" for m in res["labels"].values())
        hd, msd, dv = PX_KEYS if px else MM_KEYS
        rows = [
            [
                v,
                _num(m["dice"], 4),
                _num(m[hd], 2),
                _num(m[msd], 2),
                str(m[dv]) if px else _num(m[dv], 3),
                str(m["voxels_a"]),
                str(m["voxels_b"]),
            ]
            for v, m in sorted(res["labels"].items(), key=lambda kv: int(kv[0]))
        ]
        if not rows:
            return "no labels in either map"
        if not px:
            return _table(
                ["label", "dice", "hd95_mm", "msd_mm", "dvol_ml(B-A)", "voxels_a", "voxels_b"], rows
            )
        return _table(
            ["label", "dice", "hd95_px", "msd_px", "dsize_px(B-A)", "pixels_a", "pixels_b"], rows
        ) + (
            "\npixel size unknown (PNG, or TIFF without resolution tags): distances in pixels, "
            "sizes in pixel counts"
        )
    head = (
        f"n={res['n']}  kappa={_num(res['kappa'], 4)}  "
        f"weighted_kappa_quadratic={_num(res['weighted_kappa_quadratic'], 4)}  "
        f"weighted_kappa_linear={_num(res['weighted_kappa_linear'], 4)}"
    )
    per = _table(
        ["grade", "precision", "recall", "f1", "support"],
        [
            [v, _num(m["precision"]), _num(m["recall"]), _num(m["f1"]), str(m["support"])]
            for v, m in res["per_class"].items()
        ],
    )
    scale = res["scale"]
    cm = _table(
        ["A \\ B", *scale],
        [
            [a, *(str(c) for c in row)]
            for a, row in zip(scale, res["confusion_matrix"], strict=True)
        ],
    )
    return (
        f"{head}\n\nper class (B against A):\n{per}\n\nconfusion matrix (rows A, columns B):\n{cm}"
    )


def run(args: argparse.Namespace) -> int:
    """Compute and print the agreement of A and B; exit 0."""
    res = agreement(
        args.a,
        args.b,
        scale=args.scale,
        labels_name=args.labels,
        exclude_pending=args.exclude_pending,
    )
    if args.json:
        print(json.dumps(_finite_or_none(res), indent=2, allow_nan=False))
    else:
        print(format_result(res))
    return 0
