"""Quality evidence: agreement between readers, consensus, adjudication and the dataset report.

Re-exported here, the measures: grade agreement from ``kappa`` (:func:`cohen_kappa`,
:func:`weighted_kappa`, :func:`fleiss_kappa`, :func:`krippendorff_alpha`); segmentation agreement
in mm from ``metrics`` (:func:`dice`, :func:`hd95_mm`, :func:`mean_surface_distance_mm`,
:func:`label_map_agreement`); lesion detection from ``detection`` (:func:`match_boxes`,
:func:`detection_prf`); STAPLE consensus from ``staple`` (:func:`multilabel_staple`).
Used as modules: ``agreement`` (``clinlabel agreement``: two readers' results in any form),
``adjudication`` (a senior's signed decision over reads), ``gold_panel`` (calibrating a reader),
``report`` and ``report_html`` (the dataset report; matplotlib loads only when plotting).
"""

from napari_clinlabel.core.quality.detection import detection_prf, match_boxes
from napari_clinlabel.core.quality.kappa import (
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    weighted_kappa,
)
from napari_clinlabel.core.quality.metrics import (
    dice,
    hd95_mm,
    label_map_agreement,
    mean_surface_distance_mm,
)
from napari_clinlabel.core.quality.staple import multilabel_staple

__all__ = [
    "cohen_kappa",
    "detection_prf",
    "dice",
    "fleiss_kappa",
    "hd95_mm",
    "krippendorff_alpha",
    "label_map_agreement",
    "match_boxes",
    "mean_surface_distance_mm",
    "multilabel_staple",
    "weighted_kappa",
]
