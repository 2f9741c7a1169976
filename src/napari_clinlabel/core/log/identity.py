"""Who is acting: the OS login, ``CLINLABEL_USER``/``CLINLABEL_ROLE``, or the dataset roster.

Authority: roles come from the dataset roster (``clinlabel-roster.toml``) only when the owner
named in its ``[owner]`` table signed it (``<roster>.sig``, Ed25519 over ``ROSTER_DOMAIN`` + the
file's bytes); otherwise nobody acts above annotator. Ids that share a ``person`` value or a
public key are one person.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from napari_clinlabel.core.errors import ClinlabelError, PermissionRefused

ROLES = ("annotator", "reviewer", "adjudicator")  # what a [[users]] entry may be granted
OWNER = "owner"  # the role of the user named in [owner]: runs the programme (init, add, assign)
ACTOR_ROLES = (*ROLES, OWNER)  # what a record's actor may act as
ROSTER_NAME = "clinlabel-roster.toml"
ROSTER_DOMAIN = b"clinlabel-roster/1\n"  # first line of what a roster's owner signs


@dataclass(frozen=True)
class Actor:
    """A named human with a role; the ``actor`` of every log record."""

    id: str
    name: str
    role: str = "annotator"

    def __post_init__(self) -> None:
        if not self.id:
            raise ClinlabelError("Actor id is empty: set CLINLABEL_USER or log in as a named user.")
        if self.role not in ACTOR_ROLES:
            raise ClinlabelError(
                f"Role {self.role!r} is not one of {', '.join(ACTOR_ROLES)}: set CLINLABEL_ROLE "
                "or fix the roster."
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
    """Users, their roles and public keys, the owner and the policy (``clinlabel-roster.toml``).

    A roster grants roles only when its ``[owner]`` signed it (``<roster>.sig``, made by
    ``clinlabel roster sign``): an unsigned roster grants nothing beyond annotator.
    """

    path: Path | None = None
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    owner: dict[str, str] | None = None  # {"id", "public_key"}
    signed: bool = False
    unsigned_why: str = "no [owner] table"

    def listed_roles(self, user_id: str) -> list[str]:
        """Roles the roster file lists for ``user_id``, signed or not."""
        u = self.users.get(user_id)
        if u is None:
            return []
        roles = u.get("roles") or [u.get("role", "annotator")]
        return [str(r) for r in roles]

    def roles_of(self, user_id: str) -> list[str]:
        """Roles the roster grants ``user_id``: as listed when the owner signed it, else only
        annotator (empty when the user is not listed). The owner of a signed roster also has the
        ``owner`` role, listed under [[users]] or not (the [owner] table names a user)."""
        listed = self.listed_roles(user_id)
        if self.signed:
            return [*listed, OWNER] if self.is_owner(user_id) else listed
        return ["annotator"] if listed else []

    def is_owner(self, user_id: str) -> bool:
        """``user_id`` is the owner named in [owner] (who signed this roster, when signed)."""
        return self.owner is not None and self.owner.get("id") == user_id

    def public_key(self, user_id: str) -> str | None:
        """Base64 raw Ed25519 public key of ``user_id`` (None when not listed)."""
        u = self.users.get(user_id)
        return None if u is None else u.get("public_key")

    def public_keys(self, user_id: str) -> set[str]:
        """Every key listed for ``user_id`` (``public_key`` and ``public_keys``)."""
        u = self.users.get(user_id) or {}
        keys = [u.get("public_key"), *list(u.get("public_keys") or [])]
        return {str(k) for k in keys if k}

    def person_of(self, user_id: str) -> str:
        """The person behind ``user_id``: ids that share a ``person`` value or a public key are
        one person (so a reader cannot adjudicate their own read under a second id)."""
        return self._people().get(user_id, f"id:{user_id}")

    def _people(self) -> dict[str, str]:
        parent = {uid: uid for uid in self.users}

        def root(x: str) -> str:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        seen: dict[str, str] = {}
        for uid, u in self.users.items():
            marks = [f"key:{k}" for k in self.public_keys(uid)]
            if u.get("person"):
                marks.append(f"person:{u['person']}")
            for m in marks:
                if m in seen:
                    parent[root(uid)] = root(seen[m])
                else:
                    seen[m] = uid
        return {uid: f"id:{root(uid)}" for uid in self.users}

    def authority(self) -> str:
        """One line: which roster, whether its owner signed it, and the owner's key."""
        if self.path is None:
            return "no roster"
        if self.signed and self.owner:
            return (f"roster {self.path} signed by its owner {self.owner['id']!r} "
                    f"(key {self.owner['public_key'][:12]}…)")  # fmt: skip
        return f"roster {self.path} NOT signed by its owner ({self.unsigned_why}): annotator only"


def signature_path(roster_path: str | os.PathLike[str]) -> Path:
    """Where the owner's signature of a roster lies: ``<roster>.sig`` beside it."""
    p = Path(roster_path)
    return p.with_name(p.name + ".sig")


def roster_statement(roster_bytes: bytes) -> bytes:
    """The bytes the owner signs: a domain line, then the roster file's exact bytes."""
    return ROSTER_DOMAIN + roster_bytes


def _check_owner_signature(p: Path, raw: bytes, owner: dict[str, str] | None) -> str:
    """Empty when ``owner`` signed the roster bytes ``raw``; else why not."""
    if owner is None:
        return "no [owner] table"
    sig_path = signature_path(p)
    try:
        sig_text = sig_path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return f"no signature file {sig_path.name}"
    except (OSError, UnicodeDecodeError) as exc:
        return f"signature file {sig_path.name} unreadable ({exc})"
    try:
        pub = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(owner["public_key"], validate=True)
        )
        pub.verify(base64.b64decode(sig_text, validate=True), roster_statement(raw))
    except (InvalidSignature, ValueError, binascii.Error):
        return (
            f"{sig_path.name} is not the owner's signature of this roster (changed since signed?)"
        )
    return ""


def load_roster(path: str | os.PathLike[str]) -> Roster:
    """Read a roster TOML file and check its owner's signature; errors name the file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ClinlabelError(f"{p}: roster file not found; check CLINLABEL_ROSTER.") from None
    except IsADirectoryError:
        raise ClinlabelError(
            f"{p}: is a folder, not a roster file; give clinlabel-roster.toml."
        ) from None
    except UnicodeDecodeError:
        raise ClinlabelError(f"{p}: roster is not UTF-8 text; fix the file.") from None
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
    owner = _owner_table(p, data.get("owner"))
    why = _check_owner_signature(p, raw, owner)
    return Roster(p, users, dict(data.get("policy", {})), owner, not why, why or "")


def _owner_table(p: Path, owner: Any) -> dict[str, str] | None:
    if owner is None:
        return None
    if not isinstance(owner, dict) or not owner.get("id") or not owner.get("public_key"):
        raise ClinlabelError(
            f"{p}: [owner] needs id and public_key (the key 'clinlabel keys init' printed); fix it."
        )
    key = str(owner["public_key"])
    try:
        ok = len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        ok = False
    if not ok:
        raise ClinlabelError(
            f"{p}: [owner] public_key is not a base64 Ed25519 key; paste the one 'clinlabel keys "
            "init' printed."
        )
    return {"id": str(owner["id"]), "public_key": key}


def roster_file_near(near: str | os.PathLike[str] | None) -> Path | None:
    """The dataset's ``clinlabel-roster.toml`` beside ``near`` or one folder up, if any."""
    if near is None:
        return None
    p = Path(near)
    folder = p if p.is_dir() else p.parent
    for cand in (folder / ROSTER_NAME, folder.parent / ROSTER_NAME):
        if cand.is_file():
            return cand
    return None


def _dataset_roster(near: str | os.PathLike[str] | None) -> Roster | None:
    path = roster_file_near(near)
    return None if path is None else load_roster(path)


def find_roster(near: str | os.PathLike[str] | None = None) -> Roster | None:
    """The roster named by ``CLINLABEL_ROSTER``, else ``clinlabel-roster.toml`` beside ``near``.

    ``CLINLABEL_ROSTER`` may name only a roster its owner signed, and one with the same owner as
    the dataset's roster beside ``near`` when there is one; anything else is refused.
    """
    env = os.environ.get("CLINLABEL_ROSTER")
    dataset = _dataset_roster(near)
    if not env:
        return dataset
    roster = load_roster(env)
    if not roster.signed:
        raise PermissionRefused(
            f"{env}: CLINLABEL_ROSTER names a roster its owner did not sign ({roster.unsigned_why}); "
            f"it is not used. Unset CLINLABEL_ROSTER, or the owner runs 'clinlabel roster sign {env}'."
        )
    if dataset is not None and dataset.owner != roster.owner:
        raise PermissionRefused(
            f"{env}: CLINLABEL_ROSTER's owner is not the owner of the dataset roster "
            f"{dataset.path}; it is not used. Unset CLINLABEL_ROSTER."
        )
    return roster


def owner_pin(near: str | os.PathLike[str] | None = None) -> dict[str, str] | None:
    """The owner to pin in a new log's first record (``data["owner"]`` of ``image.open``):
    ``{"id", "public_key"}`` of the signed roster in force for ``near``, else None."""
    roster = find_roster(near)
    if roster is None or not roster.signed or roster.owner is None:
        return None
    return dict(roster.owner)


def current_actor(near: str | os.PathLike[str] | None = None, role: str | None = None) -> Actor:
    """The human acting now: env vars, else OS login; the roster (if any) names and checks roles.

    ``role`` asks for a specific role (e.g. adjudicator); it must be one a roster signed by its
    owner grants. Without such a roster nobody acts above annotator (checked when ``near``
    names an image or a roster is named; otherwise when acting on an image).
    """
    user_id = os.environ.get("CLINLABEL_USER") or login_name()
    wanted = role or os.environ.get("CLINLABEL_ROLE")
    roster = find_roster(near)
    name = user_id
    if roster is not None and roster.users:
        granted = roster.roles_of(user_id)
        if not granted:
            raise PermissionRefused(
                f"{roster.path}: user {user_id!r} is not in the roster; ask the dataset owner to "
                "add you."
            )
        name = str((roster.users.get(user_id) or {}).get("name", user_id))
        if wanted is None:
            wanted = granted[0]
        elif wanted not in granted:
            raise PermissionRefused(not_granted(roster, user_id, wanted))
    elif wanted not in (None, "annotator") and (near is not None or roster is not None):
        # with no image named yet (a napari session starting) the roster is not known: the role
        # is checked against each image's roster when acting on it
        raise PermissionRefused(not_granted(roster, user_id, wanted))
    return Actor(user_id, name, wanted or "annotator")


def not_granted(roster: Roster | None, user_id: str, wanted: str) -> str:
    """Why ``user_id`` may not act as ``wanted`` (one line naming the roster and the fix)."""
    if roster is None:
        return (f"{user_id!r} may not act as {wanted}: no roster signed by its owner is in force "
                "here, and without one nobody acts above annotator (put the dataset's signed "
                f"{ROSTER_NAME} beside the images; see 'clinlabel roster sign').")  # fmt: skip
    if not roster.signed and wanted in roster.listed_roles(user_id):
        return (f"{roster.path}: not signed by its owner ({roster.unsigned_why}), so it grants "
                f"{user_id!r} nothing beyond annotator; the owner runs 'clinlabel roster sign "
                f"{roster.path}'.")  # fmt: skip
    return (f"{roster.path}: user {user_id!r} may act as {', '.join(roster.roles_of(user_id))}, "
            f"not {wanted!r}.")  # fmt: skip


def login_name() -> str:
    """The OS login name (``uid<N>`` where the system has none)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): fall back to the uid
        return f"uid{os.getuid()}"
