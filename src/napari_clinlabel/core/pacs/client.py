"""DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store) through ``dicomweb-client``.

:class:`PacsConnection` holds the endpoint and its credentials (HTTP basic or a bearer token; TLS
certificates verified unless ``verify=False`` is asked for explicitly). Every network failure
becomes one :class:`~napari_clinlabel.core.errors.PacsError` naming the server, the problem and
the fix. Log lines (Python ``logging``) carry UIDs and counts only, never patient data.

Pulls are resumable: each instance lands at ``DIR/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``
(written to a temporary name and renamed), an instance already there whose header holds the
right SOPInstanceUID and whose pixel data is complete (length check) is not fetched again, and
after the transfer every instance the server listed must be on disk. A whole series is made
durable at once (Linux ``syncfs`` of the folder's file system, else one fsync per file) before
the pull reports it done: a crash before that leaves files the length check refetches.

A whole series is fetched as the multipart parts the server sends, written byte for byte (no
decode and re-encode); dicomweb-client's public API hands out parsed datasets only, so its
request and multipart decoder are used directly (``_http_get``/``_decode_multipart_message``),
with the public ``iter_series`` as the fallback should they change. :func:`pull_series_volumes`
opens the series from those bytes in memory instead of reading the folder again.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pydicom
import requests
from pydicom.dataset import Dataset

from napari_clinlabel.core.errors import PacsError
from napari_clinlabel.core.image.dicom.header import SliceHeader, read_header
from napari_clinlabel.core.image.dicom.volume import read_dicom_buffers
from napari_clinlabel.core.image.volume import Volume

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0
STOW_BATCH = 32  # instances per STOW request: bounded memory and request size
_UID_CHARS = set("0123456789.")


@dataclass(frozen=True)
class PacsConnection:
    """A DICOMweb endpoint: base URL (e.g. ``https://pacs.example.org/dicom-web``) and credentials.

    ``verify`` is True (system CAs), False (no verification: only for a test server), or the path
    of a CA bundle. ``token`` is sent as ``Authorization: Bearer``; ``username``/``password`` as
    HTTP basic auth. Never printed: ``repr`` hides the secrets.
    """

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    verify: bool | str = True
    timeout_s: float = TIMEOUT_S

    @property
    def where(self) -> str:
        """The server as shown in messages: scheme, host and port only."""
        u = urlparse(self.url)
        return f"{u.scheme}://{u.hostname}{f':{u.port}' if u.port else ''}"


class _TimeoutSession(requests.Session):
    """A session whose requests time out (dicomweb-client passes no timeout: a dead server hangs)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout_s)
        return super().request(method, url, *args, **kwargs)


def connect(conn: PacsConnection) -> Any:
    """A ``dicomweb_client.DICOMwebClient`` for ``conn`` (no network traffic yet)."""
    from dicomweb_client import DICOMwebClient  # imported lazily: loads PIL and the HTTP stack

    u = urlparse(conn.url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise PacsError(
            f"{conn.url!r}: not a DICOMweb base URL; give e.g. https://pacs.example.org/dicom-web."
        )
    if conn.token and conn.username:
        raise PacsError(f"{conn.where}: give a token or a user name, not both.")
    session = _TimeoutSession(conn.timeout_s)
    if conn.username:
        session.auth = (conn.username, conn.password or "")
    if conn.token:
        session.headers["Authorization"] = f"Bearer {conn.token}"
    session.verify = conn.verify
    client = DICOMwebClient(url=conn.url.rstrip("/"), session=session)
    client.set_http_retry_params(retry=False)  # errors surface at once, as one line
    return client


def _fail(conn: PacsConnection, what: str, exc: Exception) -> PacsError:
    """One clear :class:`PacsError` for a failed request (no URL query strings, no PHI)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return PacsError(
            f"{conn.where}: TLS certificate check failed while {what}; give the hospital's CA "
            "bundle (--ca-bundle FILE), or --insecure for a test server only."
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return PacsError(f"{conn.where}: no answer within {conn.timeout_s:g} s while {what}.")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return PacsError(
            f"{conn.where}: cannot connect while {what}; check the URL, the port and the network."
        )
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return PacsError(
            f"{conn.where}: the server refused the credentials (HTTP {status}) while {what}; set "
            "--user with CLINLABEL_PACS_PASSWORD, or CLINLABEL_PACS_TOKEN."
        )
    if status == 404:
        return PacsError(f"{conn.where}: not found (HTTP 404) while {what}; check the UID and URL.")
    if status is not None:
        return PacsError(f"{conn.where}: HTTP {status} while {what}.")
    return PacsError(f"{conn.where}: {type(exc).__name__} while {what}.")


def _call(conn: PacsConnection, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PacsError:
        raise
    except (requests.exceptions.RequestException, OSError) as exc:
        raise _fail(conn, what, exc) from None


def check_uid(uid: str, what: str = "UID") -> str:
    """``uid`` if it is a DICOM UID (digits and dots, ≤ 64 characters); else a one-line error."""
    u = str(uid).strip()
    if not u or len(u) > 64 or not set(u) <= _UID_CHARS or ".." in u or u[0] == "." or u[-1] == ".":
        raise PacsError(f"{uid!r}: not a DICOM {what} (digits and dots, at most 64 characters).")
    return u


def _val(d: dict[str, Any], tag: str) -> Any:
    v = (d.get(tag) or {}).get("Value") or [None]
    return v[0]


@dataclass
class SeriesSummary:
    """One series as QIDO lists it (no patient data)."""

    study_uid: str
    series_uid: str
    modality: str
    number: int | None
    description: str
    instances: int | None


@dataclass
class StudySummary:
    """One study as QIDO lists it. ``patient_id``/``accession`` are shown to the credentialed user
    in the widget only; :meth:`public` (what the CLI prints and logs) leaves them out."""

    study_uid: str
    date: str
    modalities: list[str]
    description: str
    patient_id: str = ""
    accession: str = ""
    series: list[SeriesSummary] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """JSON-ready form without patient identifiers."""
        return {
            "study_uid": self.study_uid,
            "date": self.date,
            "modalities": self.modalities,
            "description": self.description,
            "series": [vars(s) for s in self.series],
        }


def find_studies(
    conn: PacsConnection,
    *,
    modality: str | None = None,
    patient_id: str | None = None,
    accession: str | None = None,
    study_date: str | None = None,
    study_uid: str | None = None,
    with_series: bool = True,
    limit: int = 200,
) -> list[StudySummary]:
    """QIDO search for studies (and their series) matching the filters given."""
    client = connect(conn)
    filters: dict[str, str] = {}
    if modality:
        filters["ModalitiesInStudy"] = modality.upper()
    if patient_id:
        filters["PatientID"] = patient_id
    if accession:
        filters["AccessionNumber"] = accession
    if study_date:
        filters["StudyDate"] = study_date.replace("-", "")
    if study_uid:
        filters["StudyInstanceUID"] = check_uid(study_uid, "Study Instance UID")
    fields = ["StudyDescription", "ModalitiesInStudy", "StudyDate", "PatientID", "AccessionNumber"]
    found = _call(conn, "searching for studies",
                  lambda: client.search_for_studies(search_filters=filters, fields=fields,
                                                    limit=limit))  # fmt: skip
    out = []
    for d in found or []:
        mods = (d.get("00080061") or {}).get("Value") or []
        st = StudySummary(
            study_uid=str(_val(d, "0020000D")),
            date=str(_val(d, "00080020") or ""),
            modalities=[str(m) for m in mods],
            description=str(_val(d, "00081030") or ""),
            patient_id=str(_val(d, "00100020") or ""),
            accession=str(_val(d, "00080050") or ""),
        )
        if with_series:
            st.series = find_series(conn, st.study_uid, modality=modality, client=client)
        out.append(st)
    log.info("QIDO: %d studies found at %s", len(out), conn.where)
    return out


def find_series(
    conn: PacsConnection, study_uid: str, *, modality: str | None = None, client: Any = None
) -> list[SeriesSummary]:
    """QIDO search for the series of one study (optionally of one modality)."""
    client = client or connect(conn)
    filters = {"Modality": modality.upper()} if modality else {}
    found = _call(conn, f"listing the series of study {study_uid}",
                  lambda: client.search_for_series(
                      study_instance_uid=check_uid(study_uid, "Study Instance UID"),
                      search_filters=filters,
                      fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"]))  # fmt: skip
    out = []
    for d in found or []:
        num = _val(d, "00200011")
        n = _val(d, "00201209")
        out.append(
            SeriesSummary(
                study_uid=study_uid,
                series_uid=str(_val(d, "0020000E")),
                modality=str(_val(d, "00080060") or ""),
                number=None if num in (None, "") else int(num),
                description=str(_val(d, "0008103E") or ""),
                instances=None if n in (None, "") else int(n),
            )
        )
    return sorted(out, key=lambda s: (s.number is None, s.number or 0, s.series_uid))


@dataclass
class PullProgress:
    """Where a pull stands: instances done (fetched or already on disk) of ``total``."""

    done: int
    total: int
    fetched: int
    skipped: int
    series_uid: str


@dataclass
class PullResult:
    """What a finished pull left on disk: one folder per series."""

    folders: list[Path]
    fetched: int
    skipped: int
    total: int


def _series_info(conn: PacsConnection, client: Any, study: str | None, series: str
                 ) -> tuple[str, int | None]:  # fmt: skip
    """(study UID, instance count the server states) of one series (a series-level QIDO)."""
    filters = {"SeriesInstanceUID": series}
    if study is not None:
        filters["StudyInstanceUID"] = study
    hits = _call(conn, f"looking up series {series}", lambda: client.search_for_series(
        search_filters=filters, fields=["NumberOfSeriesRelatedInstances"]))  # fmt: skip
    found = str(_val(hits[0], "0020000D") or "") if hits else ""
    if not found:
        raise PacsError(f"{conn.where}: no series {series} there; check the UID (clinlabel "
                        "pacs find URL lists what the server holds).")  # fmt: skip
    n = _val(hits[0], "00201209")
    return found, (int(n) if n not in (None, "") else None)


def _instances(conn: PacsConnection, client: Any, study: str | None, series: str | None
               ) -> list[tuple[str, str, str]]:  # fmt: skip
    """(study, series, SOP instance) UIDs the server lists for a study or a series."""
    if series is not None and study is None:  # WADO/QIDO paths need the study: ask for it
        hits = _call(conn, f"looking up series {series}", lambda: client.search_for_series(
            search_filters={"SeriesInstanceUID": series}))  # fmt: skip
        study = str(_val(hits[0], "0020000D")) if hits else None
        if not study:
            raise PacsError(f"{conn.where}: no series {series} there; check the UID (clinlabel "
                            "pacs find URL lists what the server holds).")  # fmt: skip
    if series is not None:
        found = _call(conn, f"listing the instances of series {series}",
                      lambda: client.search_for_instances(study_instance_uid=study,
                                                          series_instance_uid=series))  # fmt: skip
    else:
        found = _call(conn, f"listing the instances of study {study}",
                      lambda: client.search_for_instances(study_instance_uid=study))  # fmt: skip
    out = []
    for d in found or []:
        uids = (_val(d, "0020000D"), _val(d, "0020000E"), _val(d, "00080018"))
        if all(uids) and (series is None or uids[1] == series):
            out.append(tuple(str(u) for u in uids))
    if not out:
        which = f"series {series}" if series else f"study {study}"
        raise PacsError(f"{conn.where}: {which} has no instances there; check the UID (clinlabel "
                        "pacs find URL lists what the server holds).")  # fmt: skip
    return out  # type: ignore[return-value]


def instance_path(dest: Path, series_uid: str, sop_uid: str) -> Path:
    """Where a pulled instance lives: ``dest/<series>/<sop>.dcm`` (UIDs are path-safe)."""
    return Path(dest) / check_uid(series_uid, "Series Instance UID") / f"{check_uid(sop_uid)}.dcm"


_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
_SEQ_END = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # encapsulated pixel data ends with it (LE)
_LENGTH_TAGS = ["SOPInstanceUID", "Rows", "Columns", "BitsAllocated", "SamplesPerPixel",
                "NumberOfFrames"]  # fmt: skip


def _on_disk(path: Path, sop_uid: str) -> bool:
    """True when ``path`` is a regular DICOM file holding instance ``sop_uid`` in full: its pixel
    data as long as the header says (uncompressed) or closed by the sequence delimiter
    (compressed). Files of a series cut short before its flush fail this and are refetched."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        size = path.stat().st_size
        with open(path, "rb") as fh:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=_LENGTH_TAGS)
            offset = fh.tell()
            if str(ds.get("SOPInstanceUID", "")) != sop_uid:
                return False
            if "Rows" not in ds:  # no pixels (SR, SEG without frames…): the header is all
                return True
            syntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
            if syntax in _UNCOMPRESSED:
                frames = int(ds.get("NumberOfFrames", 1) or 1)
                n = ds.Rows * ds.Columns * frames * int(ds.get("SamplesPerPixel", 1) or 1)
                return size - offset >= 8 + n * int(ds.get("BitsAllocated", 16)) // 8
            fh.seek(max(size - len(_SEQ_END), 0))
            return fh.read() == _SEQ_END
    except Exception:  # a torn or foreign file: fetch it again
        return False


def _write_bytes(data: bytes, path: Path) -> Path:
    """Write ``data`` at ``path`` via a temporary name and a rename (no fsync: see
    :func:`_flush_series`), so ``path`` never names a half-written file; returns ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _part10_bytes(ds: Dataset) -> bytes:
    """A parsed dataset as Part 10 file bytes (the fallback when the raw parts are unavailable)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _flush_series(folder: Path, paths: list[Path]) -> None:
    """Make a series' files and their names durable: one ``syncfs`` of the folder's file system
    on Linux, else an fsync per file; then the folder itself (where folders can be opened)."""
    if os.name != "posix":  # Windows: no folder handles to fsync; each file is flushed
        for p in paths:
            with open(p, "rb+") as fh:
                os.fsync(fh.fileno())
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        done = False
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            done = hasattr(libc, "syncfs") and libc.syncfs(fd) == 0
        if not done:
            for p in paths:
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        os.fsync(fd)
    finally:
        os.close(fd)


def _series_parts(client: Any, study: str, series: str) -> Iterator[bytes]:
    """The Part 10 bytes of every instance of a series, as the server sent them."""
    try:  # dicomweb-client's request + multipart decoder: private, so guarded
        from dicomweb_client.web import _Transaction  # lazy: loads the HTTP stack

        url = client._get_series_url(_Transaction.RETRIEVE, study, series)
        resp = client._http_get(
            url, headers={"Accept": 'multipart/related; type="application/dicom"'}, stream=True
        )
        decode = client._decode_multipart_message
    except (ImportError, AttributeError, TypeError):
        yield from (_part10_bytes(ds) for ds in client.iter_series(study, series))
        return
    if resp.headers.get("Content-Type", "").startswith("application/dicom"):
        yield resp.content  # a server that sends one part without the multipart wrapper
        return
    for part in decode(resp, stream=True):
        data = bytes(part)
        # a part without the Part 10 preamble (allowed by some servers): re-encode it
        yield data if data[128:132] == b"DICM" else _part10_bytes(pydicom.dcmread(
            io.BytesIO(data), force=True))  # fmt: skip


def _received(dest: Path, series: str, data: bytes) -> tuple[Path, SliceHeader | None]:
    """The header of a received instance (parsed once: its SOP UID names the file, and the
    volume is opened from it later), or None for a non-image object."""
    try:
        header = read_header(Path(dest, series, "received.dcm"), data)
    except Exception:  # noqa: BLE001 - an odd header: the SOP UID alone decides
        header = None
    if header is None or not header.sop_uid:
        return Path(), None
    path = instance_path(dest, series, header.sop_uid)
    return path, replace(header, path=path)


def _sop_of(data: bytes) -> str:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True,
                         specific_tags=["SOPInstanceUID"])  # fmt: skip
    return str(ds.get("SOPInstanceUID", ""))


def iter_pull(
    conn: PacsConnection,
    dest: str | os.PathLike[str],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    keep: dict[Path, bytes] | None = None,
    keep_headers: list[SliceHeader] | None = None,
    flush_later: list[tuple[Path, list[Path]]] | None = None,
) -> Iterator[PullProgress]:
    """Pull a study or a series into ``dest``, yielding progress after every instance.

    A series none of whose instances are on disk comes in one streamed WADO request, its parts
    written as received; a partly pulled one fetches only the missing instances. Each series is
    flushed to disk once, when complete. Stops (leaving complete files only) when
    ``cancelled()`` turns true. Raises :class:`PacsError` when an instance did not arrive.
    ``keep``: filled with ``{path: bytes}`` of every instance fetched (to open without rereading),
    and ``keep_headers`` with their parsed headers. ``flush_later``: a fresh series that arrived
    whole is not flushed here but listed there (folder, files) for the caller, who must call
    :func:`_flush_series` on it before reporting the pull done (it overlaps the flush with work).
    """
    keep_headers = [] if keep_headers is None else keep_headers
    if (study_uid is None) == (series_uid is None):
        raise PacsError("Give exactly one of --study UID or --series UID.")
    study = check_uid(study_uid, "Study Instance UID") if study_uid else None
    series = check_uid(series_uid, "Series Instance UID") if series_uid else None
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PacsError(f"{dest}: cannot create the download folder ({exc.strerror}).") from None
    client = connect(conn)
    if series is not None:
        folder = instance_path(dest, series, "1").parent
        if not (folder.is_dir() and any(folder.glob("*.dcm"))):  # nothing there yet
            yield from _fresh_series(conn, client, dest, study, series, cancelled, keep,
                                     keep_headers, flush_later)  # fmt: skip
            return
    listed = _instances(conn, client, study, series)
    total, done, fetched, skipped = len(listed), 0, 0, 0
    by_series: dict[tuple[str, str], list[str]] = {}
    for st, se, sop in listed:
        by_series.setdefault((st, se), []).append(sop)
    for (st, se), sops in by_series.items():
        missing = [s for s in sops if not _on_disk(instance_path(dest, se, s), s)]
        skipped += len(sops) - len(missing)
        done += len(sops) - len(missing)
        yield PullProgress(done, total, fetched, skipped, se)
        if not missing:
            continue
        wanted = set(missing)
        folder = instance_path(dest, se, missing[0]).parent
        folder.mkdir(parents=True, exist_ok=True)
        if len(missing) == len(sops):
            stream: Iterable[bytes] = _call(conn, f"retrieving series {se}",
                                            lambda st=st, se=se: _series_parts(client, st, se))  # fmt: skip
        else:
            stream = (_call(conn, f"retrieving instance {s}",
                            lambda s=s, st=st, se=se: _part10_bytes(
                                client.retrieve_instance(st, se, s)))
                      for s in missing)  # fmt: skip
        it = iter(stream)
        written: list[Path] = []
        try:
            while wanted:
                if cancelled():
                    log.info("WADO: pull of series %s cancelled after %d instances", se, fetched)
                    return
                data = _call(conn, f"retrieving series {se}", lambda it=it: next(it, None))
                if data is None:
                    break
                path, header = _received(dest, se, data)
                sop = header.sop_uid if header is not None else _sop_of(data)
                if sop not in wanted:
                    continue
                path = instance_path(dest, se, sop)
                try:
                    _write_bytes(data, path)
                except OSError as exc:
                    raise PacsError(
                        f"{dest}: cannot write instance {sop} ({exc.strerror}); free space or "
                        "choose another folder. Run the pull again to resume."
                    ) from None
                if keep is not None:
                    keep[path] = data
                    if header is not None:
                        keep_headers.append(header)
                written.append(path)
                wanted.discard(sop)
                fetched += 1
                done += 1
                yield PullProgress(done, total, fetched, skipped, se)
        finally:  # what was written (complete or cancelled) is made durable once
            if written:
                _flush_series(folder, written)
        if wanted:
            raise PacsError(
                f"{conn.where}: {len(wanted)} of {len(sops)} instances of series {se} did not "
                "arrive; run the pull again to fetch the rest."
            )
    log.info("WADO: %d instances fetched, %d already on disk", fetched, skipped)


def _written(fut: Any, dest: Path, written: list[Path]) -> None:
    """Wait for one background file write; a failure becomes one clear :class:`PacsError`."""
    try:
        written.append(fut.result())
    except OSError as exc:
        raise PacsError(
            f"{dest}: cannot write a pulled instance ({exc.strerror}); free space or choose "
            "another folder. Run the pull again to resume."
        ) from None


def _fresh_series(
    conn: PacsConnection,
    client: Any,
    dest: Path,
    study: str | None,
    series: str,
    cancelled: Callable[[], bool],
    keep: dict[Path, bytes] | None,
    keep_headers: list[SliceHeader],
    flush_later: list[tuple[Path, list[Path]]] | None = None,
) -> Iterator[PullProgress]:
    """A series none of whose files are on disk: the instance listing (QIDO, slow on some
    servers) runs beside the streamed retrieve; every listed instance must have arrived."""
    study, count = _series_info(conn, client, study, series)
    pool = ThreadPoolExecutor(max_workers=1)
    listing = pool.submit(_instances, conn, client, study, series)
    writer = ThreadPoolExecutor(max_workers=1)  # file writes overlap parsing the next part
    pending: list[Any] = []
    folder = instance_path(dest, series, "1").parent
    folder.mkdir(parents=True, exist_ok=True)
    received: set[str] = set()
    written: list[Path] = []
    complete = False
    try:
        it = iter(_call(conn, f"retrieving series {series}",
                        lambda: _series_parts(client, study, series)))  # fmt: skip
        yield PullProgress(0, count or 0, 0, 0, series)
        while True:
            if cancelled():
                log.info("WADO: pull of series %s cancelled after %d instances", series,
                         len(received))  # fmt: skip
                return
            data = _call(conn, f"retrieving series {series}", lambda: next(it, None))
            if data is None:
                break
            path, header = _received(dest, series, data)
            sop = header.sop_uid if header is not None else _sop_of(data)
            if sop in received:
                continue
            path = instance_path(dest, series, sop)
            pending.append(writer.submit(_write_bytes, data, path))
            if len(pending) > 16:  # bounded: at most 16 parts wait in memory for the disk
                _written(pending.pop(0), dest, written)
            if keep is not None:
                keep[path] = data
                if header is not None:
                    keep_headers.append(header)
            received.add(sop)
            n = len(received)
            yield PullProgress(n, max(count or 0, n), n, 0, series)
        complete = True
    finally:  # what was written (complete or cancelled) is made durable once
        pool.shutdown(wait=False, cancel_futures=True)
        try:
            while pending:
                _written(pending.pop(0), dest, written)
        finally:
            writer.shutdown(wait=True)
            if written and complete and flush_later is not None:
                flush_later.append((folder, written))
            elif written:
                _flush_series(folder, written)
    listed = {sop for _, _, sop in listing.result()}
    missing = listed - received
    if missing:
        raise PacsError(
            f"{conn.where}: {len(missing)} of {len(listed)} instances of series {series} did not "
            "arrive; run the pull again to fetch the rest."
        )
    n = len(received)
    yield PullProgress(n, len(listed), n, 0, series)
    log.info("WADO: %d instances fetched, %d already on disk", n, 0)


def pull(
    conn: PacsConnection,
    dest: str | os.PathLike[str],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    progress: Callable[[PullProgress], None] | None = None,
    keep: dict[Path, bytes] | None = None,
    keep_headers: list[SliceHeader] | None = None,
    flush_later: list[tuple[Path, list[Path]]] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> PullResult:
    """Pull a study or a series into ``dest`` (see :func:`iter_pull`); checks every instance.
    ``cancelled``: polled between instances; when it turns true the pull stops early (complete
    files only) and the result counts what arrived."""
    last = PullProgress(0, 0, 0, 0, "")
    folders: list[Path] = []
    for last in iter_pull(conn, dest, study_uid=study_uid, series_uid=series_uid, keep=keep,
                          keep_headers=keep_headers, flush_later=flush_later,
                          cancelled=cancelled):  # fmt: skip
        folder = Path(dest) / last.series_uid
        if folder not in folders:
            folders.append(folder)
        if progress is not None:
            progress(last)
    return PullResult(folders, last.fetched, last.skipped, last.total)


def pull_series_volumes(
    conn: PacsConnection,
    dest: str | os.PathLike[str],
    series_uid: str,
    *,
    progress: Callable[[PullProgress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> list[Volume]:
    """Pull one series into ``dest`` and open it from the bytes received (instances already
    on disk are read from there): the same Volumes as ``read_volumes`` of the series folder.
    An empty list when ``cancelled()`` turned true during the pull (nothing opened; the files
    that arrived are complete ones, made durable, and the series folder may lack instances)."""
    keep: dict[Path, bytes] = {}
    headers: list[SliceHeader] = []
    later: list[tuple[Path, list[Path]]] = []
    res = pull(conn, dest, series_uid=series_uid, progress=progress, keep=keep,
               keep_headers=headers, flush_later=later, cancelled=cancelled)  # fmt: skip
    if cancelled():  # the series may be short of instances: never opened as if whole
        for f, w in later:
            _flush_series(f, w)
        return []
    # the series is made durable while it is opened; both are done before this returns
    with ThreadPoolExecutor(max_workers=1) as flusher:
        flushes = [flusher.submit(_flush_series, f, w) for f, w in later]
        try:
            folder = res.folders[0]
            for p in sorted(folder.glob("*.dcm")):
                if p not in keep:  # already on disk before this pull
                    keep[p] = p.read_bytes()
            parsed = {h.path for h in headers}
            for p, data in keep.items():  # on disk before, or its header did not parse at once:
                if p not in parsed and (h := read_header(p, data)) is not None:  # errors named
                    headers.append(h)
            volumes = read_dicom_buffers(keep, headers)
        finally:
            for fut in flushes:
                fut.result()
    return volumes


def dicom_files(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The DICOM files among ``paths`` (files as given; folders searched recursively)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise PacsError(f"{p}: no such file or folder; nothing was sent.")
        cands = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for q in cands:
            if q.name.startswith(".") or q.is_symlink():
                continue
            try:
                with open(q, "rb") as fh:
                    head = fh.read(132)
            except OSError:
                continue
            if head[128:132] == b"DICM":
                out.append(q)
    if not out:
        raise PacsError(f"{', '.join(map(str, paths))}: no DICOM files (with the DICM preamble) "
                        "found; nothing was sent.")  # fmt: skip
    return out


@dataclass
class PushResult:
    """Instances the server stored and those it refused (SOP Instance UIDs)."""

    stored: list[str]
    failed: list[str]


def push(
    conn: PacsConnection,
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PushResult:
    """STOW every DICOM file under ``paths``; raises when the server refuses any instance."""
    files = dicom_files(paths)
    client = connect(conn)
    stored: list[str] = []
    failed: list[str] = []
    for start in range(0, len(files), STOW_BATCH):
        batch = []
        for f in files[start : start + STOW_BATCH]:
            try:
                batch.append(pydicom.dcmread(f))
            except Exception:
                raise PacsError(f"{f}: not a readable DICOM file; nothing more was sent.") from None
        resp = _call(conn, "storing instances", lambda b=batch: client.store_instances(b))
        ok = {str(i.ReferencedSOPInstanceUID) for i in resp.get("ReferencedSOPSequence", [])}
        bad = {str(i.ReferencedSOPInstanceUID) for i in resp.get("FailedSOPSequence", [])}
        for ds in batch:
            uid = str(ds.SOPInstanceUID)
            (stored if uid in ok and uid not in bad else failed).append(uid)
        if progress is not None:
            progress(min(start + STOW_BATCH, len(files)), len(files))
    log.info("STOW: %d instances stored, %d refused at %s", len(stored), len(failed), conn.where)
    if failed:
        raise PacsError(
            f"{conn.where}: refused {len(failed)} of {len(files)} instances (first "
            f"{failed[0]}); check the server's log for the reason."
        )
    return PushResult(stored, failed)
