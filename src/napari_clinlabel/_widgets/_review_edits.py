"""Editing a proposal before accepting it, for the Review widget: segment mask, box, grade.

A mixin of :class:`~napari_clinlabel._widgets.review.ReviewWidget` (it uses that widget's queue,
layers, chooser and labels): ``E`` opens a segment in the "proposal edit" layer (``E`` again
confirms), accepts a box as the reviewer dragged it (core ``edited_proposal_box``) or a grade as
chosen in the chooser. An "edit" that changes nothing records nothing and says to press ``A``.
Each confirmed edit is one core ``ReviewQueue.edit`` call, so one ``proposal.edit`` record.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_clinlabel._widgets._proposal_text import describe, grade_hint, grade_scale
from napari_clinlabel.core.annotate.box_edits import edited_proposal_box
from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.proposals.lifecycle import Proposal

_UNCHANGED = "{what} is as proposed: nothing to record as an edit. Press A to accept it as it is."


def is_grade(p: Proposal | None) -> bool:
    """True for a grade proposal."""
    return p is not None and p.kind == "grade"


class ReviewEdits:
    """The E key and the edit buttons of the Review widget."""

    _editing: Proposal | None
    _layers: Any
    _queue: Any
    _session: Any
    _volume: Any
    _image: Any
    _info: Any
    _grade_combo: Any
    _grade_row: Any

    def _on_edit(self) -> None:
        p = self._decidable()
        if p is None:
            return
        if p.kind == "box":
            self._edit_box(p)
            return
        if p.kind == "grade":
            self._edit_grade(p)
            return
        self._editing = p
        self._bind_keys(self._layers.start_edit(p))  # E on the edit layer confirms
        self._show_edit_buttons(True)
        self._info.setText(
            describe(p, self._volume.geometry)
            + "\nEditing: change the cyan mask, then E / Confirm."
        )

    def _edit_box(self, p: Proposal) -> None:
        """Accept a box proposal as the reviewer left it on the layer (one ``proposal.edit``)."""
        try:
            box = edited_proposal_box(self._layers.box_rects(p), p.payload,
                                      self._volume.spatial_shape, self._layers.shown_z())  # fmt: skip
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._warn(str(exc))
            return
        if box is None:
            self._warn(_UNCHANGED.format(what="The box"))
            return
        new = {**p.payload, "zyx_min": box[0], "zyx_max": box[1]}
        self._decide(lambda labels: self._queue.edit(edited=new, labels=labels[0],
                                                     labels_name=labels[1]))  # fmt: skip

    def _edit_grade(self, p: Proposal) -> None:
        """Accept a grade proposal with the grade chosen in the chooser (one ``proposal.edit``)."""
        chosen = self.grade_choice
        if chosen is None:
            self._warn(grade_hint(None, p))
            return
        if chosen == str(p.payload.get("value")):
            self._warn(_UNCHANGED.format(what="The grade"))
            return
        new = {**p.payload, "value": chosen}
        self._decide(lambda labels: self._queue.edit(edited=new, labels=labels[0],
                                                     labels_name=labels[1]))  # fmt: skip

    def _step_grade(self, step: int) -> None:
        """Up/Down: the previous/next grade of the scale in the chooser (nothing is logged)."""
        if self._editing is None and not self._grade_row.isHidden():
            self._grade_combo.step(step)

    def _show_grades(self, p: Proposal | None) -> None:
        """Fill the chooser with the scale of grade proposal ``p`` (hidden for other kinds)."""
        scale = grade_scale(p, self._session.schema_for(self._image)) if is_grade(p) else None
        self._grade_combo.fill(scale, str(p.payload.get("value")) if p is not None else "")
        self._grade_row.setVisible(scale is not None)
        if is_grade(p):
            self._info.setText(self._info.text() + "\n" + grade_hint(scale, p))

    def _on_confirm_edit(self) -> None:
        p = self._editing
        if p is None:
            return
        new_idx = self._layers.edited_indices()
        self._editing = None  # the decision below is the edit's end (kept on a refused write)
        call = lambda labels: self._queue.edit(new_idx, labels=labels[0], labels_name=labels[1])  # noqa: E731
        if self._decide(call, extra_idx=new_idx):
            self._finish_edit(new_idx)
        else:
            self._editing = p

    def _on_discard_edit(self) -> None:
        if self._editing is None:
            return
        self._finish_edit(self._layers.edited_indices())
        self._show()

    def _finish_edit(self, idx: np.ndarray) -> None:
        self._editing = None
        self._layers.end_edit(idx)
        self._bind_keys(self._image)
        self._show_edit_buttons(False)
