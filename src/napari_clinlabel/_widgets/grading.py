"""Grading widget: the image's schema scales (BI-RADS assessment + density, ICDR DR + DME, …).

Keyboard: one scale is *active* (marked ▶). Its keys (the schema's ``key`` per grade: digits, and
letters such as ``a``/``b``/``c`` for BI-RADS 4A/4B/4C) choose a grade, which is logged at once
and moves the focus to the next scale; Up/Down change the active scale; Enter marks the image done.
Keys are bound on the viewer and on the graded image layer (see ``_common.KeyBinder``: previous
bindings come back when the widget closes), and also work while this widget has focus. While a
Labels or Shapes layer is selected, its own tool keys win: select the image to grade.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from napari_clinlabel._widgets._base import ImageWidget
from napari_clinlabel._widgets._common import display_name
from napari_clinlabel.core.annotate.grading import (
    grade_item,
    grade_of,
    graded_schema_ref,
    is_image_item,
    mark_done,
    missing_grades,
    set_grade,
)
from napari_clinlabel.core.annotate.state import restore_state
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.schema import builtin_grading_schemas, load_schema

NO_SCHEMA = "— choose a schema —"
MAMMOGRAPHY = "birads"  # the grading schema a mammogram (modality MG) opens with


def gradable_schemas() -> list[str]:
    """Built-in schemas with per-image or per-study scales."""
    return builtin_grading_schemas(tiles=False)


class GradingWidget(ImageWidget):
    """Grade the selected image on its schema's scales by keyboard or mouse; mark it done."""

    def __init__(self, napari_viewer: Any) -> None:
        # follow_log: a grade proposal accepted or edited in Review is a grade in force here too
        super().__init__(napari_viewer, keys=True, follow_log=True)
        self._schema: Any = None
        self._active = 0  # index of the active scale
        self._grades: dict[str, str] = {}  # scale id -> value in force
        self._buttons: dict[str, dict[str, QRadioButton]] = {}
        self._boxes: dict[str, QGroupBox] = {}

        self._schema_combo = QComboBox()
        self._schema_combo.addItems([NO_SCHEMA, *gradable_schemas()])
        self._scales_box = QVBoxLayout()
        self._note = QLineEdit()
        self._note.setPlaceholderText("Note (saved with the next grade)")
        self._done_btn = QPushButton("Mark done (Enter)")
        self._status = QLabel("")
        self._status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Image", self._image_combo)
        form.addRow("Schema", self._schema_combo)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(self._scales_box)
        lay.addWidget(self._note)
        lay.addWidget(self._done_btn)
        lay.addWidget(self._status)
        lay.addStretch(1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._schema_combo.currentTextChanged.connect(self._on_schema_chosen)
        self._done_btn.clicked.connect(self._on_mark_done)
        self._refresh_images()

    def _on_record(self, rec: dict[str, Any]) -> None:
        if self._image is None or rec.get("action") == "grade.set":
            return  # grades set here are shown already
        found = grade_of(rec)
        if found is None or not is_image_item(found[1]) or not self._is_about_image(rec):
            return
        self._grades[found[0]] = str(found[2].get("value"))
        self._sync_buttons()
        self._show_status(False)

    # -- image and schema ----------------------------------------------------------------
    def _use_image(self, image: Image) -> None:
        self._note.clear()  # a note typed for another image is never this image's
        log_path = self._session.log_path_for(image)
        ref = graded_schema_ref(log_path) or self._session.schema_for(image)
        state = restore_state(log_path)
        self._grades = {s: g.value for (s, i), g in state.grades.items() if is_image_item(i)}
        schema_name = ref["id"] if ref and ref.get("id") in gradable_schemas() else NO_SCHEMA
        modality = str((image.metadata.get("clinlabel") or {}).get("modality") or "").upper()
        if schema_name == NO_SCHEMA and modality == "MG" and MAMMOGRAPHY in gradable_schemas():
            schema_name = MAMMOGRAPHY  # as Lesion boxes picks the BI-RADS lexicon for MG
        self._busy = True
        self._schema_combo.setCurrentText(schema_name)
        self._busy = False
        self._on_schema_chosen(schema_name, done=state.done)

    def _on_schema_chosen(self, name: str, done: bool = False) -> None:
        if self._busy:
            return
        self._schema = None if name == NO_SCHEMA else load_schema(name)
        self._active = 0
        self._build_scales()
        self._bind_keys()
        self._show_status(done)

    def _build_scales(self) -> None:
        while self._scales_box.count():
            item = self._scales_box.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._buttons, self._boxes = {}, {}
        if self._schema is None:
            return
        for scale in self._scales():
            box = QGroupBox(scale.name)
            col = QVBoxLayout(box)
            self._buttons[scale.id] = {}
            for v in scale.values:
                btn = QRadioButton(f"[{v.key}]  {v.value} — {v.label}")
                btn.setChecked(self._grades.get(scale.id) == v.value)
                btn.clicked.connect(lambda _c=False, s=scale, val=v.value: self.choose(s.id, val))
                col.addWidget(btn)
                self._buttons[scale.id][v.value] = btn
            self._boxes[scale.id] = box
            self._scales_box.addWidget(box)
        self._mark_active()

    def _scales(self) -> list[Any]:
        return [s for s in self._schema.scales.values() if s.per != "tile"] if self._schema else []

    # -- keyboard ------------------------------------------------------------------------
    def _bind_keys(self) -> None:
        keys: dict[str, Any] = {}
        for scale in self._scales():
            for v in scale.values:
                keys[v.key.lower()] = lambda k=v.key: self.press(k)
        if keys:
            keys["Up"] = lambda: self._move_active(-1)
            keys["Down"] = lambda: self._move_active(1)
            keys["Enter"] = self._on_mark_done
        self._keys.bind(keys, self._image)

    def press(self, key: str) -> None:
        """A grading key: choose the active scale's grade bound to ``key``."""
        scales = self._scales()
        if not scales:
            self._session.report_error(
                ClinlabelError(f"{self._name()}: choose a schema before grading.")
            )
            return
        scale = scales[self._active]
        chosen = scale.by_key(key)
        if chosen is None:
            keys = ", ".join(v.key for v in scale.values)
            self._status.setText(f"Key {key!r} is not a grade of {scale.name} (keys: {keys}).")
            return
        self.choose(scale.id, chosen.value)

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        """Grading keys also work while the widget itself has focus."""
        text = event.text()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._on_mark_done()
        elif event.key() == Qt.Key.Key_Up:
            self._move_active(-1)
        elif event.key() == Qt.Key.Key_Down:
            self._move_active(1)
        elif text and text.isalnum() and not self._note.hasFocus():
            self.press(text)
        else:
            super().keyPressEvent(event)

    def _move_active(self, step: int) -> None:
        n = len(self._scales())
        if n:  # no wrap-around: Down on the last scale stays there (a wrap sent a reader's next
            # key to the first scale, overwriting the grade she had just given)
            self._active = min(max(self._active + step, 0), n - 1)
            self._mark_active()

    def _mark_active(self) -> None:
        for i, scale in enumerate(self._scales()):
            box = self._boxes.get(scale.id)
            if box is not None:
                box.setTitle(("▶ " if i == self._active else "") + scale.name)

    # -- actions -------------------------------------------------------------------------
    def choose(self, scale_id: str, value: str) -> None:
        """Log grade ``value`` on scale ``scale_id`` for the image; advance to the next scale."""
        try:
            if self._schema is None or self._image is None:
                raise ClinlabelError(
                    f"{self._name()}: no grading schema is chosen; pick one (e.g. birads, icdr) "
                    "before grading. Nothing was recorded."
                )
            with self._logging(self._schema) as log:
                scale = self._schema.scales[scale_id]
                item = grade_item(scale, _meta_of(self._image).get("study_uid"))
                set_grade(log, scale, value, item=item, note=self._note.text())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._status.setText(str(exc))
            self._sync_buttons()
            return
        self._grades[scale_id] = value
        self._note.clear()
        ids = [s.id for s in self._scales()]
        self._active = min(ids.index(scale_id) + 1, len(ids) - 1)  # on to the next scale
        self._sync_buttons()
        self._mark_active()
        self._show_status(False)

    def _on_mark_done(self) -> None:
        try:
            if self._image is None:
                raise ClinlabelError("No image to mark done; open one first.")
            with self._logging(self._schema) as log:
                mark_done(log, self._schema, where=self._name())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._status.setText(str(exc))
            return
        self._show_status(True)

    def _sync_buttons(self) -> None:
        for sid, buttons in self._buttons.items():
            for value, btn in buttons.items():
                btn.setChecked(self._grades.get(sid) == value)

    def _show_status(self, done: bool) -> None:
        if self._schema is None:
            self._status.setText("Choose a schema to grade this image.")
            return
        graded = ", ".join(
            f"{s.name}: {self._grades[s.id]}" for s in self._scales() if s.id in self._grades
        )
        if done:
            self._status.setText(f"Done ✓ — {graded}")
            return
        missing = missing_grades(self._schema, {(s, "image"): None for s in self._grades})
        need = (
            f"Still needed: {'; '.join(missing)}."
            if missing
            else "All required grades set: Enter (Mark done) to finish."
        )
        self._status.setText(f"{graded or 'No grade yet.'}\n{need}")

    def _name(self) -> str:
        return display_name(self._image) if self._image is not None else "this image"

    @property
    def grades(self) -> dict[str, str]:
        """Grades in force for the image (scale id → value)."""
        return dict(self._grades)

    @property
    def status(self) -> str:
        """The status line shown under the scales."""
        return self._status.text()


def _meta_of(layer: Any) -> dict[str, Any]:
    return dict(layer.metadata.get("clinlabel") or {})
