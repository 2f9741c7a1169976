"""Roster authority: the owner's signature, roles an unsigned roster grants, CLINLABEL_ROSTER,
owner pinning, one person under two ids. Signatures are made with ``cryptography`` directly."""

from __future__ import annotations

import base64

import pytest
from support.trusted_roster import roster_text, sign_file, write_roster

from napari_clinlabel.core.errors import ClinlabelError, PermissionRefused
from napari_clinlabel.core.log.identity import current_actor, find_roster, load_roster, owner_pin


def test_a_roster_grants_roles_only_when_its_owner_signed_it(tmp_path, monkeypatch):
    path = write_roster(tmp_path, {"rev": ["annotator", "reviewer"]}, sign=False)
    r = load_roster(path)
    assert not r.signed and "no signature file" in r.unsigned_why
    assert r.listed_roles("rev") == ["annotator", "reviewer"]
    assert r.roles_of("rev") == ["annotator"] and r.roles_of("nobody") == []
    assert "NOT signed" in r.authority()
    sign_file(path, "owner")
    r = load_roster(path)
    assert r.signed and r.roles_of("rev") == ["annotator", "reviewer"]
    assert "signed by its owner 'owner'" in r.authority()
    # one byte changed after signing: the signature no longer holds
    path.write_text(path.read_text().replace('"reviewer"', '"adjudicator"'))
    r = load_roster(path)
    assert not r.signed and "changed since signed" in r.unsigned_why
    assert r.roles_of("rev") == ["annotator"]


def test_a_roster_signed_by_someone_else_grants_nothing(tmp_path):
    path = write_roster(tmp_path, {"ann": ["annotator", "reviewer"]}, owner="owner", sign=False)
    sign_file(path, "ann")  # the annotator signs the owner's roster with her own key
    r = load_roster(path)
    assert not r.signed and r.roles_of("ann") == ["annotator"]


def test_owner_table_errors_name_the_file(tmp_path):
    p = tmp_path / "clinlabel-roster.toml"
    p.write_text('[owner]\nid = "o"\n')
    with pytest.raises(ClinlabelError, match="owner. needs id and public_key"):
        load_roster(p)
    p.write_text('[owner]\nid = "o"\npublic_key = "not base64!"\n')
    with pytest.raises(ClinlabelError, match="not a base64 Ed25519 key"):
        load_roster(p)
    p.write_text(f'[owner]\nid = "o"\npublic_key = "{base64.b64encode(b"x" * 31).decode()}"\n')
    with pytest.raises(ClinlabelError, match=str(p.name)):
        load_roster(p)


def test_own_roster_via_clinlabel_roster_is_refused_unless_its_owner_signed_it(
    tmp_path, monkeypatch
):
    dataset = tmp_path / "ds"
    write_roster(dataset, {"ann": ["annotator"], "rev": ["reviewer"]})
    image = dataset / "a.png"
    # the annotator's own roster, unsigned, granting herself reviewer
    mine = write_roster(tmp_path / "mine", {"ann": ["reviewer"]}, owner="ann", sign=False)
    monkeypatch.setenv("CLINLABEL_ROSTER", str(mine))
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")
    with pytest.raises(PermissionRefused, match="CLINLABEL_ROSTER names a roster its owner did"):
        current_actor(image)
    # signed by herself as its owner: still not the dataset's owner
    sign_file(mine, "ann")
    with pytest.raises(PermissionRefused, match="not the owner of the dataset roster"):
        current_actor(image)
    # away from any dataset roster it is a signed roster, but the log pins the real owner
    assert owner_pin(tmp_path / "elsewhere" / "b.png") == load_roster(mine).owner


def test_without_a_signed_roster_nobody_acts_above_annotator(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINLABEL_USER", "ann")
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")
    with pytest.raises(PermissionRefused, match="without one nobody acts above annotator"):
        current_actor(tmp_path / "a.png")
    write_roster(tmp_path, {"ann": ["annotator", "reviewer"]}, sign=False)
    with pytest.raises(PermissionRefused, match="not signed by its owner"):
        current_actor(tmp_path / "a.png")
    sign_file(tmp_path / "clinlabel-roster.toml", "owner")
    actor = current_actor(tmp_path / "a.png")
    assert (actor.id, actor.role) == ("ann", "reviewer")
    monkeypatch.setenv("CLINLABEL_ROLE", "annotator")
    assert current_actor(tmp_path / "b" / "x.png").role == "annotator"


def test_owner_pin_is_the_signed_rosters_owner(tmp_path):
    path = write_roster(tmp_path, {"a": ["annotator"]})
    pin = owner_pin(tmp_path / "img.png")
    assert pin == {"id": "owner", "public_key": load_roster(path).owner["public_key"]}
    path.with_name(path.name + ".sig").unlink()
    assert owner_pin(tmp_path / "img.png") is None
    assert owner_pin(tmp_path / "nowhere" / "deeper" / "x.png") is None


def test_ids_sharing_a_key_or_a_person_are_one_person(tmp_path):
    text = roster_text({"ann": ["annotator"], "adj": ["adjudicator"]})
    ann_key = load_key_line(text, "ann")
    text += f'[[users]]\nid = "ann2"\nroles = ["adjudicator"]\npublic_key = "{ann_key}"\n\n'
    text += '[[users]]\nid = "bob"\nroles = ["annotator"]\nperson = "Robert Smith"\n\n'
    text += '[[users]]\nid = "rob"\nroles = ["adjudicator"]\nperson = "Robert Smith"\n'
    p = tmp_path / "clinlabel-roster.toml"
    p.write_text(text)
    r = load_roster(p)
    assert r.person_of("ann") == r.person_of("ann2")
    assert r.person_of("bob") == r.person_of("rob")
    assert r.person_of("adj") != r.person_of("ann")
    assert find_roster(tmp_path / "x.png").path == p


def load_key_line(text: str, uid: str) -> str:
    block = text.split(f'id = "{uid}"', 1)[1]
    return block.split('public_key = "', 1)[1].split('"', 1)[0]


def test_the_owner_named_only_in_owner_table_acts_as_owner(tmp_path, monkeypatch):
    """The README's roster names the owner only under [owner]: she is a user with the owner role
    (signed roster), nothing more; unsigned, the [owner] table grants her nothing."""
    path = write_roster(tmp_path, {"ann": ["annotator"]}, owner="olga")
    r = load_roster(path)
    assert r.signed and r.roles_of("olga") == ["owner"] and r.roles_of("ann") == ["annotator"]
    monkeypatch.setenv("CLINLABEL_USER", "olga")
    monkeypatch.delenv("CLINLABEL_ROLE", raising=False)
    who = current_actor(path.parent / "x.nii.gz")
    assert (who.id, who.role) == ("olga", "owner")
    monkeypatch.setenv("CLINLABEL_ROLE", "reviewer")  # a role the roster does not grant her
    with pytest.raises(PermissionRefused, match="not 'reviewer'"):
        current_actor(path.parent / "x.nii.gz")
    path.write_text(path.read_text() + "\n")  # changed after signing: unsigned
    assert load_roster(path).roles_of("olga") == []


def test_a_user_entry_may_not_claim_the_owner_role(tmp_path):
    path = write_roster(tmp_path, {"ann": ["owner"]}, owner="olga")
    with pytest.raises(ClinlabelError, match="unknown role 'owner'"):
        load_roster(path)
