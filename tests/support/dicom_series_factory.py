"""Synthetic DICOM writers for tests and benchmarks (pydicom), with the truth they encode.

Every writer returns what a correct reader must produce: the voxels after rescale in napari
order and the geometry in ITK order, computed here from the writer's own inputs. Patient
attributes are filled with obvious fake PHI so tests can check it never leaks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from napari_clinlabel.core.image.geometry import Geometry

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
FAKE_PHI = {
    "PatientName": "Leak^Should^Never",
    "PatientID": "PHI-ID-0042",
    "PatientBirthDate": "19700101",
}


@dataclass
class WrittenSeries:
    """Files written and the truth a correct reader must return."""

    files: list[Path]
    array: np.ndarray  # napari order (z, y, x) or (t, z, y, x), values after rescale
    geometry: Geometry
    series_uid: str
    meta: dict = field(default_factory=dict)


def _uid(rng: random.Random) -> str:
    return generate_uid(entropy_srcs=[str(rng.random())])


def _base_dataset(sop_class: str, sop_uid: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["clinlabel-test-factory"])
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    for k, v in FAKE_PHI.items():
        setattr(ds, k, v)
    ds.StudyDate = "20260101"
    return ds


def _set_pixels(ds: Dataset, stored: np.ndarray, bits_stored: int = 16) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def _fmt(values) -> list[str]:
    return [f"{float(v):.6f}" for v in values]


def write_series(
    folder: str | Path,
    stored: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (0.7, 0.7, 2.0),
    origin: tuple[float, float, float] = (-120.0, -110.0, -50.0),
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    offsets_mm: list[float] | None = None,
    stack_vector: tuple[float, float, float] | None = None,
    gantry_tilt_deg: float | None = None,
    shuffle: bool = True,
    reverse_instance: bool = True,
    rescale: tuple[float, float] = (1.0, -1024.0),
    modality: str = "CT",
    description: str = "Synthetic CT",
    series_uid: str | None = None,
    temporal: str = "acquisition",
    name_prefix: str = "IMG",
    seed: int = 0,
    window: tuple[float, float] | None = (40.0, 400.0),
    bits_stored: int = 16,
) -> WrittenSeries:
    """Write a single-frame series of ``stored`` ((z, y, x) or (t, z, y, x) stored values).

    Slice ``k`` sits at ``origin + offsets_mm[k] * stack_vector`` (default: k * spacing[2] along
    the IOP normal). File names are shuffled and instance numbers run against position when asked.
    For 4D input, each volume repeats the same positions; ``temporal`` names the tag telling the
    volumes apart ("acquisition": AcquisitionNumber, "temporal": TemporalPositionIdentifier,
    "instance": instance numbers only). ``bits_stored`` 12 is what most CT scanners write.
    """
    rng = random.Random(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vols = stored if stored.ndim == 4 else stored[None]
    nt, nz = vols.shape[:2]
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    stack = normal if stack_vector is None else np.asarray(stack_vector, float)
    offsets = [k * spacing[2] for k in range(nz)] if offsets_mm is None else list(offsets_mm)
    positions = [np.asarray(origin, float) + o * stack for o in offsets]
    study, series, frame = _uid(rng), series_uid or _uid(rng), _uid(rng)
    slope, intercept = rescale
    sop = MR_STORAGE if modality == "MR" else CT_STORAGE
    files: list[Path] = []
    order = list(range(nt * nz))
    names = [f"{name_prefix}{i:05d}.dcm" for i in order]
    if shuffle:
        rng.shuffle(names)
    for t in range(nt):
        for k in range(nz):
            n = t * nz + k
            ds = _base_dataset(sop, _uid(rng))
            ds.Modality = modality
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.SeriesDescription = description
            ds.SeriesNumber = 3
            inst = (nt * nz - n) if reverse_instance else (n + 1)
            ds.InstanceNumber = inst
            if nt > 1 and temporal == "acquisition":
                ds.AcquisitionNumber = t + 1
            elif nt > 1 and temporal == "temporal":
                ds.TemporalPositionIdentifier = t + 1
                ds.NumberOfTemporalPositions = nt
            if nt > 1 and temporal == "instance":
                ds.InstanceNumber = n + 1  # time order recoverable only from instance numbers
            ds.ImagePositionPatient = _fmt(positions[k])
            ds.ImageOrientationPatient = _fmt(iop)
            ds.PixelSpacing = _fmt((spacing[1], spacing[0]))  # DICOM: row spacing (y), column (x)
            ds.SliceThickness = f"{spacing[2]:.4f}"
            if gantry_tilt_deg is not None:
                ds.GantryDetectorTilt = f"{gantry_tilt_deg:.3f}"
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
            if window:
                ds.WindowCenter, ds.WindowWidth = f"{window[0]:g}", f"{window[1]:g}"
            _set_pixels(ds, vols[t, k], bits_stored)
            path = folder / names[n]
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    truth = vols.astype(np.float64) * slope + intercept
    truth = truth if stored.ndim == 4 else truth[0]
    order_idx = np.argsort(offsets)
    truth = truth[..., order_idx, :, :]
    first = positions[order_idx[0]]
    direction = np.stack([row, col, normal], axis=1)
    sz = abs(offsets[order_idx[1]] - offsets[order_idx[0]]) if nz > 1 else spacing[2]
    geometry = Geometry(
        (float(spacing[0]), float(spacing[1]), float(sz)),
        tuple(float(v) for v in first),
        tuple(float(v) for v in direction.ravel()),
    )
    return WrittenSeries(files, truth, geometry, series, {"study_uid": study, "frame_uid": frame})


def phantom_stored(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Stored int16 values with structure along every axis (so a flip or shuffle shows)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    v = sum((i + 1) * 7 * g for i, g in enumerate(grids)) + rng.integers(0, 5, size=shape)
    return (v % 3000).astype(np.int16)


def write_enhanced_ct(
    path: str | Path,
    stored: np.ndarray,
    *,
    spacing: tuple[float, float, float] = (0.6, 0.6, 1.5),
    origin: tuple[float, float, float] = (-80.0, -70.0, 20.0),
    iop: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 0.9659258, -0.2588190),
    rescale: tuple[float, float] = (1.0, -1024.0),
    shuffle_frames: bool = True,
    seed: int = 0,
) -> WrittenSeries:
    """One Enhanced CT file: frames in shuffled order, positions in per-frame functional groups."""
    rng = random.Random(seed)
    nz = stored.shape[0]
    row, col = np.array(iop[:3], float), np.array(iop[3:], float)
    normal = np.cross(row, col)
    positions = [np.asarray(origin) + k * spacing[2] * normal for k in range(nz)]
    order = list(range(nz))
    if shuffle_frames:
        rng.shuffle(order)
    ds = _base_dataset(ENHANCED_CT_STORAGE, _uid(rng))
    ds.Modality = "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
        _uid(rng),
        _uid(rng),
        _uid(rng),
    )
    ds.SeriesDescription = "Synthetic enhanced CT"
    ds.InstanceNumber = 1
    ds.NumberOfFrames = nz
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = _fmt((spacing[1], spacing[0]))
    pm.SliceThickness = f"{spacing[2]:.4f}"
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = _fmt(iop)
    shared.PlaneOrientationSequence = Sequence([po])
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = (
        f"{rescale[0]:g}",
        f"{rescale[1]:g}",
        "HU",
    )
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for k in order:
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = _fmt(positions[k])
        fg.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.InStackPositionNumber = k + 1
        fg.FrameContentSequence = Sequence([fc])
        per_frame.append(fg)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _set_pixels(ds, stored[order])
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    geometry = Geometry(
        (float(spacing[0]), float(spacing[1]), float(spacing[2])),
        tuple(float(v) for v in positions[0]),
        tuple(float(v) for v in np.stack([row, col, normal], axis=1).ravel()),
    )
    truth = stored.astype(np.float64) * rescale[0] + rescale[1]
    return WrittenSeries([path], truth, geometry, str(ds.SeriesInstanceUID))
