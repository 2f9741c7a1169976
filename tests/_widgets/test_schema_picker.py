"""The schema picker's combo names the schema in force: a file loaded, a built-in chosen back,
and a file with errors (the schema in force stays, and so does the combo)."""

from __future__ import annotations

from napari_clinlabel._widgets._schema_picker import SchemaPicker
from napari_clinlabel.core.schema.model import BUILTIN_DIR


def test_combo_follows_the_schema_in_force(qtbot, tmp_path):
    errors: list[BaseException] = []
    picker = SchemaPicker("abdomen-ct", errors.append)
    qtbot.addWidget(picker)
    text = (BUILTIN_DIR / "lesions.yaml").read_text(encoding="utf-8")
    mine = tmp_path / "site-lesions.yaml"
    mine.write_text(text, encoding="utf-8")

    assert picker.load_file(mine)
    assert picker.schema.path == mine
    assert picker._combo.currentText() == f"{picker.schema.id} (file site-lesions.yaml)"

    picker._combo.setCurrentText("abdomen-ct")  # back to a built-in, as a user picks it
    assert picker.schema.id == "abdomen-ct"
    again = picker._combo.findData(str(mine))
    picker._combo.setCurrentIndex(again)  # and the file again, from the combo
    assert picker.schema.path == mine

    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [\n", encoding="utf-8")
    assert not picker.load_file(broken)
    assert len(errors) == 1 and "broken.yaml" in str(errors[0])
    assert picker.schema.path == mine
    assert picker._combo.currentText() == f"{picker.schema.id} (file site-lesions.yaml)"
