"""Session widget: who is signed in and as what role, where the current image's log is, a
reviewer's electronic signature (review / approval) over the log's head, and opening a DICOM
series with uneven slice spacing resampled on request (``glue.resample``; the request is logged)."""

from __future__ import annotations

import os
from collections import deque
from html import escape
from typing import Any

from napari.qt.threading import thread_worker
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QWidget,
)

from napari_clinlabel.core.errors import ClinlabelError
from napari_clinlabel.core.log.audit_log import iter_records
from napari_clinlabel.core.log.identity import Actor
from napari_clinlabel.glue.resample import (
    add_resampled,
    read_series_resampled,
    uneven_series_folder,
)
from napari_clinlabel.glue.session import get_session


class SessionWidget(QWidget):
    """Shows the acting human (id, name, role, where it came from); lets them switch role."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session = get_session(napari_viewer)
        self._viewer = viewer = self._session.viewer  # the viewer itself, not napari's proxy
        self._who = QLabel()
        self._origin = QLabel()
        self._user = QLineEdit()
        self._role = QComboBox()
        self._log_path = QLabel()
        self._head = QLabel()
        for label in (self._who, self._origin, self._log_path):
            label.setWordWrap(True)
        self._log_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        form = QFormLayout(self)
        form.addRow("Signed in:", self._who)
        form.addRow("From:", self._origin)
        form.addRow("User id:", self._user)
        form.addRow("Role:", self._role)
        form.addRow("Log:", self._log_path)
        form.addRow("Head:", self._head)
        self._meaning = QComboBox()
        self._meaning.addItems(["review", "approval"])
        self._sign = QPushButton("Sign the head")
        self._signed = QLabel()
        self._signed.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self._meaning)
        row.addWidget(self._sign, 1)
        form.addRow("Sign:", row)
        form.addRow("", self._signed)
        self._spacing = QDoubleSpinBox()
        self._spacing.setRange(0.0, 50.0)
        self._spacing.setDecimals(2)
        self._spacing.setSuffix(" mm")
        self._spacing.setSpecialValueText("auto")  # 0: as its log recorded, else smallest step
        self._spacing.setToolTip("Slice spacing of the resampled series; auto: as its log last "
                                 "recorded, else the smallest original step.")  # fmt: skip
        self._resample = QPushButton("Open DICOM resampled…")
        self._resample.setToolTip(
            "A DICOM series with uneven slice spacing or a missing slice opens as even blocks (or "
            "is refused); open it here as one volume resampled to even slices. The request is "
            "recorded in its log (image.resample); exports go back onto the original slices."
        )
        row = QHBoxLayout()
        row.addWidget(self._spacing)
        row.addWidget(self._resample, 1)
        form.addRow("Uneven DICOM:", row)
        self._resample.clicked.connect(self._on_open_resampled)
        self._sign.clicked.connect(self._on_sign)
        self._user.editingFinished.connect(self._on_user_edited)
        self._role.activated.connect(self._on_role_chosen)
        connect_while_alive(
            self,
            [
                (self._session.actor_changed, self._refresh),
                (self._session.changed, self._refresh),
                (self._session.record_appended, self._on_record),
                (viewer.layers.selection.events.active, self._refresh),
                (viewer.layers.events.inserted, self._refresh),
                (viewer.layers.events.removed, self._refresh),
            ],
        )
        self._refresh()

    # -- handlers ----------------------------------------------------------------------------
    def _on_role_chosen(self, _index: int = 0) -> None:
        actor = self._session.actor
        role = self._role.currentText()
        if actor is None or role == actor.role:
            return
        self._switch(Actor(actor.id, actor.name, role))

    def _on_user_edited(self) -> None:
        actor = self._session.actor
        user = self._user.text().strip()
        if not user or (actor is not None and user == actor.id):
            return
        roster = _quiet(self._session.roster_for, self._session.active_image())
        if roster is not None and roster.users:  # the roster names who acts: no typing another id
            self._session.report_error(
                ClinlabelError(f"{roster.path} is in force: you act as who you are logged in as "
                               "(CLINLABEL_USER or the OS login), not as a typed-in id.")
            )  # fmt: skip
            self._refresh()
            return
        self._switch(Actor(user, user, actor.role if actor else "annotator"))

    def _on_record(self, record: dict[str, Any]) -> None:
        self._head.setText(f"seq {record['seq']}  {record['hash'][:16]}…")

    def _on_sign(self) -> None:
        """Sign the current image's log head with the signed-in reviewer's key."""
        from napari_clinlabel.core.log.signing import sign_head

        image = self._session.active_image()
        try:
            if image is None:
                raise ClinlabelError("No image is open: there is no log to sign.")
            rec = sign_head(self._session.log_for(image), self._meaning.currentText())
        except ClinlabelError as exc:
            self._session.report_error(exc)
            self._signed.setText(str(exc))
            return
        t = rec["target"]
        self._signed.setText(
            f"Signed seq {t['seq']} ({t['hash'][:12]}…) as {rec['data']['meaning']} — "
            f"record {rec['seq']}."
        )

    def _on_open_resampled(self) -> None:
        """Ask for a series folder (the active uneven block's by default) and open it resampled
        off the GUI thread; the layer is added and the request logged when it is read."""
        start = uneven_series_folder(self._session.active_image())
        folder = QFileDialog.getExistingDirectory(
            self, "DICOM series to open resampled", str(start or "")
        )
        if not folder:
            return
        spacing = self._spacing.value() or None
        worker = thread_worker(
            read_series_resampled,
            start_thread=False,
            ignore_errors=True,  # errors go to the notification below, never a traceback
            progress={"desc": "Resampling DICOM series"},
        )(folder, spacing)
        worker.returned.connect(self._on_resampled)
        worker.errored.connect(self._session.report_error)
        worker.finished.connect(lambda: self._resample.setEnabled(True))
        self._resample.setEnabled(False)
        worker.start()

    def _on_resampled(self, volume: Any) -> None:
        try:
            add_resampled(self._viewer, volume)
        except ClinlabelError as exc:
            self._session.report_error(exc)

    # -- display -----------------------------------------------------------------------------
    def _switch(self, actor: Actor) -> None:
        try:
            self._session.set_actor(actor, self._session.active_image())
        except ClinlabelError as exc:
            self._session.report_error(exc)
        self._refresh()

    def _refresh(self, *_: Any) -> None:
        session = self._session
        image = session.active_image()
        actor = session.actor
        roster = _quiet(session.roster_for, image)
        if actor is None:
            self._who.setText(f"<b>nobody</b> — {escape(str(session.actor_error), quote=False)}")
        else:
            # names and ids are text, never markup (a rich-text label would render them)
            who = f"<b>{escape(actor.name, quote=False)}</b> ({escape(actor.id, quote=False)}) as <b>{actor.role}</b>"
            self._who.setText(who)
        self._origin.setTextFormat(Qt.TextFormat.PlainText)
        self._origin.setText(_origin(roster))
        self._origin.setToolTip(roster.authority() if roster is not None else "no roster")
        self._user.setText(actor.id if actor else "")
        locked = roster is not None and bool(roster.users)  # the roster names who may act
        self._user.setEnabled(not locked)
        self._user.setReadOnly(locked)
        self._user.setToolTip(
            "Fixed by the roster in force: you act as your login (or CLINLABEL_USER)."
            if locked
            else "Your user id (no roster is in force here)."
        )
        self._role.clear()
        roles = _quiet(session.roles_available, image) or []
        self._role.addItems(roles)
        if actor is not None and actor.role in roles:
            self._role.setCurrentText(actor.role)
        may_sign = actor is not None and actor.role in ("reviewer", "adjudicator")
        self._sign.setEnabled(may_sign and image is not None)
        self._sign.setToolTip(
            "Sign the log's head with your key (clinlabel keys init makes it)."
            if may_sign
            else "A review or approval is signed by a reviewer or an adjudicator: switch role."
        )
        if image is None:
            self._log_path.setText("no image open")
            self._head.setText("—")
            return
        path = session.log_path_for(image)
        self._log_path.setText(str(path))
        log = session.open_log(image)
        if log is not None:
            head = log.head()
            self._head.setText(f"seq {head.seq}  {head.hash[:16]}…")
        else:
            last = deque(iter_records(path), maxlen=1)
            last = last[0] if last else None
            self._head.setText(
                "no log yet" if last is None else f"seq {last['seq']}  {last['hash'][:16]}…"
            )


def connect_while_alive(widget: QWidget, pairs: list[tuple[Any, Any]]) -> None:
    """Connect session/viewer signals to ``widget`` slots; disconnect when the widget is destroyed."""
    for signal, slot in pairs:
        signal.connect(slot)

    def disconnect(*_: Any) -> None:
        for signal, slot in pairs:
            try:
                signal.disconnect(slot)
            except (TypeError, ValueError, RuntimeError):
                pass

    widget.destroyed.connect(disconnect)


def _origin(roster: Any) -> str:
    """Where the identity and the role come from, in words."""
    who = "CLINLABEL_USER" if os.environ.get("CLINLABEL_USER") else "OS login"
    if roster is not None and roster.signed and roster.owner:
        return (f"id: {who}; roles: signed roster {roster.path} (owner "
                f"{roster.owner['id']})")  # fmt: skip
    if roster is not None:
        return (f"id: {who}; roles: roster {roster.path} NOT signed by its owner "
                f"({roster.unsigned_why}) — annotator only")  # fmt: skip
    role = "CLINLABEL_ROLE" if os.environ.get("CLINLABEL_ROLE") else "default"
    return f"id: {who}; role: {role} — no signed roster here, annotator only"


def _quiet(fn: Any, *args: Any) -> Any:
    """Call ``fn``; a broken roster shows as no roster here (the log refuses it when used)."""
    try:
        return fn(*args)
    except ClinlabelError:
        return None
