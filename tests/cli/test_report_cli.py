"""``clinlabel report DATASET -o report.html``: writes the page, exit 1 on a broken log, clear errors."""

from __future__ import annotations

from core.quality.test_report import SECRET_NAME, build_dataset

from napari_clinlabel.cli import main


def test_report_cli_writes_html(tmp_path, capsys):
    root = build_dataset(tmp_path / "ds")
    out = tmp_path / "report.html"
    assert main(["report", str(root), "-o", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html
    assert SECRET_NAME not in html
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote {out}: 12 log(s)")
    # verified as `log verify` does, and it says against what: no roster, annotators only
    assert "verified against: no roster: nobody holds more than annotator" in printed
    assert "authority: no roster" in html


def test_report_cli_broken_log_exit_1(tmp_path, capsys):
    root = build_dataset(tmp_path / "ds")
    log = root / "alice" / "case1.dcm.clinlabel.jsonl"
    log.write_text(log.read_text().replace('"alice"', '"mallory"', 1))
    assert main(["report", str(root), "-o", str(tmp_path / "r.html")]) == 1
    assert (
        "1 log(s) failed verification: alice/case1.dcm.clinlabel.jsonl" in capsys.readouterr().out
    )


def test_report_cli_bad_input(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no sidecar logs" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "nodir" / "r.html")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_report_lists_a_log_with_an_unreadable_line_as_broken(tmp_path, capsys):
    """A line that is not JSON breaks that log's verification, not the whole report."""
    root = build_dataset(tmp_path / "ds")
    log = root / "alice" / "case1.dcm.clinlabel.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = "{this is not json\n"
    log.write_text("".join(lines))
    out_html = tmp_path / "r.html"
    assert main(["report", str(root), "-o", str(out_html)]) == 1
    assert "1 log(s) failed verification" in capsys.readouterr().out
    assert out_html.is_file() and "broken at seq 2" in out_html.read_text()
