"""Physical image geometry (ITK/DICOM LPS, millimetres) and its napari affine.

ITK stores spacing, origin and direction in index order (x, y, z); napari and numpy use
(z, y, x). ``Geometry`` keeps the ITK values exactly as SimpleITK reports them and derives the
napari affine so that for every index (k, j, i)::

    layer.data_to_world((k, j, i)) == reversed(img.TransformIndexToPhysicalPoint((i, j, k)))

A gantry-tilted CT is sheared: its slices step along a vector that is not the normal of the
slice plane. ``slice_step`` then holds that step (LPS, mm, from ImagePositionPatient) and is the
third column of every matrix here; ``spacing[2]``/``direction`` keep the step's component along
the normal and the orthonormal frame (what an orthogonal reader would see). SimpleITK images
cannot hold a shear, so :meth:`Geometry.apply_to_itk` refuses a sheared geometry; label maps of
a sheared image go to NIfTI through :meth:`Geometry.nifti_affine` (sform) or NRRD (its space
directions are free vectors), and models run on :meth:`Geometry.voxel_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk

from napari_clinlabel.core.errors import GeometryError

SHEAR_TOL_MM = 1e-6  # a slice step this close to the normal is not a shear


@dataclass(frozen=True)
class Geometry:
    """Spacing, origin (mm) and direction cosines in ITK order (x, y, z), as SimpleITK has them."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]  # row-major, ndim*ndim
    slice_step: tuple[float, ...] | None = None  # sheared (gantry tilt): actual k step, LPS mm

    @property
    def sheared(self) -> bool:
        """True when the slice step is off the slice normal (gantry tilt)."""
        if self.slice_step is None or self.ndim != 3:
            return False
        plain = self.direction_matrix()[:, 2] * self.spacing[2]
        return bool(np.linalg.norm(np.asarray(self.slice_step) - plain) > SHEAR_TOL_MM)

    @property
    def shear_angle_deg(self) -> float:
        """Angle between the slice step and the slice normal, degrees (0 when not sheared)."""
        if not self.sheared:
            return 0.0
        step = np.asarray(self.slice_step, float)
        along = float(step @ self.direction_matrix()[:, 2])
        off = float(np.linalg.norm(step - along * self.direction_matrix()[:, 2]))
        return float(np.degrees(np.arctan2(off, abs(along))))

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spacing)

    @classmethod
    def from_itk(cls, img: sitk.Image) -> Geometry:
        """Geometry of a SimpleITK image.

        ITK's NRRD reader keeps non-orthogonal space directions (a sheared NRRD, e.g. labels of
        a gantry-tilted CT): a 3D direction whose third column leans off the normal of the
        first two becomes a sheared geometry (``slice_step``), placing every voxel the same.
        """
        spacing = tuple(float(s) for s in img.GetSpacing())
        origin = tuple(float(o) for o in img.GetOrigin())
        direction = tuple(float(d) for d in img.GetDirection())
        if len(spacing) == 3:
            d = np.asarray(direction).reshape(3, 3)
            normal = np.cross(d[:, 0], d[:, 1])
            # leaning off ±normal by more than rounding (1e-4 rad ≈ 0.006°; a tilt is degrees)
            leans = np.linalg.norm(d[:, 2] - float(d[:, 2] @ normal) * normal) > 1e-4
            if leans and abs(np.linalg.norm(normal) - 1) < 1e-6:
                step = d[:, 2] * spacing[2]
                along = float(step @ normal)
                frame = np.stack([d[:, 0], d[:, 1], normal * np.sign(along)], axis=1)
                return cls(
                    (spacing[0], spacing[1], abs(along)),
                    origin,
                    tuple(float(v) for v in frame.ravel()),
                    tuple(float(v) for v in step),
                )
        return cls(spacing, origin, direction)

    @classmethod
    def identity(cls, ndim: int) -> Geometry:
        """Unit spacing, zero origin, identity direction."""
        return cls((1.0,) * ndim, (0.0,) * ndim, tuple(np.eye(ndim).ravel().tolist()))

    def apply_to_itk(self, img: sitk.Image) -> sitk.Image:
        """Set this geometry on ``img`` (in place) and return it; refuses a sheared geometry."""
        if self.sheared:
            raise GeometryError(
                f"the image is sheared ({self.shear_angle_deg:.2f}° gantry tilt) and a SimpleITK "
                "image (and so MHA) cannot store a shear; export NIfTI or NRRD (they keep the "
                "shear) or DICOM SEG, which maps back to the original frames exactly."
            )
        img.SetSpacing(self.spacing)
        img.SetOrigin(self.origin)
        img.SetDirection(self.direction)
        return img

    def direction_matrix(self) -> np.ndarray:
        """Direction cosines as an ndim×ndim matrix (columns are the index axes i, j, k)."""
        return np.asarray(self.direction, dtype=float).reshape(self.ndim, self.ndim)

    def index_to_physical_matrix(self) -> np.ndarray:
        """Homogeneous matrix mapping ITK index (i, j, k, 1) to LPS point (x, y, z, 1)."""
        n = self.ndim
        m = np.eye(n + 1)
        m[:n, :n] = self.direction_matrix() @ np.diag(self.spacing)
        if self.slice_step is not None and n == 3:
            m[:n, 2] = self.slice_step
        m[:n, n] = self.origin
        return m

    def nifti_affine(self) -> np.ndarray:
        """4×4 NIfTI (RAS) affine of voxel (i, j, k) -> mm, shear included (3D only).

        NIfTI is RAS and ITK/DICOM LPS: the first two rows of the LPS matrix change sign.
        """
        if self.ndim != 3:
            raise GeometryError("a NIfTI affine is made for 3D geometries only")
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.index_to_physical_matrix()

    def voxel_grid(self) -> Geometry:
        """The unsheared grid a network sees: spacing = distance between neighbouring voxels
        (the column norms of the index-to-physical matrix), this origin and direction.

        Equal to ``self`` when there is no shear. Meant for resampling in voxel space (models),
        never for placing voxels in the world: a sheared image's voxels are not where it says.
        """
        if not self.sheared:
            return self
        norms = np.linalg.norm(self.index_to_physical_matrix()[:3, :3], axis=0)
        return Geometry(tuple(float(v) for v in norms), self.origin, self.direction)

    def napari_affine(self, leading_axes: int = 0) -> np.ndarray:
        """Homogeneous affine from napari data (…, z, y, x) to world (…, z, y, x) in mm.

        ``leading_axes`` non-spatial axes (e.g. a volume axis for 4D series) map by identity.
        """
        n = self.ndim
        flip = np.eye(n)[::-1]
        m = self.index_to_physical_matrix()
        spatial = flip @ m[:n, :n] @ flip
        translate = flip @ m[:n, n]
        total = n + leading_axes
        aff = np.eye(total + 1)
        aff[leading_axes:total, leading_axes:total] = spatial
        aff[leading_axes:total, total] = translate
        return aff

    def index_to_world(self, index_zyx: Any) -> np.ndarray:
        """World point(s) (z, y, x) in mm of napari index/indices (…, ndim) given as (z, y, x)."""
        idx = np.asarray(index_zyx, dtype=float)[..., ::-1]
        m = self.index_to_physical_matrix()
        n = self.ndim
        pts = idx @ m[:n, :n].T + m[:n, n]
        return pts[..., ::-1]

    def world_to_index(self, world_zyx: Any) -> np.ndarray:
        """Continuous napari index (z, y, x) of world point(s) (z, y, x) in mm."""
        p = np.asarray(world_zyx, dtype=float)[..., ::-1]
        m = self.index_to_physical_matrix()
        n = self.ndim
        idx = np.linalg.solve(m[:n, :n], (p - m[:n, n]).T).T
        return idx[..., ::-1]

    @property
    def spacing_zyx(self) -> tuple[float, ...]:
        """Voxel spacing in napari axis order, mm."""
        return tuple(reversed(self.spacing))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel (area of one pixel in 2D), mm³ (mm²)."""
        return float(abs(np.linalg.det(self.index_to_physical_matrix()[: self.ndim, : self.ndim])))

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-friendly form (ITK order, as SimpleITK reports; ``slice_step`` only if set)."""
        d = {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }
        if self.slice_step is not None:
            d["slice_step"] = list(self.slice_step)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Geometry:
        """Inverse of :meth:`to_dict`."""
        step = d.get("slice_step")
        return cls(
            tuple(d["spacing"]),
            tuple(d["origin"]),
            tuple(d["direction"]),
            tuple(float(v) for v in step) if step is not None else None,
        )

    def close_to(self, other: Geometry, atol_mm: float = 1e-4) -> bool:
        """True when both grids place every voxel within ``atol_mm`` (for equal shapes)."""
        if self.ndim != other.ndim:
            return False
        return bool(
            np.allclose(self.spacing, other.spacing, atol=atol_mm)
            and np.allclose(self.origin, other.origin, atol=atol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
            and np.allclose(
                self.index_to_physical_matrix(), other.index_to_physical_matrix(), atol=atol_mm
            )
        )
