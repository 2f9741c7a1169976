"""Screenshot of the Adjudication widget in use on the CT phantom: docs/img/adjudication.png.

Run under a display::

    xvfb-run -a -s "-screen 0 1600x1000x24" python scripts/screenshot_adjudication.py [OUT.png]

Two readers (alice, bob) read the phantom: alice drew the liver a little generously (dilated by
one voxel in-plane), bob missed one of the liver lesions (left it as liver). Their logs,
the roster (carol is the adjudicator) and carol's key live in a temporary folder; nothing is
written into the home folder or beside real data.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from _shot import settle, shoot

OUT = Path(__file__).resolve().parents[1] / "docs" / "img" / "adjudication.png"
SIZE = (1500, 900)


def _reader_maps(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """alice: liver dilated one voxel in-plane into background; bob: one liver lesion missed.

    Returns both maps and a slice showing the missed lesion beside one both readers drew.
    """
    from scipy import ndimage

    from napari_clinlabel.core.image.samples import LESION, LIVER

    alice = truth.copy()
    grown = ndimage.binary_dilation(truth == LIVER, structure=np.ones((1, 3, 3), bool))
    alice[grown & (truth == 0)] = LIVER
    comps, n = ndimage.label(truth == LESION)
    sizes = ndimage.sum_labels(np.ones_like(comps), comps, range(1, n + 1))
    missed = int(np.argsort(sizes)[-2]) + 1  # the second-largest lesion (the 14 mm liver one)
    bob = truth.copy()
    bob[comps == missed] = LIVER
    area_missed = (comps == missed).sum(axis=(1, 2))
    area_other = ((comps > 0) & (comps != missed)).sum(axis=(1, 2))
    z = int(np.argmax(np.minimum(area_missed, area_other)))
    return alice, bob, z


def _write_read(path: Path, labels: np.ndarray, reader: str, image_ref: dict, geom) -> Path:
    """A reader's log: image.open with geometry, an empty labels layer, then their drawing."""
    from napari_clinlabel.core.annotate.label_edits import (
        diff_between,
        record_label_change,
        record_labels_create,
    )
    from napari_clinlabel.core.log.audit_log import AuditLog
    from napari_clinlabel.core.log.identity import Actor

    path.parent.mkdir(parents=True, exist_ok=True)
    log = AuditLog(path, image_ref, Actor(reader, reader.title(), "annotator"), None)
    log.append("image.open", None, {"shape": list(labels.shape), "geometry": geom.to_dict()})
    record_labels_create(log, "Labels", labels.shape, labels.dtype)
    work = np.zeros_like(labels)
    idx, old, new = diff_between(work, labels)
    record_label_change(log, work, "Labels", idx, old, new, applied=False)
    log.close()
    return path


def main(out: Path = OUT) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-adj-shot-"))
    os.environ["CLINLABEL_WORKSPACE"] = str(tmp / "workspace")
    os.environ["CLINLABEL_KEYS"] = str(tmp / "keys")
    os.environ["CLINLABEL_USER"] = "carol"
    os.environ["CLINLABEL_ROLE"] = "adjudicator"

    from napari_clinlabel.cli.roster import run_sign
    from napari_clinlabel.core.image.samples import ct_phantom_truth
    from napari_clinlabel.core.log.signing import init_keys

    vol, truth = ct_phantom_truth()
    _, carol_key = init_keys("carol")
    _, owner_key = init_keys("owner")  # roles count only in a roster its owner signed
    roster = tmp / "clinlabel-roster.toml"
    roster.write_text(
        f'[owner]\nid = "owner"\npublic_key = "{owner_key}"\n\n'
        '[[users]]\nid = "alice"\nname = "Dr Alice Reader"\nrole = "annotator"\n\n'
        '[[users]]\nid = "bob"\nname = "Dr Bob Reader"\nrole = "annotator"\n\n'
        f'[[users]]\nid = "carol"\nname = "Dr Carol Senior"\nrole = "adjudicator"\n'
        f'public_key = "{carol_key}"\n',
        encoding="utf-8",
    )
    run_sign(argparse.Namespace(roster=roster, user="owner"))
    os.environ["CLINLABEL_ROSTER"] = str(roster)

    import napari

    from napari_clinlabel._widgets._common import add_volume
    from napari_clinlabel._widgets.adjudication import DISAGREEMENT, DRAFT, AdjudicationWidget
    from napari_clinlabel.glue.session import image_sha256

    case = tmp / "case"
    case.mkdir()
    vol.meta["source_path"] = str(case / "ct.nii.gz")
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*SIZE)
    image = add_volume(viewer, vol, name="CT phantom")
    image.contrast_limits = (-160, 240)
    alice, bob, z = _reader_maps(truth)
    ref = {"uid": None, "sha256": image_sha256(image)}
    logs = [
        _write_read(tmp / r / "ct.nii.gz.clinlabel.jsonl", m, r, ref, vol.geometry)
        for r, m in (("alice", alice), ("bob", bob))
    ]

    widget = AdjudicationWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Adjudication", area="right")
    widget._logs.setText(";".join(map(str, logs)))
    widget._load.click()
    settle(200)
    for name in (DRAFT,):
        viewer.layers[name].visible = False
    viewer.layers[DISAGREEMENT].opacity = 0.9
    viewer.layers.selection.active = viewer.layers[DISAGREEMENT]
    widget._reader.setCurrentText("alice")
    widget._reason.setText("bob missed the 14 mm liver lesion; alice's liver edge is generous")
    for line in (widget._logs, widget._reason):
        line.setCursorPosition(0)

    viewer.dims.set_point(0, float(np.asarray(image.data_to_world((z, 0, 0)))[0]))
    viewer.reset_view()
    viewer.scene.camera.zoom *= 1.3
    return shoot(viewer, out, tmp, 800)


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
