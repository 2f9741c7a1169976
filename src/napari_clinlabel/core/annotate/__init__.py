"""Human annotation as log records: label strokes, lesion boxes, grades, and their replay.

Every change a person makes is one record through these functions (never a direct write).
Re-exported here: label strokes from ``label_edits`` (:func:`record_label_change`,
:func:`record_labels_create`, :func:`record_labels_save`); boxes from ``boxes``
(:class:`LesionBox`, :func:`add_box`, :func:`edit_box`, :func:`delete_box`, :func:`load_boxes`);
grades from ``grading`` (:class:`Grade`, :func:`set_grade`, :func:`load_grades`); replay from
``replay`` (:func:`replay_labels`) and ``state`` (:func:`restore_state`).
Used as modules: ``seg_tools`` and ``tools/`` (semi-automatic tools returning the voxels to
change), ``box_edits`` (drawn rectangles reconciled with the boxes in force), ``tiles`` (tile
grids for slides), ``provenance`` (who or what set each voxel).
"""

from napari_clinlabel.core.annotate.boxes import (
    LesionBox,
    add_box,
    delete_box,
    edit_box,
    load_boxes,
)
from napari_clinlabel.core.annotate.grading import Grade, load_grades, set_grade
from napari_clinlabel.core.annotate.label_edits import (
    record_label_change,
    record_labels_create,
    record_labels_save,
)
from napari_clinlabel.core.annotate.replay import replay_labels
from napari_clinlabel.core.annotate.state import AnnotationState, restore_state

__all__ = [
    "AnnotationState",
    "Grade",
    "LesionBox",
    "add_box",
    "delete_box",
    "edit_box",
    "load_boxes",
    "load_grades",
    "record_label_change",
    "record_labels_create",
    "record_labels_save",
    "replay_labels",
    "restore_state",
    "set_grade",
]
