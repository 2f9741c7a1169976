"""README's "Python API" example runs verbatim, and the log it writes replays and verifies."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.verify import verify_log

README = Path(__file__).resolve().parents[1] / "README.md"


def first_python_block(text: str, section: str) -> str:
    """The first ```python block after the heading ``## <section>`` (and before the next ##)."""
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start : end if end > 0 else None]
    match = re.search(r"```python\n(.*?)```", body, re.S)
    assert match, f"README's {section!r} section holds no python block"
    return match.group(1)


def test_readme_python_api_example_runs_and_its_log_replays(tmp_path):
    code = first_python_block(README.read_text(encoding="utf-8"), "Python API")
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINLABEL_")}
    env["HOME"] = str(tmp_path / "home")  # witness files and keys stay in the temp dir
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    logs = list(tmp_path.rglob("*.clinlabel.jsonl"))
    assert len(logs) == 1, logs
    log = logs[0]
    report = verify_log(log)  # the package's verifier, apart from the script's own check
    assert report.ok, report.summary()
    recs = list(iter_records(log))
    actions = [r["action"] for r in recs]
    assert actions[0] == "image.open" and actions[-1] == "export"
    assert {"label.paint", "box.add", "grade.set", "proposal.add"} <= set(actions)
    adds = [r["target"]["proposal"] for r in recs if r["action"] == "proposal.add"]
    decided = [r["target"]["proposal"] for r in recs if r["action"].startswith("proposal.")
               and r["action"] != "proposal.add"]  # fmt: skip
    assert sorted(adds) == sorted(decided)  # every proposal decided, each by its own record
    assert {r["actor"]["id"] for r in recs} == {"ana"}

    # replay: the labels the log rebuilds are the NIfTI the example exported, voxel for voxel,
    # and the mass the example painted (a disc of radius 40 px at (630, 450)), read by SimpleITK
    labels = replay_labels(log).labels["segmentation"]
    nifti = sitk.ReadImage(str(tmp_path / "mammogram_labels.nii.gz"))
    exported = sitk.GetArrayFromImage(nifti)
    np.testing.assert_array_equal(exported.reshape(labels.shape), labels)
    yy, xx = np.mgrid[: labels.shape[0], : labels.shape[1]]
    disc = (yy - 630) ** 2 + (xx - 450) ** 2 <= 40**2
    assert np.array_equal(labels[disc], np.ones(disc.sum(), labels.dtype))
    assert np.allclose(nifti.GetSpacing()[:2], (0.1, 0.1))
