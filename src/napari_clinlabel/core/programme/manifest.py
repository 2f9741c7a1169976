"""The dataset manifest ``clinlabel-dataset.json``: schemas and guideline in force, the reading
design, and the one owner-signed roster it names (``clinlabel-roster.toml`` in the same folder).

The owner signs the manifest with the roster key (``<manifest>.sig``: Ed25519 over
``clinlabel-dataset/1`` LF + the file's bytes), so the manifest and the roster share one
authority; a manifest whose owner is not the roster's owner, or whose signature does not match,
is refused. The design is written by hand as TOML (or JSON) and given to ``dataset init``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tomllib
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from napari_clinlabel.core.errors import InputError, PermissionRefused
from napari_clinlabel.core.log.audit_log import atomic_write_bytes, utc_now
from napari_clinlabel.core.log.identity import ROSTER_NAME, Roster, load_roster
from napari_clinlabel.core.log.signing import load_private_key, public_key_b64
from napari_clinlabel.core.schema import load_schema

MANIFEST_NAME = "clinlabel-dataset.json"
FORMAT = "clinlabel-dataset/1"
DOMAIN = b"clinlabel-dataset/1\n"

DEFAULT_DESIGN: dict[str, Any] = {
    "guideline": {"name": "guideline", "version": "1.0"},
    "schemas": [],
    "reading": {"readers_per_case": 1, "seed": 0, "honeypot_rate": 0.0, "double_read": []},
    "adjudication": {"dice_below": {"default": 0.8}, "high_stakes_grades": []},
}


def manifest_path(folder: str | os.PathLike[str]) -> Path:
    """The manifest file of the dataset in ``folder``."""
    return Path(folder) / MANIFEST_NAME


def signature_path(path: Path) -> Path:
    """``<manifest>.sig`` beside the manifest."""
    return path.with_name(path.name + ".sig")


def major(version: str) -> str:
    """The major part of a guideline version (``"2"`` of ``"2.1"``)."""
    return str(version).split(".", 1)[0]


def _rate(where: str, value: Any) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        r = -1.0
    if not 0.0 <= r <= 1.0:
        raise InputError(
            f"{where}: a rate must be a number from 0 to 1 (0.1 = 10 %), got {value!r}"
        )
    return r


def read_design(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """A reading design from a TOML or JSON file (defaults where a part is missing), checked."""
    design = json.loads(json.dumps(DEFAULT_DESIGN))
    if path is None:
        return design
    p = Path(path)
    try:
        raw = p.read_bytes().decode("utf-8")
        given = json.loads(raw) if p.suffix.lower() == ".json" else tomllib.loads(raw)
    except FileNotFoundError:
        raise InputError(f"{p}: no such design file; check the path") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: the design is not valid TOML/JSON ({exc}); fix the file") from None
    for key in ("guideline", "reading", "adjudication"):
        if key in given:
            if not isinstance(given[key], dict):
                raise InputError(f"{p}: [{key}] must be a table; fix the file")
            design[key].update(given[key])
    if "schemas" in given:
        design["schemas"] = given["schemas"]
    return check_design(design, str(p))


def check_design(design: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate a design (rates, readers per case, rules); the message names ``where``."""
    rd = design["reading"]
    n = rd.get("readers_per_case")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"{where}: reading.readers_per_case must be a whole number ≥ 1, got {n!r}")
    if not isinstance(rd.get("seed"), int):
        raise InputError(f"{where}: reading.seed must be a whole number, got {rd.get('seed')!r}")
    rd["honeypot_rate"] = _rate(f"{where}: reading.honeypot_rate", rd.get("honeypot_rate", 0))
    if "honeypot_min_accuracy" in rd:
        rd["honeypot_min_accuracy"] = _rate(
            f"{where}: reading.honeypot_min_accuracy", rd["honeypot_min_accuracy"]
        )
    rules = rd.get("double_read") or []
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise InputError(f"{where}: reading.double_read must be a list of [[reading.double_read]]")
    for i, rule in enumerate(rules):
        rule.setdefault("name", f"rule {i + 1}")
        rule["rate"] = _rate(f"{where}: double_read {rule['name']!r}", rule.get("rate"))
        if "at_least" in rule and "grade" not in rule:
            raise InputError(
                f"{where}: double_read {rule['name']!r} has at_least but no grade scale"
            )
    if not str(design["guideline"].get("version", "")).strip():
        raise InputError(f'{where}: guideline.version is required (e.g. "2.0")')
    design["guideline"]["version"] = str(design["guideline"]["version"])
    dice = design["adjudication"].get("dice_below") or {}
    if not isinstance(dice, dict):
        raise InputError(f"{where}: adjudication.dice_below must map labels to thresholds")
    for label, t in dice.items():
        _rate(f"{where}: adjudication.dice_below.{label}", t)
    refs = []
    for s in design.get("schemas") or []:
        schema = load_schema(s)
        refs.append({"name": str(s), **schema.ref()})
    design["schemas"] = refs
    return design


def roster_of(folder: Path) -> Roster:
    """The dataset's roster (``clinlabel-roster.toml`` in the dataset folder), signed by its owner."""
    path = folder / ROSTER_NAME
    if not path.is_file():
        raise InputError(
            f"{path}: the dataset has no roster; put the owner-signed {ROSTER_NAME} in {folder} "
            "(see 'clinlabel roster sign')"
        )
    roster = load_roster(path)
    if not roster.signed or roster.owner is None:
        raise PermissionRefused(
            f"{path}: not signed by its owner ({roster.unsigned_why}); a programme needs the "
            f"owner-signed roster: the owner runs 'clinlabel roster sign {path}'"
        )
    return roster


def write_manifest(folder: Path, design: dict[str, Any], owner_id: str) -> dict[str, Any]:
    """Write and sign a new manifest for ``design`` with ``owner_id``'s key; return it."""
    roster = roster_of(folder)
    assert roster.owner is not None
    key = load_private_key(owner_id)
    if owner_id != roster.owner["id"] or public_key_b64(key) != roster.owner["public_key"]:
        raise PermissionRefused(
            f"{roster.path}: its owner is {roster.owner['id']!r}; only the owner (with the key "
            f"the roster names) signs the dataset manifest, not {owner_id!r}"
        )
    old = manifest_path(folder)
    ds_id = json.loads(old.read_bytes()).get("id") if old.is_file() else None
    manifest = {
        "format": FORMAT,
        "id": ds_id or uuid.uuid4().hex,
        "written": utc_now(),
        "roster": {"file": ROSTER_NAME, "owner": dict(roster.owner)},
        **design,
    }
    raw = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    sig = base64.b64encode(key.sign(DOMAIN + raw)).decode("ascii")
    atomic_write_bytes(old, raw)
    atomic_write_bytes(signature_path(old), (sig + "\n").encode("ascii"))
    return manifest


def load_manifest(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], str, Roster]:
    """The manifest, the sha256 of its bytes and the roster; refused unless the roster's owner
    signed both and the manifest names that owner."""
    folder = Path(folder)
    path = manifest_path(folder)
    try:
        raw = path.read_bytes()
        manifest = json.loads(raw)
    except FileNotFoundError:
        raise InputError(
            f"{path}: not a dataset (no manifest); run 'clinlabel dataset init {folder}'"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: the manifest is not valid JSON ({exc}); restore it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not a {FORMAT} manifest; restore it or run dataset init")
    roster = roster_of(folder)
    named = (manifest.get("roster") or {}).get("owner")
    if named != roster.owner:
        raise PermissionRefused(
            f"{path}: names owner {(named or {}).get('id')!r} but the roster's owner is "
            f"{(roster.owner or {}).get('id')!r}; one authority only: the owner re-runs dataset init"
        )
    assert roster.owner is not None
    sig_path = signature_path(path)
    try:
        pub = Ed25519PublicKey.from_public_bytes(base64.b64decode(roster.owner["public_key"]))
        pub.verify(
            base64.b64decode(sig_path.read_text("ascii").strip(), validate=True), DOMAIN + raw
        )
    except FileNotFoundError:
        raise PermissionRefused(
            f"{sig_path}: missing; the owner re-runs 'clinlabel dataset init'"
        ) from None
    except (InvalidSignature, ValueError, binascii.Error, UnicodeDecodeError):
        raise PermissionRefused(
            f"{path}: not signed by the roster's owner (changed since signed?); the owner re-runs "
            "'clinlabel dataset init --update' with the intended design"
        ) from None
    return manifest, hashlib.sha256(raw).hexdigest(), roster


__all__ = [
    "MANIFEST_NAME", "DEFAULT_DESIGN", "manifest_path", "major", "read_design", "check_design",
    "roster_of", "write_manifest", "load_manifest",
]  # fmt: skip
