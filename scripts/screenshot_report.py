"""Screenshot of ``clinlabel report`` over a small phantom dataset: docs/img/report.png.

Builds, in a temporary folder, four CT phantom cases (three as DICOM series with case-mix header
fields, one as NIfTI) read by two readers through the core APIs: alice draws every organ by hand
(her liver a little generous) and grades BI-RADS; bob draws the organs, runs ``builtin:baseline``
and decides each lesion proposal one by one (accepts most; on some cases grows the strongest to
the whole lesion, rejects the weakest, draws a lesion the model missed) and grades too. Then runs ``clinlabel report`` (via :func:`napari_clinlabel.cli.main`) and renders the page
with headless Chromium::

    python scripts/screenshot_report.py            # builds, reports, runs chromium
    python scripts/screenshot_report.py --print    # ... prints the chromium command instead
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img" / "report.png"
sys.path.insert(0, str(ROOT / "tests"))  # tests/support: the synthetic DICOM writer

# case: name, phantom seed, format, DICOM header fields (None: NIfTI), alice's and bob's BI-RADS
# assessment and density, and how bob treats the model's lesion proposals
CASES = [
    ("case1", 0, "dicom", {"PatientSex": "F", "PatientAge": "054Y",
                           "InstitutionName": "General Hospital", "Manufacturer": "ACME",
                           "ManufacturerModelName": "CT-9000"}, ("2", "2"), ("b", "b"),
     {"edit": False, "reject": True}),
    ("case2", 1, "dicom", {"PatientSex": "M", "PatientAge": "067Y", "InstitutionName": "Clinic B",
                           "Manufacturer": "ACME", "ManufacturerModelName": "CT-7000"},
     ("4A", "4B"), ("c", "c"), {"edit": True, "reject": False}),
    ("case3", 2, "dicom", {"PatientSex": "F", "PatientAge": "058Y",
                           "InstitutionName": "General Hospital", "Manufacturer": "ACME",
                           "ManufacturerModelName": "CT-9000"}, ("3", "4A"), ("b", "c"),
     {"edit": False, "reject": False}),
    ("case4", 3, "nifti", None, ("4B", "4B"), ("c", "d"), {"edit": True, "reject": True}),
]  # fmt: skip


def _write_image(folder: Path, name: str, seed: int, fmt: str, header: dict | None) -> Path:
    """Write phantom ``seed`` as a DICOM series folder or a NIfTI file; return its path."""
    import pydicom
    import SimpleITK as sitk

    from napari_clinlabel.core.image.samples import ct_phantom

    vol = ct_phantom(seed=seed)
    if fmt == "nifti":
        path = folder / f"{name}.nii.gz"
        sitk.WriteImage(vol.to_itk(vol.array), str(path))
        return path
    from support.dicom_factory import write_ct_series

    path = folder / name
    for f in write_ct_series(path, vol.array, vol.geometry):
        ds = pydicom.dcmread(f)
        for key, value in (header or {}).items():
            setattr(ds, key, value)
        ds.save_as(f, enforce_file_format=True)
    return path


def _read(image: Path):
    from napari_clinlabel.core.image.io import read_volumes

    (vol,) = read_volumes(image)
    return vol


def _paint(log, labels: np.ndarray, target: np.ndarray, where: np.ndarray) -> None:
    """One stroke: ``labels`` takes ``target``'s values where ``where`` (logged as a diff)."""
    from napari_clinlabel.core.annotate.label_edits import diff_between, record_label_change

    after = labels.copy()
    after[where] = target[where]
    idx, old, new = diff_between(labels, after)
    record_label_change(log, labels, "Labels", idx, old, new, applied=False)
    labels[...] = after


def _open(image: Path, vol, actor, schema_ref) -> object:
    from napari_clinlabel.core.log.audit_log import AuditLog, iter_records, sidecar_paths

    log = AuditLog.for_image(image, vol.image_ref(), actor, schema_ref)
    if next(iter_records(sidecar_paths(image)[0]), None) is None:
        log.append("image.open", None, {"shape": list(vol.array.shape),
                                        "geometry": vol.geometry.to_dict()})  # fmt: skip
    return log


def _grade(image: Path, vol, actor, birads, assessment: str, density: str) -> None:
    from napari_clinlabel.core.annotate.grading import set_grade

    log = _open(image, vol, actor, birads.ref())
    set_grade(log, birads.scales["assessment"], assessment)
    set_grade(log, birads.scales["density"], density)
    log.close()


def _alice(image: Path, truth: np.ndarray, ct_ref: dict) -> None:
    """Alice draws organs then lesions by hand; her liver is dilated one voxel in-plane."""
    from scipy import ndimage

    from napari_clinlabel.core.annotate.label_edits import record_labels_create
    from napari_clinlabel.core.image.samples import LESION, LIVER
    from napari_clinlabel.core.log.identity import Actor

    vol = _read(image)
    mine = truth.copy()
    grown = ndimage.binary_dilation(truth == LIVER, structure=np.ones((1, 3, 3), bool))
    mine[grown & (truth == 0)] = LIVER
    log = _open(image, vol, Actor("alice", "Dr Alice Reader", "annotator"), ct_ref)
    record_labels_create(log, "Labels", mine.shape, mine.dtype)
    labels = np.zeros_like(mine)
    _paint(log, labels, mine, (mine > 0) & (mine != LESION))
    _paint(log, labels, mine, mine == LESION)
    log.close()


def _bob(image: Path, truth: np.ndarray, ct_ref: dict, model, how: dict) -> None:
    """Bob draws organs (spleen a voxel short), then decides each baseline lesion proposal.

    ``how["edit"]``: he grows the strongest proposal to the whole lesion and draws by hand a
    lesion the model missed; ``how["reject"]``: he rejects the weakest; the rest he accepts.
    """
    from scipy import ndimage

    from napari_clinlabel.core.annotate.label_edits import record_labels_create
    from napari_clinlabel.core.image.samples import LESION, SPLEEN
    from napari_clinlabel.core.log.identity import Actor
    from napari_clinlabel.core.models.run import run_model
    from napari_clinlabel.core.proposals.lifecycle import (
        accept,
        add_proposals,
        edit,
        proposal_mask,
        reject,
    )

    vol = _read(image)
    # organs drawn whole: each lesion voxel takes the label of the nearest organ voxel
    nearest = ndimage.distance_transform_edt(
        truth == LESION, return_distances=False, return_indices=True
    )
    organs = truth[tuple(nearest)]
    short = ndimage.binary_erosion(truth == SPLEEN, structure=np.ones((1, 3, 3), bool))
    organs[(truth == SPLEEN) & ~short] = 0
    log = _open(image, vol, Actor("bob", "Dr Bob Reader", "annotator"), ct_ref)
    record_labels_create(log, "Labels", organs.shape, organs.dtype)
    labels = np.zeros_like(organs)
    _paint(log, labels, organs, organs > 0)
    props = add_proposals(log, run_model(vol, model), model, labels_name="Labels")
    props.sort(key=lambda p: -p.score)
    lesions, _ = ndimage.label(truth == LESION)
    proposed = np.zeros(truth.shape, bool)
    for i, p in enumerate(props):
        m = proposal_mask(log, p).reshape(labels.shape)
        proposed |= m
        if how["reject"] and i == len(props) - 1:
            reject(log, p)  # the weakest: bob does not believe it
        elif how["edit"] and i == 0:  # the strongest, undersegmented: grown to the lesion
            whole = np.isin(lesions, np.unique(lesions[m & (lesions > 0)]))
            edit(log, p, labels, "Labels", whole & (lesions > 0), overwrite=True)
        else:
            accept(log, p, labels, "Labels", overwrite=True)
    if how["edit"]:  # ... and draws the largest lesion the model did not propose at all
        missed = [c for c in range(1, lesions.max() + 1) if not (proposed & (lesions == c)).any()]
        if missed:
            big = max(missed, key=lambda c: int((lesions == c).sum()))
            _paint(log, labels, truth, lesions == big)
    log.close()


def build_dataset(root: Path) -> Path:
    """The four cases, each copied into alice's and bob's folder with both readers' logs."""
    from napari_clinlabel.core.image.samples import ct_phantom_truth
    from napari_clinlabel.core.log.identity import Actor
    from napari_clinlabel.core.models.loader import load_model
    from napari_clinlabel.core.schema import load_schema

    birads, ct_ref = load_schema("birads"), load_schema("abdomen-ct").ref()
    model = load_model("builtin:baseline")
    src = root.parent / "images"
    src.mkdir(parents=True, exist_ok=True)
    for name, seed, fmt, header, assessment, density, how in CASES:
        image = _write_image(src, name, seed, fmt, header)
        _, truth = ct_phantom_truth(seed=seed)
        for reader, idx in (("alice", 0), ("bob", 1)):
            folder = root / reader
            folder.mkdir(parents=True, exist_ok=True)
            mine = folder / image.name
            (shutil.copytree if image.is_dir() else shutil.copyfile)(image, mine)
            if reader == "alice":
                _alice(mine, truth, ct_ref)
            else:
                _bob(mine, truth, ct_ref, model, how)
            actor = Actor(reader, f"Dr {reader.title()} Reader", "annotator")
            _grade(mine, _read(mine), actor, birads, assessment[idx], density[idx])
    return root


def chromium_command(html: Path, png: Path, height: int = 2400) -> list[str]:
    """Headless Chromium writing a 1280-wide, ``height``-tall screenshot of ``html`` to ``png``."""
    profile = tempfile.mkdtemp(prefix="clinlabel-chromium-")
    return ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={png}",
            f"--window-size=1280,{height}", "--hide-scrollbars", html.resolve().as_uri()]  # fmt: skip


def crop_to_page(shot: Path, out: Path, margin: int = 24) -> tuple[int, int]:
    """Cut the white space below the page's last content row off ``shot``; save as ``out``."""
    from PIL import Image

    im = Image.open(shot).convert("RGB")
    rows = np.flatnonzero((np.asarray(im.convert("L")) < 250).any(axis=1))
    bottom = min(im.height, int(rows.max()) + margin) if rows.size else im.height
    im.crop((0, 0, im.width, bottom)).save(out, optimize=True)
    return im.width, bottom


def main(argv: list[str]) -> int:
    from napari_clinlabel.cli import main as clinlabel

    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-report-shot-"))
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    root = build_dataset(tmp / "dataset")
    html = tmp / "report.html"
    title = "Phantom study: annotation quality"
    rc = clinlabel(["report", str(root), "-o", str(html), "--title", title])
    if rc != 0:
        print(f"clinlabel report exited {rc}", file=sys.stderr)
        return rc
    # the whole page (case mix included) is taller than 2400 px: shoot tall, then crop
    full = tmp / "report-full.png"
    cmd = chromium_command(html, full, height=7000)
    if "--print" in argv:
        print(" ".join(cmd))
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    size = crop_to_page(full, OUT)
    print(f"wrote {OUT} {size[0]}x{size[1]} (dataset and page in {tmp})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
