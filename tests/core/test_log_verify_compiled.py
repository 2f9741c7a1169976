"""The compiled verifier (``_logscan``) against the Python checks: the same report for every log.

The C path may only accept a record the Python checks (``strict=True``: every record
re-serialised) accept; everything else it hands to Python. So for any log, intact or tampered,
the default report must equal the strict one, field for field. The canonical-JSON proof is
also checked on its own against ``json.dumps`` (the spec's definition).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import shutil
import sysconfig
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from test_log_verify import reseal, spec_hash  # the spec-only writer's helpers

from napari_clinlabel.core import log_blocks
from napari_clinlabel.core.log_verify import verify_log

_logscan = log_blocks._logscan
needs_c = pytest.mark.skipif(_logscan is None, reason="the compiled verifier was not built")

IMAGE = {"uid": "1.2.840.99.1", "sha256": "ab" * 32}
OTHER_IMAGE = {"uid": "1.2.840.99.2", "sha256": "cd" * 32}
ANA = {"id": "ana", "name": "Ana Ñúñez", "role": "annotator"}
BEN = {"id": "ben", "name": 'Ben "B" O\'Neil', "role": "reviewer"}
MODEL = {"kind": "model", "name": "unet", "version": "1.0", "sha256": "ef" * 32}
KEY = Ed25519PrivateKey.generate()
PUB = base64.b64encode(
    KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
).decode()


def canonical(value) -> bytes:
    """The spec's canonical JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_of(rec: dict) -> bytes:
    """The writer's layout: canonical JSON with ``hash`` moved last."""
    body = canonical({k: v for k, v in rec.items() if k != "hash"})
    return body[:-1] + b',"hash":"' + rec["hash"].encode() + b'"}\n'


def build(n: int, objects_dir: Path | None = None) -> list[dict]:
    """A varied log from DESIGN.md alone: two actors taking turns in runs, model proposals,
    objects, floats, unicode and escapes, nested data, schema null or set, a signature, an
    export head, a clock stepping back, times of two lengths."""
    rng = random.Random(7)
    recs: list[dict] = []
    prev = "0" * 64
    for i in range(n):
        actor = BEN if (i // 13) % 3 == 2 else ANA
        frac = f".{i % 1000:03d}123" if i % 40 < 35 else ""
        rec = {
            "v": 1, "seq": i, "time": f"2026-11-26T10:{i // 60 % 60:02d}:{i % 60:02d}{frac}Z",
            "actor": actor, "action": "label.paint", "image": IMAGE,
            "target": {"labels": "segmentation"},
            "data": {"label": i % 5, "voxels": rng.randrange(1, 10**6), "tool": "brush",
                     "bbox": [[1, 2, 3], [4, 5, 6]], "mm": rng.random() * 100},
            "source": {"kind": "human"}, "schema": None, "prev": prev,
        }  # fmt: skip
        if i % 9 == 4:
            rec["source"], rec["action"] = MODEL, "proposal.add"
            rec["data"] = {"score": 0.875, "note": 'tab\there, "q", back\\slash, \x01, ✓ 𝔘'}
        if i % 6 == 1:
            blob = f"diff {i}".encode()
            digest = hashlib.sha256(blob).hexdigest()
            rec["data"]["objects"] = {"diff": digest, "after": hashlib.sha256(b"a").hexdigest()}
            if objects_dir is not None:
                (objects_dir / digest).write_bytes(blob)
                (objects_dir / hashlib.sha256(b"a").hexdigest()).write_bytes(b"a")
        if i % 10 == 3:
            rec["schema"] = {"id": "abdomen-ct", "version": "1.0", "sha256": "5e" * 32}
        if i % 17 == 16:
            rec["data"]["nested"] = {"z": [None, True, False, -0.0, 1e-07, 1e22, -12], "a": {}}
        if i == 25:
            rec["time"] = "2026-11-26T09:00:00Z"  # a clock stepped back: a warning
        if i == 30:
            rec["action"], rec["data"] = "export", {"head": {"seq": 20, "hash": recs[20]["hash"]}}
        if i == 31:
            target = {"seq": 5, "hash": recs[5]["hash"]}
            sig = base64.b64encode(KEY.sign(target["hash"].encode("ascii"))).decode()
            rec["action"], rec["target"], rec["actor"] = "sign", target, BEN
            rec["data"] = {"meaning": "review", "head": {"seq": 30, "hash": prev},
                           "public_key": PUB, "signature": sig}  # fmt: skip
        rec["hash"] = spec_hash(rec)
        prev = rec["hash"]
        recs.append(rec)
    return recs


def reports(path: Path, **kw):
    """(compiled, Python reference) reports; the compiled one single-pass and in chunks."""
    ref = verify_log(path, strict=True, workers=1, **kw)
    fast = verify_log(path, workers=1, **kw)
    return fast, ref


@pytest.fixture
def logdir(tmp_path):
    (tmp_path / "a.clinlabel" / "objects").mkdir(parents=True)
    return tmp_path


def _write(logdir: Path, lines: list[bytes]) -> Path:
    p = logdir / "a.clinlabel.jsonl"
    p.write_bytes(b"".join(lines))
    return p


def test_compiled_verifier_is_built_where_a_compiler_is():
    if shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC")
                    else "cc") is None:  # fmt: skip
        pytest.skip("no C compiler here: the Python path is the verifier")
    assert _logscan is not None, "pip install -e . should have built core/_logscan"


@needs_c
def test_an_intact_varied_log_gives_the_same_report(logdir):
    recs = build(120, logdir / "a.clinlabel" / "objects")
    p = _write(logdir, [line_of(r) for r in recs])
    for kw in ({}, {"check_objects": False}):
        fast, ref = reports(p, **kw)
        assert ref.ok and ref.records == 120 and ref.signatures_checked == 1
        assert any("before the previous record" in w for w in ref.warnings)
        assert fast == ref
    assert verify_log(p, workers=2) == ref


def _edit(recs, i, key, value, *, seal=False):
    recs = json.loads(json.dumps(recs))
    recs[i][key] = value
    if seal:
        reseal(recs, i)
    return [line_of(r) for r in recs]


def _raw(recs, i, old: bytes, new: bytes, *, rehash: str = "none"):
    """Line ``i`` with bytes replaced; ``rehash``: none, own (a buggy writer hashing the bytes it
    wrote) or canonical (a writer that hashed the right thing but wrote it loosely)."""
    lines = [line_of(r) for r in recs]
    line = lines[i]
    assert old in line, (old, line)
    line = line.replace(old, new, 1)
    if rehash != "none":
        body = line[: line.rindex(b',"hash":"')] + b"}"
        h = hashlib.sha256(body).hexdigest() if rehash == "own" else spec_hash(json.loads(line))
        line = line[: line.rindex(b',"hash":"')] + f',"hash":"{h}"}}\n'.encode()
        if i + 1 < len(lines):  # the next record points at the new hash, so the chain holds
            nxt = json.loads(lines[i + 1])
            nxt["prev"] = h
            nxt["hash"] = spec_hash(nxt)
            lines[i + 1] = line_of(nxt)
            rest = [json.loads(x) for x in lines[i + 1 :]]
            reseal(rest, 1) if len(rest) > 1 else None
            lines[i + 1 :] = [line_of(r) for r in rest]
    lines[i] = line
    return lines


def tamperings(recs):
    """(name, lines) for each kind of damage and each legal oddity."""
    yield "edited field", _edit(recs, 8, "target", {"labels": "other"})
    yield "edited and resealed", _edit(recs, 8, "target", {"labels": "other"}, seal=True)
    yield "new actor resealed", _edit(recs, 9, "actor", {"id": "cy", "name": "C", "role":
                                                          "adjudicator"}, seal=True)  # fmt: skip
    yield "bad role resealed", _edit(recs, 9, "actor", {"id": "cy", "name": "C", "role": "boss"},
                                     seal=True)  # fmt: skip
    yield "other image resealed", _edit(recs, 10, "image", OTHER_IMAGE, seal=True)
    yield "model without sha", _edit(recs, 11, "source", {"kind": "model", "name": "u",
                                                          "version": "1"}, seal=True)  # fmt: skip
    yield "seq as string", _edit(recs, 12, "seq", "12", seal=True)
    yield "v as float", _edit(recs, 12, "v", 1.0, seal=True)
    yield "v as true", _edit(recs, 12, "v", True, seal=True)
    yield "empty action", _edit(recs, 13, "action", "", seal=True)
    yield "action sign without signature", _edit(recs, 13, "action", "sign", seal=True)
    yield "data a list", _edit(recs, 14, "data", [1, 2], seal=True)
    yield "data head wrong", _edit(recs, 14, "data", {"head": {"seq": 2, "hash": "0" * 64}},
                                   seal=True)  # fmt: skip
    yield "schema a string", _edit(recs, 15, "schema", "abdomen", seal=True)
    yield "time with a space", _edit(recs, 15, "time", "2026-11-26 10:00:15Z", seal=True)
    yield "time backwards", _edit(recs, 16, "time", "2026-11-26T08:00:00.000123Z", seal=True)
    yield "time of another length", _edit(recs, 16, "time", "2026-11-26T10:00:16.5Z", seal=True)
    yield "objects not digests", _edit(recs, 7, "data", {"objects": {"diff": "AB" * 32}},
                                       seal=True)  # fmt: skip
    yield "objects missing file", _edit(recs, 7, "data", {"objects": {"diff": "12" * 32}},
                                        seal=True)  # fmt: skip
    yield "objects a list", _edit(recs, 7, "data", {"objects": ["12" * 32]}, seal=True)
    yield "extra field", _edit(recs, 17, "extra", 1, seal=True)
    yield "NaN resealed", _edit(recs, 18, "data", {"x": float("nan")}, seal=True)
    yield "huge int resealed", _edit(recs, 18, "data", {"x": 10**40}, seal=True)
    lines = [line_of(r) for r in recs]
    yield "deleted", lines[:5] + lines[6:]
    yield "swapped", lines[:5] + [lines[6], lines[5]] + lines[7:]
    yield "duplicated", lines[:6] + [lines[5]] + lines[6:]
    yield "torn tail", lines + [lines[0][:40]]
    yield "empty line", lines[:5] + [b"\n"] + lines[5:]
    yield "crlf", [x[:-1] + b"\r\n" for x in lines]
    yield "uppercase hash", lines[:3] + [lines[3][:-67] + lines[3][-67:].upper()] + lines[4:]
    yield "not utf-8", lines[:3] + [lines[3].replace(b"brush", b"br\xffsh")] + lines[4:]
    yield "raw control char", _raw(recs, 3, b"brush", b"br\x01sh", rehash="own")
    # loose but correctly hashed (valid by the spec) and loose hashed as written (invalid)
    for rehash in ("own", "canonical"):
        yield f"spaces {rehash}", _raw(recs, 3, b'"tool":"brush"', b'"tool": "brush"',
                                       rehash=rehash)  # fmt: skip
        yield f"ascii escape {rehash}", _raw(recs, 0, "Ñ".encode(), b"\\u00d1", rehash=rehash)
        yield f"slash escape {rehash}", _raw(recs, 3, b'"brush"', b'"br\\/sh"', rehash=rehash)
        yield f"unsorted keys {rehash}", _raw(recs, 3, b'"label":', b'"zlabel":', rehash=rehash)
        yield f"float form {rehash}", _raw(recs, 4, b'"score":0.875', b'"score":8.75e-1',
                                           rehash=rehash)  # fmt: skip
        yield f"int as float {rehash}", _raw(recs, 4, b'"score":0.875', b'"score":1.0',
                                             rehash=rehash)  # fmt: skip
        yield f"u escape {rehash}", _raw(recs, 4, b"\\u0001", b"\\u0001\\u000a",
                                         rehash=rehash)  # fmt: skip
        yield f"duplicate key {rehash}", _raw(recs, 3, b'"tool":"brush"',
                                              b'"tool":"brush","tool":"brush"',
                                              rehash=rehash)  # fmt: skip


@needs_c
def test_every_tampering_and_oddity_gives_the_python_report(logdir):
    objects = logdir / "a.clinlabel" / "objects"
    recs = build(40, objects)
    seen_broken, first_bad = set(), {}
    for name, lines in tamperings(recs):
        p = _write(logdir, lines)
        for kw in ({"check_objects": False}, {}):
            fast, ref = reports(p, **kw)
            assert fast == ref, (name, kw, fast, ref)
        first_bad[name] = ref.first_bad_seq
        if not ref.ok and ref.first_bad_seq < 30:
            seen_broken.add(name)
    # the damage is real: these fail at the damaged record, before any anchor
    for name in ("edited field", "bad role resealed", "other image resealed", "deleted",
                 "swapped", "duplicated", "uppercase hash", "spaces own", "unsorted keys own",
                 "ascii escape own", "float form own", "objects missing file"):  # fmt: skip
        assert name in seen_broken, name
    # the same content written loosely but hashed canonically is valid by the spec
    for name in ("spaces canonical", "ascii escape canonical", "float form canonical"):
        assert first_bad[name] is None, name
    # a resealed chain holds until the export head at seq 30, which names the old record 20
    for name in ("new actor resealed", "edited and resealed", "slash escape canonical"):
        assert first_bad[name] == 30, (name, first_bad[name])


@needs_c
def test_an_altered_object_file_is_caught_at_its_first_record(logdir):
    objects = logdir / "a.clinlabel" / "objects"
    recs = build(60, objects)
    p = _write(logdir, [line_of(r) for r in recs])
    digest = recs[13]["data"]["objects"]["diff"]
    (objects / digest).write_bytes(b"altered")
    fast, ref = reports(p)
    assert not ref.ok and ref.first_bad_seq == 13 and "altered" in ref.reason
    assert fast == ref
    (objects / digest).unlink()
    fast, ref = reports(p)
    assert not ref.ok and ref.first_bad_seq == 13 and "missing" in ref.reason
    assert fast == ref


@needs_c
def test_random_byte_damage_gives_the_python_report(logdir):
    recs = build(60, logdir / "a.clinlabel" / "objects")
    good = b"".join(line_of(r) for r in recs)
    rng = random.Random(11)
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.choice((1, 1, 2, 5))):
            at = rng.randrange(len(data))
            how = rng.random()
            if how < 0.5:
                data[at] = rng.randrange(256)
            elif how < 0.75:
                del data[at]
            else:
                data.insert(at, rng.choice(b' "\\{}[],:0a\n'))
        p = _write(logdir, [bytes(data)])
        fast, ref = reports(p)
        assert fast == ref, (fast, ref)


@needs_c
def test_a_record_longer_than_the_read_buffer(logdir, monkeypatch):
    monkeypatch.setattr(log_blocks, "_FAST_BLOCK", 256)
    recs = build(30, logdir / "a.clinlabel" / "objects")
    recs[5]["data"]["note"] = "x" * 5000
    reseal(recs, 5)
    p = _write(logdir, [line_of(r) for r in recs])
    fast, ref = reports(p)
    assert ref.ok and fast == ref


def test_without_the_compiled_module_the_report_is_the_same(logdir, monkeypatch):
    recs = build(40, logdir / "a.clinlabel" / "objects")
    cases = [("intact", [line_of(r) for r in recs])] + list(tamperings(recs))[:25]
    expected = {}
    for name, lines in cases:
        expected[name] = verify_log(_write(logdir, lines), strict=True, workers=1)
    monkeypatch.setattr(log_blocks, "_logscan", None)
    for name, lines in cases:
        assert verify_log(_write(logdir, lines), workers=1) == expected[name], name


# -- the canonical-JSON proof on its own, against json.dumps ---------------------------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=6), kids, max_size=4
        )
    ),  # fmt: skip
    max_leaves=12,
)


def _escaped_key(value) -> bool:
    """A dict key that json writes with an escape (the C proof declines those: Python decides)."""
    if isinstance(value, dict):
        return any(
            any(c in k for c in '"\\') or any(ord(c) < 0x20 for c in k) or _escaped_key(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_escaped_key(v) for v in value)
    return False


@needs_c
@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_json_is_recognised(value):
    text = canonical(value)
    assert _logscan.is_canonical(text) is not _escaped_key(value)


@needs_c
@settings(max_examples=600, deadline=None)
@given(json_values, st.data())
def test_nothing_but_canonical_json_is_accepted(value, data):
    text = bytearray(canonical(value))
    variants = [
        json.dumps(value, sort_keys=True).encode(),  # spaces
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),  # ASCII escapes
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),  # unsorted
    ]
    for _ in range(3):  # byte damage
        if text:
            at = data.draw(st.integers(0, len(text) - 1))
            text[at] = data.draw(st.sampled_from(b' "\\{}[],:0-.eE+1u/\x01\xc3\xa9\xff'))
        variants.append(bytes(text))
    for v in variants:
        if not _logscan.is_canonical(v):
            continue
        parsed = json.loads(v)  # accepted bytes must be valid JSON …
        assert canonical(parsed) == v  # … and exactly the spec's canonical form


@needs_c
def test_float_tokens_are_judged_as_repr_writes_them():
    """Floats are where canonical JSON is subtle (shortest repr, exponent ranges, '.0')."""
    rng = random.Random(3)
    tokens = {"0.0", "-0.0", "1e16", "1e+16", "1e-05", "0.0001", "0.00001", "100.0", "100.00",
              "0.50", "1.10", "1E5", "10000000000000000.0", "1000000000000000.0", "9007199254740993.0",
              "123456789012345.6", "0.1234567890123456", "5e-324", "1.7976931348623157e+308"}  # fmt: skip
    for _ in range(4000):
        x = rng.choice([rng.random(), rng.uniform(-1e6, 1e6), 10 ** rng.uniform(-8, 20),
                        round(rng.uniform(0, 1000), rng.randrange(0, 6))])  # fmt: skip
        tokens.update({repr(x), f"{x:.15g}", f"{x:.17g}", f"{x:.3f}", f"{x:.1f}", f"{x:e}"})
    for token in tokens:
        b = token.encode()
        try:
            expected = canonical(json.loads(b)) == b
        except ValueError:
            expected = False
        assert _logscan.is_canonical(b) is expected, token


@needs_c
def test_threads_checking_chunks_side_by_side_give_the_python_report(logdir):
    """Chunks checked by threads while the C checker runs without the GIL (and takes it back
    for floats it cannot prove by itself): same report as one Python pass, intact and broken."""
    recs = build(3000, logdir / "a.clinlabel" / "objects")
    p = _write(logdir, [line_of(r) for r in recs])
    ref = verify_log(p, strict=True, workers=1)
    assert ref.ok and ref.records == 3000
    for workers in (2, 4, 7):
        assert verify_log(p, workers=workers) == ref
    lines = [line_of(r) for r in recs]
    lines[2500] = lines[2500].replace(b'"tool":"brush"', b'"tool":"brusH"')
    p = _write(logdir, lines)
    ref = verify_log(p, strict=True, workers=1)
    assert not ref.ok and ref.first_bad_seq == 2500
    for workers in (2, 4, 7):
        assert verify_log(p, workers=workers) == ref
