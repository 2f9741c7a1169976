"""PACS pull and DICOM SR export.

``pacs_pull``: a 300-slice 512×512 CT series in a local Orthanc (started here on loopback, as the
tests do); ours = ``core.pacs.pull_series_volumes`` of the series into an empty folder (QIDO
listing, streamed WADO with the parts written as received, each instance renamed into place,
the series made durable once, every instance checked) and the volume opened from the bytes in
memory (header validation, pixels, voxel digest); the anchor = dicomweb-client's plain
``retrieve_series`` into memory from the same server. Alternating runs, best of 3 (the machine is
shared: minima are the stable figure); the medians are reported too.

``sr_export``: ``build_sr`` + file bytes for 100 lesion boxes (half planar, half over 3 slices)
and a grade on a 20-slice series; median of 5 (quick: 3), in ms; anchor: bare highdicom building
and writing the same 100 groups as its documentation shows, alternating in the same process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _support(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "support" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while it loads
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def served_ct(tmp: Path, nz: int) -> Iterator[tuple[Any, Any, Any]]:
    """A test Orthanc (under ``tmp``) holding one random nz×512×512 12-bit CT series:
    (server, the written series, a connection); the server is stopped afterwards."""
    from napari_clinlabel.core.pacs import push

    orthanc = _support("orthanc")
    proc, server = orthanc.start_orthanc(tmp / "orthanc")
    try:
        stored = np.random.default_rng(0).integers(0, 2000, size=(nz, 512, 512), dtype=np.int16)
        s = _support("dicom_series_factory").write_series(
            tmp / "src", stored, spacing=(0.7, 0.7, 1.0), bits_stored=12
        )
        conn = server.connection()
        push(conn, [tmp / "src"])
        yield server, s, conn
    finally:
        orthanc.stop_orthanc(proc)


def bench_pacs_pull(quick: bool) -> dict:
    """300 slices of 512×512 int16 (quick: 40)."""
    from napari_clinlabel.core.pacs import pull_series_volumes
    from napari_clinlabel.core.pacs.client import connect

    nz = 40 if quick else 300
    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-bench-pacs-"))
    try:
        with served_ct(tmp, nz) as (_server, s, conn):
            study = s.meta["study_uid"]
            client = connect(conn)
            ours, anchor = [], []
            for i in range(3):
                dest = tmp / f"pull{i}"
                t = time.perf_counter()
                (vol,) = pull_series_volumes(conn, dest, s.series_uid)
                ours.append(time.perf_counter() - t)
                assert len(list(dest.joinpath(s.series_uid).glob("*.dcm"))) == nz
                assert np.array_equal(vol.array, s.array)
                t = time.perf_counter()
                got = client.retrieve_series(study, s.series_uid)
                anchor.append(time.perf_counter() - t)
                assert len(got) == nz
                shutil.rmtree(dest)
            return {
                "ours_s": min(ours),
                "anchor_s": min(anchor),
                "ratio": min(ours) / min(anchor),
                "median_ratio": statistics.median(ours) / statistics.median(anchor),
                "budget": 1.2,
                "slices": nz,
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _bare_highdicom_sr(observed, by_k, geometry) -> bytes:
    """The anchor: highdicom used as its documentation shows, same groups and content as
    ``build_sr`` (a fresh ImageRegion per slice, pydicom Codes, ``Comprehensive3DSR`` with
    its own copy/parse/evidence check), written with pydicom."""
    import io

    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    from napari_clinlabel.core.annotate.boxes import box_size_mm, box_volume_ml

    mm, ml = Code("mm", "UCUM", "millimeter"), Code("ml", "UCUM", "milliliter")
    groups = []
    for o in observed:
        b = o.item
        if not hasattr(b, "zyx_min"):
            continue
        a, z = b.slice_range
        y0, x0 = b.zyx_min[-2] + 0.5, b.zyx_min[-1] + 0.5
        y1, x1 = b.zyx_max[-2] + 0.5, b.zyx_max[-1] + 0.5
        rect = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]])
        regions = [hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                                     graphic_data=rect,
                                     source_image=hd.sr.SourceImageForRegion(
                                         str(by_k[k].SOPClassUID), str(by_k[k].SOPInstanceUID)))
                   for k in range(a, z + 1)]  # fmt: skip
        size = box_size_mm(b, geometry)
        ms = [hd.sr.Measurement(name=codes.SCT.Width, value=size[-1], unit=mm),
              hd.sr.Measurement(name=codes.DCM.Height, value=size[-2], unit=mm)]  # fmt: skip
        evals = [hd.sr.QualitativeEvaluation(Code("lesion-class", "99CLINLABEL", "Lesion class"),
                                             codes.SCT.Benign),
                 hd.sr.QualitativeEvaluation(Code("confidence", "99CLINLABEL", "Confidence"),
                                             Code("confidence-3", "99CLINLABEL", "Confidence 3"))]  # fmt: skip
        common = dict(tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(),
                                                                   identifier=f"box {b.id}"),
                      finding_type=codes.SCT.Mass, qualitative_evaluations=evals)  # fmt: skip
        if z > a:
            ms += [hd.sr.Measurement(name=codes.SCT.Depth, value=size[0], unit=mm),
                   hd.sr.Measurement(name=codes.SCT.Volume, value=box_volume_ml(b, geometry),
                                     unit=ml)]  # fmt: skip
            groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                referenced_regions=regions, measurements=ms, **common))  # fmt: skip
        else:
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                referenced_region=regions[0], measurements=ms, **common))  # fmt: skip
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name="Reader^Ann"))),
        procedure_reported=Code("363679005", "SCT", "Imaging procedure"),
        imaging_measurements=groups)  # fmt: skip
    sr = hd.sr.Comprehensive3DSR(evidence=by_k, content=report, series_instance_uid=hd.UID(),
                                 series_number=901, sop_instance_uid=hd.UID(), instance_number=1,
                                 manufacturer="bench", is_complete=True)  # fmt: skip
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def bench_sr_export(quick: bool) -> dict:
    """100 boxes (quick: 100 too; it is small) → DICOM SR bytes; ours vs bare highdicom."""
    import os

    from napari_clinlabel.core.annotate.boxes import LesionBox, with_slices
    from napari_clinlabel.core.annotate.grading import Grade
    from napari_clinlabel.core.export.seg import (
        order_by_grid,
        prepare_sources,
        source_series_datasets,
    )
    from napari_clinlabel.core.export.sr import Observed, build_sr, sr_bytes
    from napari_clinlabel.core.image.io import read_volumes

    tmp = Path(tempfile.mkdtemp(prefix="clinlabel-bench-sr-"))
    try:
        s = _support("dicom_series_factory").write_series(
            tmp / "ct", np.zeros((20, 64, 64), np.int16)
        )
        vol = read_volumes(tmp / "ct")[0]
        rng = np.random.default_rng(0)
        observed = []
        for i in range(100):
            y, x = rng.integers(0, 50, 2)
            b = LesionBox((i % 20, y, x), (i % 20, y + 8, x + 10), "benign", 3,
                          {"finding": "mass"}, f"b{i}", created_by="ann")  # fmt: skip
            if i % 2:
                b = with_slices(b, i % 18, i % 18 + 2)
            observed.append(Observed(b, "ann", None))
        observed.append(Observed(Grade("assessment", "image", "2", "Benign", "ann", "t", 1),
                                 "ann", None))  # fmt: skip
        times, anchor, cpu = [], [], []
        for _ in range(3 if quick else 5):  # alternating, same process
            src = source_series_datasets(tmp / "ct", s.series_uid)
            t, c = time.perf_counter(), time.process_time()
            data = sr_bytes(build_sr(observed, vol.geometry, vol.spatial_shape, src,
                                     {"ann": "Ann Reader"}))  # fmt: skip
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)  # CPU time: less skewed by a loaded machine
            assert len(data) > 1000
            src = prepare_sources(order_by_grid(source_series_datasets(tmp / "ct", s.series_uid),
                                                vol.geometry, vol.spatial_shape))  # fmt: skip
            t = time.perf_counter()
            bare = _bare_highdicom_sr(observed, src, vol.geometry)
            anchor.append(time.perf_counter() - t)
            assert len(bare) > 1000
        return {"value_ms": 1000 * statistics.median(times), "budget_ms": 2000, "boxes": 100,
                "cpu_ms": 1000 * statistics.median(cpu),
                "anchor_bare_highdicom_ms": 1000 * statistics.median(anchor),
                "ratio_vs_bare_highdicom": statistics.median(times) / statistics.median(anchor),
                "load_average": os.getloadavg()[0]}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


BENCHMARKS = [bench_pacs_pull, bench_sr_export]
