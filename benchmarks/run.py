"""Run every benchmark: ``python benchmarks/run.py [--quick] [--only NAME]``.

Each ``benchmarks/bench_*.py`` module lists callables in ``BENCHMARKS``; each takes ``quick``
and returns a dict with ``name`` and either ``ours_s``/``anchor_s``/``budget`` (a ratio, ours
over an anchor measured side by side in this run) or ``value_ms``/``budget_ms`` (an absolute
figure, reported and never asserted). Prints one line per benchmark::

    BENCH <name> ratio=<ours/anchor> budget=<max ratio> ours_s=… anchor_s=…
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _modules() -> list:
    mods = []
    for path in sorted(HERE.glob("bench_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods


def format_line(res: dict) -> str:
    """One ``BENCH`` line for a result dict."""
    extra = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in res.items()
        if k not in ("name", "ours_s", "anchor_s", "budget", "value_ms", "budget_ms")
    )
    if "value_ms" in res:
        head = f"BENCH {res['name']} ms={res['value_ms']:.2f} budget_ms={res['budget_ms']}"
    else:
        ratio = res["ours_s"] / res["anchor_s"]
        head = (
            f"BENCH {res['name']} ratio={ratio:.3f} budget={res['budget']} "
            f"ours_s={res['ours_s']:.4f} anchor_s={res['anchor_s']:.4f}"
        )
    return f"{head} {extra}".rstrip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for CI-length checks")
    ap.add_argument("--only", action="append", help="run only benchmarks with this name")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    for mod in _modules():
        for fn in getattr(mod, "BENCHMARKS", []):
            name = fn.__name__.removeprefix("bench_")
            if args.only and name not in args.only:
                continue
            try:
                res = fn(args.quick)
            except Exception:  # report and go on: one broken benchmark must not hide the others
                traceback.print_exc()
                print(f"BENCH {name} error")
                continue
            res.setdefault("name", name)
            print(format_line(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
