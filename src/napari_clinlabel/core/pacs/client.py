"""DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store) through ``dicomweb-client``.

:class:`PacsConnection` holds the endpoint and its credentials (HTTP basic or a bearer token; TLS
certificates verified unless ``verify=False`` is asked for explicitly). Every network failure
becomes one :class:`~napari_clinlabel.core.errors.PacsError` naming the server, the problem and
the fix. Log lines (Python ``logging``) carry UIDs and counts only, never patient data.

Pulls are resumable: each instance lands at ``DIR/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``
(written to a temporary name, fsynced, renamed), an instance already there whose header holds
the right SOPInstanceUID is not fetched again, and after the transfer every instance the server
listed must be on disk.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pydicom
import requests
from pydicom.dataset import Dataset

from napari_clinlabel.core.errors import PacsError

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


def _on_disk(path: Path, sop_uid: str) -> bool:
    """True when ``path`` is a regular DICOM file holding instance ``sop_uid``."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.get("SOPInstanceUID", "")) == sop_uid
    except Exception:  # a torn or foreign file: fetch it again
        return False


def _write_instance(ds: Dataset, path: Path) -> None:
    """Save ``ds`` at ``path`` atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def iter_pull(
    conn: PacsConnection,
    dest: str | os.PathLike[str],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Iterator[PullProgress]:
    """Pull a study or a series into ``dest``, yielding progress after every instance.

    A series none of whose instances are on disk comes in one streamed WADO request; a partly
    pulled one fetches only the missing instances. Stops (leaving complete files only) when
    ``cancelled()`` turns true. Raises :class:`PacsError` when an instance did not arrive.
    """
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
        if len(missing) == len(sops):
            stream: Iterable[Dataset] = _call(conn, f"retrieving series {se}",
                                              lambda st=st, se=se: client.iter_series(st, se))  # fmt: skip
        else:
            stream = (_call(conn, f"retrieving instance {s}",
                            lambda s=s, st=st, se=se: client.retrieve_instance(st, se, s))
                      for s in missing)  # fmt: skip
        it = iter(stream)
        while wanted:
            if cancelled():
                log.info("WADO: pull of series %s cancelled after %d instances", se, fetched)
                return
            ds = _call(conn, f"retrieving series {se}", lambda it=it: next(it, None))
            if ds is None:
                break
            sop = str(ds.get("SOPInstanceUID", ""))
            if sop not in wanted:
                continue
            try:
                _write_instance(ds, instance_path(dest, se, sop))
            except OSError as exc:
                raise PacsError(
                    f"{dest}: cannot write instance {sop} ({exc.strerror}); free space or choose "
                    "another folder. Run the pull again to resume."
                ) from None
            wanted.discard(sop)
            fetched += 1
            done += 1
            yield PullProgress(done, total, fetched, skipped, se)
        if wanted:
            raise PacsError(
                f"{conn.where}: {len(wanted)} of {len(sops)} instances of series {se} did not "
                "arrive; run the pull again to fetch the rest."
            )
    log.info("WADO: %d instances fetched, %d already on disk", fetched, skipped)


def pull(
    conn: PacsConnection,
    dest: str | os.PathLike[str],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    progress: Callable[[PullProgress], None] | None = None,
) -> PullResult:
    """Pull a study or a series into ``dest`` (see :func:`iter_pull`); checks every instance."""
    last = PullProgress(0, 0, 0, 0, "")
    folders: list[Path] = []
    for last in iter_pull(conn, dest, study_uid=study_uid, series_uid=series_uid):
        folder = Path(dest) / last.series_uid
        if folder not in folders:
            folders.append(folder)
        if progress is not None:
            progress(last)
    return PullResult(folders, last.fetched, last.skipped, last.total)


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
