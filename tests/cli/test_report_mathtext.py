"""Reader ids holding ``$…$`` (matplotlib mathtext) or HTML reach the report's plots and page
as plain, escaped text: exit 0, no crash."""

from __future__ import annotations

import numpy as np
from support.agreement_fixtures import reader_maps, write_reader_log

from napari_clinlabel.cli import main
from napari_clinlabel.core.schema import load_schema

NASTY = [r"$\frac{$", r"a$\undefinedcommand$b", "<script>alert(1)</script>"]


def test_report_with_mathtext_and_html_in_reader_ids(tmp_path, capsys):
    schema = load_schema("birads")
    a, b = reader_maps((4, 12, 12))
    for i in range(2):
        for reader, labels in ((NASTY[0], a), (NASTY[1], b), (NASTY[2], a)):
            folder = tmp_path / "ds" / f"r{NASTY.index(reader)}"
            folder.mkdir(parents=True, exist_ok=True)
            write_reader_log(folder / f"case{i}.png.clinlabel.jsonl", np.roll(labels, i, 2), reader,
                             image_sha=f"{i:02d}" * 32, grades={"assessment": "2"}, schema=schema)  # fmt: skip
    out = tmp_path / "r.html"
    rc = main(["report", str(tmp_path / "ds"), "-o", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert printed.out.startswith(f"wrote {out}: 6 log(s)")
    html = out.read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("data:image/png;base64,") >= 2  # the plots were drawn
