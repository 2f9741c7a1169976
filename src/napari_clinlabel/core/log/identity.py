"""Who is acting: the OS login, ``CLINLABEL_USER``/``CLINLABEL_ROLE``, or the dataset roster."""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_clinlabel.core.errors import ClinlabelError

ROLES = ("annotator", "reviewer", "adjudicator")
ROSTER_NAME = "clinlabel-roster.toml"


@dataclass(frozen=True)
class Actor:
    """A named human with a role; the ``actor`` of every log record."""

    id: str
    name: str
    role: str = "annotator"

    def __post_init__(self) -> None:
        if not self.id:
            raise ClinlabelError("Actor id is empty: set CLINLABEL_USER or log in as a named user.")
        if self.role not in ROLES:
            raise ClinlabelError(
                f"Role {self.role!r} is not one of {', '.join(ROLES)}: set CLINLABEL_ROLE or fix "
                "the roster."
            )

    def to_dict(self) -> dict[str, str]:
        """The ``actor`` field of a log record."""
        return {"id": self.id, "name": self.name, "role": self.role}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Actor:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["id"]), str(d.get("name", d["id"])), str(d.get("role", "annotator")))


@dataclass
class Roster:
    """Users, their roles and public keys, and the dataset policy (``clinlabel-roster.toml``)."""

    path: Path | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)

    def roles_of(self, user_id: str) -> list[str]:
        """Roles the roster grants ``user_id`` (empty when the user is not listed)."""
        u = self.users.get(user_id)
        if u is None:
            return []
        roles = u.get("roles") or [u.get("role", "annotator")]
        return [str(r) for r in roles]

    def public_key(self, user_id: str) -> str | None:
        """Base64 raw Ed25519 public key of ``user_id`` (None when not listed)."""
        u = self.users.get(user_id)
        return None if u is None else u.get("public_key")


def load_roster(path: str | os.PathLike[str]) -> Roster:
    """Read a roster TOML file; errors name the file and the problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClinlabelError(f"{p}: roster file not found; check CLINLABEL_ROSTER.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ClinlabelError(f"{p}: roster is not valid TOML ({exc}); fix the file.") from None
    users: dict[str, dict[str, Any]] = {}
    listed = data.get("users", [])
    if not isinstance(listed, list) or not all(isinstance(u, dict) for u in listed):
        raise ClinlabelError(f"{p}: 'users' must be a list of [[users]] tables; fix the file.")
    for i, u in enumerate(listed):
        if "id" not in u:
            raise ClinlabelError(f"{p}: users[{i}] has no 'id'; give every user an id.")
        if str(u["id"]) in users:
            raise ClinlabelError(f"{p}: user {u['id']!r} is listed twice; keep one entry.")
        for r in u.get("roles") or [u.get("role", "annotator")]:
            if r not in ROLES:
                raise ClinlabelError(
                    f"{p}: user {u['id']!r} has unknown role {r!r}; use one of {', '.join(ROLES)}."
                )
        users[str(u["id"])] = dict(u)
    return Roster(p, users, dict(data.get("policy", {})))


def find_roster(near: str | os.PathLike[str] | None = None) -> Roster | None:
    """The roster named by ``CLINLABEL_ROSTER``, else ``clinlabel-roster.toml`` beside ``near``."""
    env = os.environ.get("CLINLABEL_ROSTER")
    if env:
        return load_roster(env)
    if near is not None:
        p = Path(near)
        folder = p if p.is_dir() else p.parent
        for cand in (folder / ROSTER_NAME, folder.parent / ROSTER_NAME):
            if cand.is_file():
                return load_roster(cand)
    return None


def current_actor(near: str | os.PathLike[str] | None = None, role: str | None = None) -> Actor:
    """The human acting now: env vars, else OS login; the roster (if any) names and checks roles.

    ``role`` asks for a specific role (e.g. adjudicator); it must be one the roster grants.
    """
    user_id = os.environ.get("CLINLABEL_USER") or login_name()
    wanted = role or os.environ.get("CLINLABEL_ROLE")
    roster = find_roster(near)
    name = user_id
    if roster is not None and roster.users:
        granted = roster.roles_of(user_id)
        if not granted:
            raise ClinlabelError(
                f"{roster.path}: user {user_id!r} is not in the roster; ask the dataset owner to "
                "add you."
            )
        name = str(roster.users[user_id].get("name", user_id))
        if wanted is None:
            wanted = granted[0]
        elif wanted not in granted:
            raise ClinlabelError(
                f"{roster.path}: user {user_id!r} may act as {', '.join(granted)}, not {wanted!r}."
            )
    return Actor(user_id, name, wanted or "annotator")


def login_name() -> str:
    """The OS login name (``uid<N>`` where the system has none)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): fall back to the uid
        return f"uid{os.getuid()}"
