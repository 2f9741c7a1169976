"""Sample images generated in code (nothing downloaded): CT, mammogram, fundus, pathology slide.

Every generator is deterministic for a given ``seed``. The CT phantom's organ label values are
fixed (1 liver, 2 spleen, 3 right kidney, 4 left kidney, 5 aorta, 6 lesion) because the abdominal
CT schema uses them; :func:`ct_phantom_truth` returns the labels on the phantom's grid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from scipy import ndimage

from napari_clinlabel.core.image import _slide_synth
from napari_clinlabel.core.image._slide_synth import render_slide_region
from napari_clinlabel.core.image.geometry import Geometry
from napari_clinlabel.core.image.volume import Volume

# label values of the abdominal CT schema
LIVER, SPLEEN, KIDNEY_R, KIDNEY_L, AORTA, LESION = 1, 2, 3, 4, 5, 6
CT_LABELS = {
    LIVER: "liver",
    SPLEEN: "spleen",
    KIDNEY_R: "right kidney",
    KIDNEY_L: "left kidney",
    AORTA: "aorta",
    LESION: "lesion",
}

_CT_SPACING = (0.8, 0.8, 2.5)  # ITK order (x, y, z), mm
_CT_ORIGIN = (-200.0, -180.0, -300.0)
_UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, used for synthetic UIDs


def _uid(*parts: object) -> str:
    """A deterministic UID for synthetic data (same inputs, same UID)."""
    return generate_uid(prefix=_UID_PREFIX, entropy_srcs=["napari-clinlabel", *map(str, parts)])


def _rotation(deg_z: float, deg_x: float) -> np.ndarray:
    """Rotation about z by ``deg_z`` then about x by ``deg_x`` (3×3, LPS)."""
    a, b = np.deg2rad(deg_z), np.deg2rad(deg_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def _ct_geometry(oblique: bool) -> Geometry:
    direction = _rotation(15.0, 10.0) if oblique else np.eye(3)
    return Geometry(_CT_SPACING, _CT_ORIGIN, tuple(float(v) for v in direction.ravel()))


def ct_phantom_truth(
    oblique: bool = False, shape: tuple[int, int, int] = (48, 160, 160), seed: int = 0
) -> tuple[Volume, np.ndarray]:
    """CT-like abdominal phantom (int16 HU, (z, y, x)) and its uint8 organ labels on the same grid.

    Organs are placed in voxel-relative millimetres around the grid centre, so the labels are the
    same for the plain and the oblique variant (only the direction cosines differ).
    """
    nz, ny, nx = shape
    sx, sy, sz = _CT_SPACING
    # millimetres from the grid centre, LPS-like: x to patient left, y posterior, z superior
    z = ((np.arange(nz, dtype=np.float32) - (nz - 1) / 2) * sz)[:, None, None]
    y = ((np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * sy)[None, :, None]
    x = ((np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * sx)[None, None, :]
    half_x, half_y = nx * sx / 2, ny * sy / 2  # field of view half-widths, mm
    # scale anatomy to the field of view (the default grid is 128 mm wide)
    kx, ky, kz = half_x / 64.0, half_y / 64.0, max(nz * sz / 120.0, 0.25)

    def ell(cx: float, cy: float, cz: float, rx: float, ry: float, rz: float) -> np.ndarray:
        return (
            ((x - cx * kx) / (rx * kx)) ** 2
            + ((y - cy * ky) / (ry * ky)) ** 2
            + ((z - cz * kz) / (rz * kz)) ** 2
        ) <= 1.0

    def cyl(cx: float, cy: float, r: float) -> np.ndarray:
        return (((x - cx * kx) / (r * kx)) ** 2 + ((y - cy * ky) / (r * ky)) ** 2) <= 1.0

    hu = np.full(shape, -1000.0, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    body = np.broadcast_to(((x / (60 * kx)) ** 2 + (y / (46 * ky)) ** 2) <= 1.0, shape)
    inner = np.broadcast_to(((x / (55 * kx)) ** 2 + (y / (41 * ky)) ** 2) <= 1.0, shape)
    hu[body] = -100.0  # subcutaneous fat
    hu[inner] = 40.0  # muscle / soft tissue
    visceral_fat = ell(0, -5, 0, 40, 26, 200) & inner
    hu[visceral_fat] = -90.0

    organs = [
        (LIVER, 60.0, ell(-20, -4, 10, 26, 24, 55)),
        (SPLEEN, 50.0, ell(30, 14, 20, 11, 15, 30)),
        (KIDNEY_R, 150.0, ell(-20, 24, -8, 8, 11, 26)),
        (KIDNEY_L, 150.0, ell(21, 24, -12, 8, 11, 26)),
        (AORTA, 200.0, np.broadcast_to(cyl(4, 14, 5.5), shape)),
    ]
    for value, density, mask in organs:
        m = np.broadcast_to(mask, shape) & inner
        hu[m] = density
        labels[m] = value
    # spine: vertebral body and posterior elements, bone ≈ 700 HU
    spine = np.broadcast_to(cyl(0, 30, 8.5) | ell(0, 40, 0, 3, 6, 500), shape)
    hu[spine] = 700.0
    labels[spine & (labels != AORTA)] = 0

    # hypodense lesions (≈20 HU): (centre in mm, diameter in mm, organ)
    lesions = [
        ((-26.0, -10.0, 14.0), 20.0, LIVER),
        ((-10.0, 8.0, 24.0), 14.0, LIVER),
        ((-30.0, 6.0, -12.0), 10.0, LIVER),
        ((-14.0, -18.0, 0.0), 8.0, LIVER),
        ((-34.0, -4.0, 34.0), 6.0, LIVER),
        ((30.0, 14.0, 20.0), 8.0, SPLEEN),
    ]
    rng = np.random.default_rng(seed)
    for (cx, cy, cz), diam, organ in lesions:
        r = diam / 2.0
        m = (
            ((x - cx * kx) / r) ** 2 + ((y - cy * ky) / r) ** 2 + ((z - cz * kz) / max(r, sz)) ** 2
        ) <= 1.0
        m = m & (labels == organ)
        hu[m] = 20.0 + float(rng.normal(0, 3))
        labels[m] = LESION

    hu += rng.normal(0.0, 12.0, size=shape).astype(np.float32)
    array = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    meta = {
        "modality": "CT",
        "series_description": "Phantom CT" + (" oblique" if oblique else ""),
        "study_uid": _uid("ct-study", seed),
        "series_uid": _uid("ct-series", oblique, shape, seed),
        "frame_of_reference_uid": _uid("ct-for", oblique, seed),
        "window": [40.0, 400.0],
        "sample": "ct_oblique" if oblique else "ct",
    }
    return Volume(array, _ct_geometry(oblique), meta), labels


def ct_phantom(
    oblique: bool = False, shape: tuple[int, int, int] = (48, 160, 160), seed: int = 0
) -> Volume:
    """CT-like abdominal phantom, int16 HU, spacing (0.8, 0.8, 2.5) mm; ``oblique`` rotates it."""
    return ct_phantom_truth(oblique, shape, seed)[0]


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: random values on a coarse grid, smoothed and upsampled."""
    coarse = rng.random((shape[0] // scale + 2, shape[1] // scale + 2))
    coarse = ndimage.gaussian_filter(coarse, 1.0)
    full = ndimage.zoom(coarse, scale, order=1)[: shape[0], : shape[1]]
    lo, hi = full.min(), full.max()
    return (full - lo) / max(hi - lo, 1e-9)


def mammogram_phantom(seed: int = 0) -> Volume:
    """2D MG-like uint16 image (0.1 mm pixels): breast, fibroglandular texture, spiculated mass, calcs."""
    rng = np.random.default_rng(seed)
    h, w = 1400, 1000
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # breast: half-ellipse against the chest wall at x = 0
    cy, ry, rx = h / 2, h * 0.44, w * 0.82
    r = np.sqrt(((yy - cy) / ry) ** 2 + (xx / rx) ** 2)
    breast = r <= 1.0
    img = np.full((h, w), 60.0, dtype=np.float32)
    thickness = np.clip(1.0 - r, 0, 1) ** 0.35  # compressed breast thins towards the skin line
    fibro = _smooth_noise(rng, (h, w), 40) * 0.6 + _smooth_noise(rng, (h, w), 12) * 0.4
    gland = np.clip((fibro - 0.45) * 3.0, 0, 1) * np.clip(1.2 - r, 0, 1)
    img[breast] = (900 + 900 * thickness + 1300 * gland)[breast]
    # spiculated mass: dense core plus radial spicules
    my, mx, mr = h * 0.45, w * 0.45, 45.0
    d = np.hypot(yy - my, xx - mx)
    theta = np.arctan2(yy - my, xx - mx)
    core = d <= mr * (1 + 0.15 * np.sin(5 * theta + 1.0))
    spic = np.zeros((h, w), dtype=bool)
    for ang in rng.uniform(0, 2 * np.pi, 14):
        length = rng.uniform(1.8, 3.2) * mr
        along = (xx - mx) * np.cos(ang) + (yy - my) * np.sin(ang)
        across = -(xx - mx) * np.sin(ang) + (yy - my) * np.cos(ang)
        spic |= (along > 0) & (along < length) & (np.abs(across) < 3.0 * (1 - along / length) + 0.6)
    img[core] += 1100
    img[spic & ~core] += 600
    # cluster of microcalcifications (≈ 0.2–0.5 mm bright specks)
    for _ in range(12):
        cy2, cx2 = h * 0.62 + rng.normal(0, 25), w * 0.3 + rng.normal(0, 25)
        rad = rng.uniform(1.0, 2.5)
        img[np.hypot(yy - cy2, xx - cx2) <= rad] = 3800
    img += rng.normal(0, 25, size=(h, w)).astype(np.float32)
    array = np.clip(img, 0, 4095).astype(np.uint16)
    meta = {
        "modality": "MG",
        "series_description": "Phantom mammogram",
        "series_uid": _uid("mg-series", seed),
        "window": [2048.0, 4096.0],
        "sample": "mammogram",
        "laterality": "L",  # as write_mammogram_dicom's ImageLaterality / ViewPosition say
        "view_position": "CC",
    }
    return Volume(array, Geometry((0.1, 0.1), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0)), meta)


def write_mammogram_dicom(path: str | Path, seed: int = 0) -> Path:
    """The phantom mammogram as a clinic sends it: one DICOM MG image (Digital Mammography, For
    Presentation) with its 0.1 mm imager pixel spacing, left CC view, window, and no patient
    identifiers. Written atomically."""
    vol = mammogram_phantom(seed)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography, for pres.
    meta.MediaStorageSOPInstanceUID = _uid("mg-instance", seed)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = Path(path)
    ds = FileDataset(str(path), Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.Modality = "MG"  # no series description: free text, which a PHI scan rightly flags
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid("mg-study", seed), vol.meta["series_uid"]
    ds.PatientName, ds.PatientID = "", ""  # type 2: present and empty (a phantom has no patient)
    ds.ImageLaterality, ds.ViewPosition, ds.PresentationIntentType = "L", "CC", "FOR PRESENTATION"
    ds.ImagerPixelSpacing = [float(v) for v in reversed(vol.geometry.spacing)]  # row, column
    ds.WindowCenter, ds.WindowWidth = vol.meta["window"]
    rows, cols = vol.array.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = (
        1,
        "MONOCHROME2",
        rows,
        cols,
    )
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.ascontiguousarray(vol.array, dtype=np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    ds.save_as(tmp, enforce_file_format=True)
    tmp.replace(path)
    return path


def _stamp_path(mask: np.ndarray, pts: np.ndarray, radii: np.ndarray) -> None:
    """Draw a thick polyline into ``mask`` by stamping discs of the given radii at ``pts``."""
    h, w = mask.shape
    for (py, px), rad in zip(pts, radii, strict=True):
        r = int(np.ceil(rad))
        y0, y1 = max(int(py) - r, 0), min(int(py) + r + 1, h)
        x0, x1 = max(int(px) - r, 0), min(int(px) + r + 1, w)
        if y0 >= y1 or x0 >= x1:
            continue
        gy, gx = np.ogrid[y0:y1, x0:x1]
        mask[y0:y1, x0:x1] |= (gy - py) ** 2 + (gx - px) ** 2 <= rad**2


def fundus_phantom(seed: int = 0) -> Volume:
    """RGB uint8 fundus-like photo (768×768): disc, vessels, macula, red dots and exudates."""
    rng = np.random.default_rng(seed)
    n = 768
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    c = (n - 1) / 2
    rr = np.hypot(yy - c, xx - c) / (n * 0.47)
    fov = rr <= 1.0
    shade = np.clip(1.0 - 0.55 * rr**3, 0, 1)  # dark border (vignetting)
    tex = _smooth_noise(rng, (n, n), 24)
    rgb = np.zeros((n, n, 3), dtype=np.float32)
    rgb[..., 0] = (205 + 30 * tex) * shade
    rgb[..., 1] = (95 + 20 * tex) * shade
    rgb[..., 2] = (40 + 10 * tex) * shade
    # macula: darker, redder area two and a half disc diameters temporal to the disc
    disc_y, disc_x, disc_r = c - 10, c + 175, 46.0
    mac_y, mac_x = c + 5, c - 55
    mac = np.exp(-(((yy - mac_y) ** 2 + (xx - mac_x) ** 2) / (2 * 45.0**2)))
    rgb[..., 0] -= 60 * mac
    rgb[..., 1] -= 45 * mac
    rgb[..., 2] -= 20 * mac
    # vessels arcading from the disc
    vessels = np.zeros((n, n), dtype=bool)
    for k, (ang0, bend) in enumerate(
        [
            (2.5, 0.9),
            (3.8, -0.9),
            (2.2, 0.5),
            (4.1, -0.5),
            (1.4, 0.3),
            (4.9, -0.3),
            (0.3, 0.2),
            (5.9, -0.2),
        ]
    ):
        t = np.linspace(0, 1, 420)
        ang = ang0 + bend * t + 0.08 * np.sin(7 * t + k)
        rad_len = disc_r * 0.6 + t * (330 - 60 * (k % 3))
        py = disc_y + rad_len * np.sin(ang)
        px = disc_x + rad_len * np.cos(ang)
        width = (5.5 if k < 4 else 3.5) * (1.0 - 0.6 * t)
        _stamp_path(vessels, np.stack([py, px], 1), width)
    vessels &= fov
    vsoft = ndimage.gaussian_filter(vessels.astype(np.float32), 1.0)
    rgb[..., 0] -= 90 * vsoft
    rgb[..., 1] -= 55 * vsoft
    rgb[..., 2] -= 15 * vsoft
    # optic disc: bright yellow-white with a paler cup
    d = np.hypot(yy - disc_y, xx - disc_x)
    disc = np.clip((disc_r - d) / 4.0, 0, 1)
    cup = np.clip((disc_r * 0.45 - d) / 6.0, 0, 1)
    rgb[..., 0] += (250 - rgb[..., 0]) * disc
    rgb[..., 1] += (200 - rgb[..., 1]) * disc * 0.9 + 40 * cup
    rgb[..., 2] += (120 - rgb[..., 2]) * disc * 0.8 + 60 * cup
    # microaneurysms / haemorrhages (dark red dots) and hard exudates (yellow)
    for _ in range(9):
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(60, 220)
        py, px, rad = mac_y + dist * np.sin(ang), mac_x + dist * np.cos(ang), rng.uniform(2.0, 6.0)
        m = np.hypot(yy - py, xx - px) <= rad
        rgb[m] = (120, 20, 15)
    for _ in range(7):
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(40, 120)
        py, px, rad = mac_y + dist * np.sin(ang), mac_x + dist * np.cos(ang), rng.uniform(2.5, 7.0)
        m = np.hypot(yy - py, xx - px) <= rad
        rgb[m] = (235, 215, 90)
    rgb += rng.normal(0, 3, size=rgb.shape).astype(np.float32)
    rgb[~fov] = 0
    array = np.clip(rgb, 0, 255).astype(np.uint8)
    meta = {
        "modality": "OP",
        "series_description": "Phantom fundus photograph",
        "series_uid": _uid("op-series", seed),
        "rgb": True,
        "sample": "fundus",
    }
    return Volume(array, Geometry((0.015, 0.015), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0)), meta)


# ---------------------------------------------------------------- pathology slide
# The slide is procedural: every pixel is a function of its global position and the seed, so any
# region (a tile, a downsampled level) can be rendered on its own without the rest of the image.


def pathology_slide(shape: tuple[int, int] = (4096, 4096), seed: int = 0) -> Volume:
    """RGB uint8 H&E-like slide; gland regularity varies across regions so tiles differ in grade."""
    array = render_slide_region(0, 0, shape[0], shape[1], shape, seed)
    return Volume(array, _slide_geometry(1), _slide_meta(seed))


def _slide_geometry(downsample: int) -> Geometry:
    s = 0.25 * downsample  # 0.25 µm/px at 40× → mm
    return Geometry((s / 1000.0, s / 1000.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))


def _slide_meta(seed: int) -> dict:
    return {
        "modality": "SM",
        "series_description": "Phantom H&E slide",
        "series_uid": _uid("sm-series", seed),
        "rgb": True,
        "sample": "slide",
    }


def write_slide_tiff(
    path: str | Path,
    shape: tuple[int, int] = (4096, 4096),
    tile: int = 256,
    levels: int = 4,
    seed: int = 0,
) -> Path:
    """Write the slide as a tiled pyramidal RGB TIFF (levels as SubIFDs), tile by tile.

    Level ``k`` is rendered directly at 1/2**k resolution, so memory stays at a few tiles.
    """
    path = Path(path)
    h, w = shape
    res = 1e4 / 0.25  # pixels per cm at 0.25 µm/px

    def tiles(level: int):
        f = 2**level
        lh, lw = -(-h // f), -(-w // f)
        for ty in range(0, lh, tile):
            for tx in range(0, lw, tile):
                block = render_slide_region(ty, tx, tile, tile, shape, seed, downsample=f)
                yield block

    tmp = path.with_name(path.name + ".tmp")
    with tifffile.TiffWriter(tmp, bigtiff=h * w * 3 > 2**31) as tw:
        for level in range(levels):
            f = 2**level
            lh, lw = -(-h // f), -(-w // f)
            tw.write(
                tiles(level),
                shape=(lh, lw, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                photometric="rgb",
                compression="zlib",
                subifds=levels - 1 if level == 0 else None,
                subfiletype=1 if level else 0,
                resolution=(res / f, res / f),
                resolutionunit="CENTIMETER",
                metadata=None,
            )
    tmp.replace(path)
    return path


class SlideLevel:
    """One pyramid level of the procedural slide (1/``downsample`` scale), rendered on demand.

    An array-like (``shape``, ``dtype``, ``ndim``, ``__getitem__``) as napari's multiscale image
    wants: indexing renders only the region asked for; nothing is computed when it is made.
    ``rendered_pixels`` counts the level pixels rendered so far (what opening must keep small).
    """

    def __init__(self, shape: tuple[int, int], seed: int, downsample: int) -> None:
        self.full_shape, self.seed, self.downsample = tuple(shape), seed, int(downsample)
        f = self.downsample
        self.shape = (-(-shape[0] // f), -(-shape[1] // f), 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 3
        self.rendered_pixels = 0

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape))

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            i = next(i for i, k in enumerate(key) if k is Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        spans, picks = [], []
        for axis in (0, 1):
            k, n = key[axis], self.shape[axis]
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step <= 0:
                    raise IndexError("SlideLevel supports positive steps only")
                stop = max(stop, start)
                spans.append((start, stop))
                picks.append(slice(None, None, step))
            else:
                i = int(k) + (n if int(k) < 0 else 0)
                if not 0 <= i < n:
                    raise IndexError(f"index {k} out of range for axis {axis} of size {n}")
                spans.append((i, i + 1))
                picks.append(0)
        (y0, y1), (x0, x1) = spans
        if y1 <= y0 or x1 <= x0:
            block = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
        else:
            block = render_slide_region(
                y0, x0, y1 - y0, x1 - x0, self.full_shape, self.seed, self.downsample
            )
            self.rendered_pixels += (y1 - y0) * (x1 - x0)
        return block[picks[0], picks[1]][..., key[2]]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        a = self[...]
        return a.astype(dtype) if dtype is not None else a


def lazy_pathology_slide(
    shape: tuple[int, int] = (4096, 4096), seed: int = 0, levels: int = 4
) -> Volume:
    """The H&E-like slide as a multiscale Volume of :class:`SlideLevel` (full size first, each
    next level half as big); nothing is rendered until a region is asked for.

    Its digest cannot be of the voxels without rendering them all, so ``meta["sha256"]`` is the
    sha256 of the recipe (generator, shape, seed) and of the generator's source, which fixes
    every voxel; ``meta["sha256_kind"]`` says ``"recipe"``.
    """
    pyramid = [SlideLevel(shape, seed, 2**k) for k in range(levels)]
    recipe = json.dumps({"generator": "napari-clinlabel phantom H&E slide",
                         "shape": list(shape), "seed": seed}, sort_keys=True)  # fmt: skip
    digest = hashlib.sha256(recipe.encode() + Path(_slide_synth.__file__).read_bytes())
    meta = {**_slide_meta(seed), "sha256": digest.hexdigest(), "sha256_kind": "recipe"}
    meta["level_downsamples"] = [float(lv.downsample) for lv in pyramid]
    return Volume(pyramid, _slide_geometry(1), meta)


def _slide_sample() -> Volume:
    return lazy_pathology_slide()


SAMPLES: dict[str, Callable[[], Volume]] = {
    "ct": lambda: ct_phantom(),
    "ct_oblique": lambda: ct_phantom(oblique=True),
    "mammogram": lambda: mammogram_phantom(),
    "fundus": lambda: fundus_phantom(),
    "slide": _slide_sample,
}
