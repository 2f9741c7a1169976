"""``clinlabel prelabel PATH… --model FILE|builtin:NAME``: model proposals into each image's sidecar.

Each image is read, the model run, and every proposal logged as ``proposal.add`` (source = the
model, actor = the human running the command). With ``--scheduler ADDRESS`` or ``--workers N`` the
same :func:`prelabel_one` runs per image on a Dask distributed cluster (an existing scheduler, or a
local cluster of N single-threaded worker processes); there is no job queue of our own.

Before a model runs on an image, the image is checked against the input domain its card declares
(intensity, spacing, field of view): each property outside it is printed as one ``warning:`` line
on stderr, then the run goes on (run locally the warning comes before the run; on a Dask cluster
the worker's findings are printed with the image's result line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from napari_clinlabel.api import UnevenSpacingError, open_image
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.identity import Actor, current_actor
from napari_clinlabel.core.models.loader import LoadedModel, load_model, resolve_device
from napari_clinlabel.core.models.run import input_domain_problems
from napari_clinlabel.core.schema import Schema, load_schema

_MODELS: dict[tuple[Any, ...], LoadedModel] = {}  # per process: load each model once


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``prelabel`` subcommand."""
    p = sub.add_parser(
        "prelabel",
        help="run a model on images and log its proposals for human review",
        description="Proposals are never final labels: a human accepts, edits or rejects each one "
        "in napari. Exit 0 when every image worked, 2 otherwise.",
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="image files or DICOM folders"
    )
    p.add_argument(
        "--model",
        required=True,
        help="a TorchScript .pt file or builtin:baseline / builtin:phantom-unet",
    )
    p.add_argument(
        "--card", type=Path, default=None, help="model card JSON (default: beside the model)"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler address (tcp://…)")
    where.add_argument(
        "--workers", type=int, metavar="N", help="run on a local Dask cluster of N processes"
    )
    p.add_argument(
        "--labels", default="labels", help="label layer the proposals are for (default: labels)"
    )
    p.add_argument(
        "--resample",
        action="store_true",
        help="a DICOM series with uneven spacing or a missing slice: resample it to even slices "
        "(logged as image.resample) and propose on that grid",
    )
    p.add_argument(
        "--spacing",
        type=float,
        metavar="MM",
        default=None,
        help="with --resample: the slice spacing in mm (default: as the log last recorded, else "
        "the smallest original step)",
    )
    p.set_defaults(func=run)


def _model(spec: str, device: str, card: str | None) -> LoadedModel:
    """The loaded model, cached per process; a changed file (mtime/size) is loaded again."""
    stamp: tuple[int, ...] | None = None
    for f in (spec, card):
        if f and not f.startswith("builtin:") and Path(f).is_file():
            st = Path(f).stat()
            stamp = (*(stamp or ()), st.st_mtime_ns, st.st_size)
    key = (spec, device, card, stamp)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_model(spec, device=device, card=card)
    return _MODELS[key]


def _card_schema(model: LoadedModel) -> Schema | None:
    """The schema the model card names (None when it names none or this install lacks it)."""
    if not model.card.schema:
        return None
    try:
        return load_schema(model.card.schema)
    except ClinlabelError:  # a card naming a schema this install lacks: log without one
        return None


def prelabel_one(
    path: str,
    model_spec: str,
    device: str = "auto",
    human: dict[str, str] | None = None,
    labels_name: str = "labels",
    card: str | None = None,
    warn: Any = None,
    resample: bool | float = False,
) -> dict[str, Any]:
    """Run the model on one image and log its proposals; returns ``{"path", "proposals", …}``.

    ``human`` is the acting human's ``{"id","name","role"}`` (default: :func:`current_actor`).
    The image is opened through the Python API, so the log is the one napari would write;
    ``resample`` (True or a spacing in mm) opens an uneven DICOM series resampled (logged).
    ``warn(line)``, when given, is called before the run for each way the image lies outside the
    card's input domain (also returned as ``"warnings"``).
    """
    who = Actor.from_dict(human) if human else None
    model = _model(model_spec, device, card)
    try:
        image = open_image(path, who, schema=_card_schema(model), resample=resample)
    except UnevenSpacingError:  # the API's message names series=/resample=: say the flags
        raise ClinlabelError(
            f"{Path(path).name}: uneven slice spacing (the series is several evenly spaced "
            "blocks); pass --resample [--spacing MM] to pre-label it as one volume resampled "
            "(the request is logged), or give the files of one block."
        ) from None
    with image:
        problems = input_domain_problems(image.volume, model.card) if model.is_torch else []
        for line in problems if warn is not None else ():
            warn(line)
        props = image.prelabel(model, labels=labels_name)
        log_path = image.log_path
    return {
        "path": str(path),
        "proposals": len(props),
        "model": model.identity.to_dict(),
        "log": str(log_path),
        "device": model.device,
        "warnings": problems,
    }


def run(args: argparse.Namespace) -> int:
    """Pre-label every PATH; print one line per image."""
    if args.spacing is not None and not args.resample:
        raise ClinlabelError("--spacing applies to --resample only; add --resample or drop it.")
    device = resolve_device(args.device)
    card = str(args.card) if args.card else None
    load_model(args.model, device=device, card=card)  # fail fast on a bad model, before any image
    actor = current_actor(near=args.paths[0]).to_dict()
    paths = [str(p) for p in args.paths]
    resample = (args.spacing if args.spacing is not None else True) if args.resample else False
    kwargs = {"device": device, "human": actor, "labels_name": args.labels, "card": card,
              "resample": resample}  # fmt: skip
    failed = 0
    if args.scheduler or args.workers:
        # dask.distributed: an optional extra, and heavy; only these two options need it
        from dask.distributed import Client, LocalCluster, as_completed

        if args.workers is not None and args.workers < 1:
            raise ClinlabelError("--workers must be at least 1.")
        cluster = (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            if args.workers
            else None
        )
        try:
            with Client(args.scheduler or cluster) as client:
                futures = [
                    client.submit(prelabel_one, p, args.model, pure=False, **kwargs) for p in paths
                ]
                where = {f.key: p for f, p in zip(futures, paths, strict=True)}
                for fut in as_completed(futures):
                    failed += _report(where[fut.key], fut.result, warned=False)
        finally:
            if cluster is not None:
                cluster.close()
    else:
        for p in paths:
            failed += _report(
                p, lambda p=p: prelabel_one(p, args.model, warn=_warner(p, args.model), **kwargs)
            )
    return 2 if failed else 0


def _warner(path: str, model: str) -> Any:
    """One stderr line per input-domain problem, printed before the model runs."""

    def warn(problem: str) -> None:
        print(f"{path}: warning: outside {model}'s input domain: {problem}", file=sys.stderr)

    return warn


def _report(path: str, call: Any, warned: bool = True) -> int:
    """Print the line for one image; 1 when it failed (the other images go on)."""
    try:
        res = call()
    except ClinlabelError as exc:
        print(f"{path}: error: {exc}", file=sys.stderr)
        return 1
    if not warned:
        for problem in res.get("warnings", []):
            _warner(path, res["model"]["name"])(problem)
    m = res["model"]
    print(
        f"{path}: {res['proposals']} proposals from {m['name']} {m['version']} "
        f"({m['sha256'][:12]}…) on {res['device']} → {Path(res['log']).name}"
    )
    return 0
