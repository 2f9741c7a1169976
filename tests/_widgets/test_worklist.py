"""The scripted programme of issue 16 through the CLI and the Worklist widget.

Owner olga, annotators ann/ben/cat, reviewer rev, adjudicator adj; 60 cases (44 routine, 10 in a
100 % double-read class, 6 honeypots = 10 %). The owner runs ``clinlabel dataset`` (init, add,
calibrate: cat fails, assign); each reader then works in their own napari viewer with the
Worklist widget: cat is refused by the calibration gate, ann and ben read through Next case /
opening a row (painting, grading and marking done as the Segmentation and Grading widgets do),
ann flags a case, the grade disagreement on a double-read case fills the adjudicator's queue,
which opens the Adjudication widget with both reads loaded; the reviewer approves one read (a
signature) and returns another with comments. Checked against the logs themselves: the dataset
log's records, each read's log (``verify_log`` with the roster), the signature with
``cryptography``; the report's programme view is checked in tests/cli/test_report_programme.py.
"""

from __future__ import annotations

import base64
import json
import socket

import numpy as np
import pytest
import SimpleITK as sitk
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from qtpy.QtCore import Qt
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture
from support.programme_fixtures import DESIGN, USERS
from support.trusted_roster import write_roster

from napari_clinlabel._widgets.grading import GradingWidget
from napari_clinlabel._widgets.worklist import WorklistWidget
from napari_clinlabel.cli import main
from napari_clinlabel.core.annotate.grading import mark_done, set_grade
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.authority import verify_trusted
from napari_clinlabel.core.log.identity import load_roster
from napari_clinlabel.core.log.signing import record_statement
from napari_clinlabel.core.pacs import push, series_folder
from napari_clinlabel.core.programme.dataset import Dataset
from napari_clinlabel.core.programme.status import status
from napari_clinlabel.core.schema import load_schema
from napari_clinlabel.glue.session import get_session

pytestmark = pytest.mark.gui
LEFT = Qt.MouseButton.LeftButton


def _image(path, seed):
    arr = np.random.default_rng(seed).integers(0, 200, (4, 16, 16)).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 2.0))
    sitk.WriteImage(img, str(path))
    return path


def _grades(path, rows):
    path.write_text("item,grade\n" + "".join(f"{i},{g}\n" for i, g in rows))
    return path


def _programme(tmp_path, monkeypatch):
    ds = tmp_path / "ds"
    write_roster(ds, USERS, owner="olga")
    (tmp_path / "design.toml").write_text(DESIGN)
    images = tmp_path / "images"
    images.mkdir()
    cases = [_image(images / f"case{i:03d}.nii.gz", i) for i in range(54)]
    gold = [_image(images / f"gold{i:02d}.nii.gz", 100 + i) for i in range(6)]
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    d = str(ds)
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 0
    assert main(["dataset", "add", d, *map(str, cases[:44])]) == 0
    assert main(["dataset", "add", d, "--class", "high-risk", *map(str, cases[44:])]) == 0
    assert main(["dataset", "add", d, "--honeypot", "--gold-author", "ann", *map(str, gold)]) == 0
    rows = [(f"g{i}", v) for i, v in enumerate(["1", "2", "3", "4A", "5", "2", "1", "3"])]
    gold_csv = _grades(tmp_path / "gold.csv", rows)
    bad = _grades(tmp_path / "bad.csv", [(i, "1") for i, _ in rows])
    for reader, table, code in (("ann", gold_csv, 0), ("ben", gold_csv, 0), ("cat", bad, 1)):
        assert main(["dataset", "calibrate", d, "--reader", reader, "--gold-grades", str(gold_csv),
                     "--reader-grades", str(table), "--schema", "birads",
                     "--scale", "assessment"]) == code  # fmt: skip
    assert main(["dataset", "assign", d]) == 0
    return ds


def _widget(make_napari_viewer, monkeypatch, user, ds):
    monkeypatch.setenv("CLINLABEL_USER", user)
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    viewer = make_napari_viewer()
    w = WorklistWidget(viewer)
    viewer.window.add_dock_widget(w)
    errors: list[str] = []
    monkeypatch.setattr(get_session(viewer), "report_error", lambda exc: errors.append(str(exc)))
    w.open_dataset(ds)
    return viewer, w, errors


def _read(w, square, grade):
    """Paint a 6x6 square of label 1 on slice 1, grade BI-RADS and mark done (as the widgets do)."""
    session = get_session(w._viewer)
    mask = np.zeros(w.labels.data.shape, bool)
    mask[1, square[0] : square[0] + 6, square[1] : square[1] + 6] = True
    session.edit_labels(w.labels, np.flatnonzero(mask), 1, tool="brush")
    log = session.log_for(w.image)
    schema = load_schema("birads")
    set_grade(log, schema.scales["assessment"], grade)
    set_grade(log, schema.scales["density"], "b")
    mark_done(log, schema)


def _records(path):
    return list(iter_records(path))


def test_programme_through_the_worklist(tmp_path, monkeypatch, make_napari_viewer, qtbot):
    ds = _programme(tmp_path, monkeypatch)
    dlog = ds / "clinlabel-dataset.jsonl"
    assigned = [r for r in _records(dlog) if r["action"] == "case.assign"]
    roster = load_roster(ds / "clinlabel-roster.toml")

    # calibration gate: cat failed the gold panel; the worklist says so, Next case opens nothing
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "cat", ds)
    assert "NOT calibrated for guideline 2.0" in w._who.text()
    qtbot.mouseClick(w._next, LEFT)
    assert len(viewer.layers) == 0 and "has not passed the gold panel" in errors[-1]

    # ann: my cases are exactly her case.assign records; Next case opens the first one
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ann", ds)
    mine = [r["target"]["case"] for r in assigned if r["data"]["reader"] == "ann"]
    assert [r["case"] for r in w.rows] == mine
    assert {r["status"] for r in w.rows} == {"not started"}
    assert "honeypot" not in json.dumps(w.rows) and not any(c.startswith("gold") for c in mine)
    qtbot.mouseClick(w._next, LEFT)
    first = w.current["case"]
    assert first == mine[0] and w.image.name == first
    assert w.labels.name == f"{first} labels (ann)" and w.labels in viewer.layers
    _read(w, (2, 2), "2")
    w.refresh()
    assert w.rows[0]["status"] == "completed" and w._progress.value() == 1
    read_log = ds / "reads" / f"{first}__ann.clinlabel.jsonl"
    acts = [(r["action"], r["actor"]["id"]) for r in _records(read_log)]
    assert acts[0] == ("image.open", "ann") and ("label.paint", "ann") in acts
    assert acts[-1] == ("image.done", "ann")
    assert verify_trusted(read_log, roster)[0].ok
    # a double-read case of hers, opened from its row
    double = sorted(r["target"]["case"] for r in assigned if r["target"]["case"] >= "case044"
                    and r["target"]["case"] < "gold" and r["data"]["reader"] == "ann")  # fmt: skip
    hr = double[0]
    w._cases.selectRow([r["case"] for r in w.rows].index(hr))
    w._on_open_selected()
    assert w.image.name == hr and first not in viewer.layers  # one case at a time
    _read(w, (2, 2), "4A")
    # flag: the selected case, with a reason, one case.flag record by ann in the dataset log
    flag_case = next(r["case"] for r in w.rows if r["status"] == "not started")
    w._cases.selectRow([r["case"] for r in w.rows].index(flag_case))
    w._reason.setText("wrong laterality marker")
    qtbot.mouseClick(w._flag, LEFT)
    flags = [r for r in _records(dlog) if r["action"] == "case.flag"]
    assert [(f["target"]["case"], f["actor"]["id"], f["data"]["reason"]) for f in flags] == [
        (flag_case, "ann", "wrong laterality marker")
    ]
    assert next(r for r in w.rows if r["case"] == flag_case)["status"] == "flagged"
    assert not errors

    # ben reads the same double-read case and disagrees (BI-RADS 2, another place)
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ben", ds)
    w._cases.selectRow([r["case"] for r in w.rows].index(hr))
    w._on_open_selected()
    _read(w, (8, 8), "2")
    assert not errors

    # adj: the trigger filled her queue; Adjudicate opens the Adjudication widget, reads loaded
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "adj", ds)
    assert [q["case"] for q in w.queue] == [hr]
    why = w._queue.item(0, 2).text()
    assert ("ann 4A vs ben 2" in why or "ben 2 vs ann 4A" in why) and "high-stakes" in why
    w._queue.selectRow(0)
    qtbot.mouseClick(w._adjudicate, LEFT)
    adj_w = w.adjudication
    assert adj_w is not None and sorted(r.reader for r in adj_w._reads) == ["ann", "ben"]
    assert "adjudication draft" in viewer.layers and w.image.name == hr
    adj_w._reader.setCurrentText("ann")
    qtbot.mouseClick(adj_w._accept, LEFT)
    adj_w._reason.setText("ann's outline matches the lesion")
    qtbot.mouseClick(adj_w._sign, LEFT)
    adj_log = ds / "reads" / f"{hr}__adj.clinlabel.jsonl"
    assert [r["action"] for r in _records(adj_log)][-2:] == ["adjudicate", "sign"]
    assert verify_trusted(adj_log, roster)[0].ok
    w.refresh()
    assert w.queue == [] and not errors
    assert status(Dataset(ds))["adjudication_queue"] == []

    # rev: approve ann's first read (a binding signature), return ben's with comments
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "rev", ds)
    assert {(r["case"], r["reader"]) for r in w.reviews} == {
        (first, "ann"),
        (hr, "ann"),
        (hr, "ben"),
    }
    qtbot.mouseClick(w._next, LEFT)
    assert (w.current["case"], w.current["reader"]) == (first, "ann")
    assert w.labels is not None and int(w.labels.data.sum()) == 36  # ann's square, restored
    qtbot.mouseClick(w._approve, LEFT)
    sign = _records(read_log)[-1]
    assert (sign["action"], sign["actor"]["id"], sign["data"]["meaning"]) == (
        "sign",
        "rev",
        "approval",
    )
    identity = _records(read_log)[0]["hash"]
    pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(sorted(roster.public_keys("rev"))[0]))
    pub.verify(base64.b64decode(sign["data"]["signature"]), record_statement(sign, identity))
    assert verify_trusted(read_log, roster)[0].ok
    w.refresh()
    ben_log = ds / "reads" / f"{hr}__ben.clinlabel.jsonl"
    for _ in range(len(w.reviews)):  # approve ann's other read, return ben's with comments
        qtbot.mouseClick(w._next, LEFT)
        if w.current["reader"] == "ann":
            qtbot.mouseClick(w._approve, LEFT)
            assert not errors
            continue
        assert w.current["case"] == hr
        qtbot.mouseClick(w._return, LEFT)  # no comment: refused, nothing recorded
        assert errors.pop() == (
            "returning a read needs a comment saying what to change; nothing was recorded")  # fmt: skip
        assert _records(ben_log)[-1]["action"] == "image.open"  # the reviewer's opening only
        w._comment.setText("outline misses the spiculated margin")
        qtbot.mouseClick(w._return, LEFT)
    ret = _records(ben_log)[-1]
    assert (ret["action"], ret["actor"]["id"], ret["data"]["comment"]) == (
        "review.return", "rev", "outline misses the spiculated margin")  # fmt: skip
    w.refresh()
    assert w.reviews == []

    # ben sees the return in his worklist; Next case reopens it first
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ben", ds)
    row = next(r for r in w.rows if r["case"] == hr)
    assert row == {"case": hr, "status": "returned", "note": "outline misses the spiculated margin"}
    qtbot.mouseClick(w._next, LEFT)
    assert w.current["case"] == hr and "returned" in w._status.text()
    assert main(["log", "verify", str(dlog)]) == 0


def test_pacs_series_as_cases(orthanc, tmp_path, monkeypatch, capsys, make_napari_viewer, qtbot):  # noqa: F811
    """``dataset add --pacs URL UID``: the URL and SeriesInstanceUID are recorded (no secret);
    Next case pulls the series from the real Orthanc into the cache and opens it."""
    series = write_series(tmp_path / "src", phantom_stored((5, 12, 10)), spacing=(0.8, 0.7, 2.5))
    push(orthanc.connection(), [tmp_path / "src"])
    ds = tmp_path / "ds"
    write_roster(ds, USERS, owner="olga")
    (tmp_path / "design.toml").write_text(
        DESIGN.replace("honeypot_rate = 0.1", "honeypot_rate = 0")
    )
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    d = str(ds)
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 0
    for bad, why in (("https://reader:pw@pacs/dicom-web", "without credentials"),
                     (orthanc.url, "Series Instance UID")):  # fmt: skip
        uid = series.series_uid if "@" in bad else "1.2.x"
        assert main(["dataset", "add", d, "--pacs", bad, uid]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and why in err, err
    assert main(["dataset", "add", d, "--pacs", orthanc.url, series.series_uid]) == 0
    add = [r for r in _records(ds / "clinlabel-dataset.jsonl") if r["action"] == "case.add"]
    assert [(r["data"]["kind"], r["data"]["pacs"]) for r in add] == [
        ("pacs-series", {"url": orthanc.url, "series_uid": series.series_uid})
    ]
    assert orthanc.password not in (ds / "clinlabel-dataset.jsonl").read_text()
    Dataset(ds).record_calibration("ann", {"passed": True})
    assert main(["dataset", "assign", d]) == 0
    monkeypatch.setenv("CLINLABEL_PACS_USER", orthanc.username)
    monkeypatch.setenv("CLINLABEL_PACS_PASSWORD", orthanc.password)
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ann", ds)
    assert [r["status"] for r in w.rows] == ["not started"]
    before = orthanc.instance_count()
    qtbot.mouseClick(w._next, LEFT)  # the pull runs off the GUI thread, then the case opens
    qtbot.waitUntil(lambda: w.image is not None or bool(errors), timeout=60000)
    assert not errors
    cache = series_folder(series.series_uid)
    assert cache.is_dir() and len(list(cache.iterdir())) == 5 == before  # every instance pulled
    np.testing.assert_array_equal(np.asarray(w.image.data), series.array)
    case = add[0]["target"]["case"]
    opened = _records(ds / "reads" / f"{case}__ann.clinlabel.jsonl")[0]
    assert (opened["action"], opened["image"]["uid"]) == ("image.open", series.series_uid)


def _small_programme(tmp_path, monkeypatch, n_cases=2):
    """Owner olga, annotator ann calibrated, ``n_cases`` routine cases assigned (no honeypots)."""
    ds = tmp_path / "ds"
    write_roster(ds, USERS, owner="olga")
    (tmp_path / "design.toml").write_text(
        DESIGN.replace("honeypot_rate = 0.1", "honeypot_rate = 0")
    )
    images = tmp_path / "images"
    images.mkdir()
    cases = [_image(images / f"case{i:03d}.nii.gz", i) for i in range(n_cases)]
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    d = str(ds)
    assert main(["dataset", "init", d, "--design", str(tmp_path / "design.toml")]) == 0
    if cases:
        assert main(["dataset", "add", d, *map(str, cases)]) == 0
    Dataset(ds).record_calibration("ann", {"passed": True})
    return ds


def test_first_open_grades_on_the_design_schema(tmp_path, monkeypatch, make_napari_viewer, qtbot):
    """Next case, then a grading key: the grade is recorded under the design's schema (birads) on
    the first open of the case, without the reader choosing a schema (issue: no schema on first
    open); Mark done is then accepted once every required scale is graded."""
    ds = _small_programme(tmp_path, monkeypatch)
    assert main(["dataset", "assign", str(ds)]) == 0
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ann", ds)
    grading = GradingWidget(viewer)
    viewer.window.add_dock_widget(grading)
    qtbot.mouseClick(w._next, LEFT)
    assert w.image is not None and not errors, errors
    case = w.current["case"]
    grading.press("1")  # assessment BI-RADS 1
    grading.press("b")  # density b
    assert not errors, errors
    grading._on_mark_done()
    assert not errors, errors
    recs = _records(ds / "reads" / f"{case}__ann.clinlabel.jsonl")
    grades = [r for r in recs if r["action"] == "grade.set"]
    birads = load_schema("birads").ref()
    assert [(r["target"]["scale"], r["data"]["value"]) for r in grades] == [
        ("assessment", "1"),
        ("density", "b"),
    ]
    assert all(r["schema"] == birads for r in grades), [r.get("schema") for r in grades]
    assert recs[-1]["action"] == "image.done"


def test_an_unreachable_pacs_case_does_not_stick_next_case(
    tmp_path, monkeypatch, make_napari_viewer, qtbot
):
    """A PACS case whose server cannot be reached (127.0.0.1, a closed port: no network): Next
    case reports the failed pull once, resets the status line and moves on to the file case; the
    failed case is skipped for the rest of the session."""
    with socket.socket() as s:  # a port nobody listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ds = _small_programme(tmp_path, monkeypatch, n_cases=0)
    url = f"http://127.0.0.1:{port}/dicom-web"
    assert main(["dataset", "add", str(ds), "--pacs", url, "1.2.826.0.1.3680043.2.1125.1"]) == 0
    case_file = _image(tmp_path / "images" / "zcase100.nii.gz", 100)  # after series-1
    assert main(["dataset", "add", str(ds), str(case_file)]) == 0
    assert main(["dataset", "assign", str(ds)]) == 0
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "ann", ds)
    st = Dataset(ds).state()
    pacs_case = next(c.id for c in st.cases.values() if c.pacs is not None)
    file_case = next(c.id for c in st.cases.values() if c.pacs is None)
    assert {r["status"] for r in w.rows} == {"not started"} and len(w.rows) == 2
    first = next(r["case"] for r in w.rows)  # next_case offers the rows in this order
    if first != pacs_case:
        pytest.skip("the worklist orders the file case first; the PACS case is not hit")
    qtbot.mouseClick(w._next, LEFT)
    qtbot.waitUntil(lambda: bool(errors) and w._next.isEnabled(), timeout=60000)
    assert len(errors) == 1 and w.image is None
    status = w._status.text()
    assert "pulling" not in status and pacs_case in status and "skips it" in status, status
    qtbot.mouseClick(w._next, LEFT)  # moves on: the file case opens
    assert w.image is not None and w.current["case"] == file_case
    assert len(errors) == 1
    assert (
        w._next_entry()["case"] == file_case
    )  # in progress now: offered again, never the PACS one
    w.failed.clear()  # a new session would try the PACS case again (it is not started)
    assert w._next_entry()["case"] == file_case  # in progress comes before not started


def test_owner_only_in_owner_table_opens_the_worklist(
    tmp_path, monkeypatch, make_napari_viewer, qtbot
):
    """The README's roster (owner only under [owner]): the owner opens the dataset as 'owner',
    with no reader queue and Next case disabled, rather than 'not in the roster'."""
    ds = tmp_path / "ds"
    write_roster(ds, {"ann": ["annotator"]}, owner="olga")
    (tmp_path / "design.toml").write_text(DESIGN)
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    assert main(["dataset", "init", str(ds), "--design", str(tmp_path / "design.toml")]) == 0
    viewer, w, errors = _widget(make_napari_viewer, monkeypatch, "olga", ds)
    assert not errors, errors
    assert w.user == "olga" and "olga (owner)" in w._who.text(), w._who.text()
    assert not w._next.isEnabled() and w._cases.isHidden()
    assert "no reading role" in w._status.text() and "dataset status" in w._status.text()
