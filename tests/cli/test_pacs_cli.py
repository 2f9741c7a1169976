"""``clinlabel pacs find|pull|push`` against a real Orthanc; bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest
from support.dicom_series_factory import phantom_stored, write_series
from support.orthanc import orthanc  # noqa: F401 - fixture

from napari_clinlabel.cli import main


@pytest.fixture
def auth_env(monkeypatch, orthanc):  # noqa: F811
    monkeypatch.setenv("CLINLABEL_PACS_PASSWORD", orthanc.password)
    return ["--user", orthanc.username]


def test_push_find_pull(orthanc, auth_env, tmp_path, capsys):  # noqa: F811
    s = write_series(tmp_path / "src", phantom_stored((3, 8, 8)))
    assert main(["pacs", "push", orthanc.url, str(tmp_path / "src"), *auth_env]) == 0
    assert capsys.readouterr().out.strip() == "3 instances stored"
    assert orthanc.instance_count() == 3
    assert main(["pacs", "find", orthanc.url, "--modality", "CT", "--json", *auth_env]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["study_uid"] == s.meta["study_uid"]
    assert found[0]["series"][0]["series_uid"] == s.series_uid
    assert found[0]["series"][0]["instances"] == 3
    assert main(["pacs", "find", orthanc.url, *auth_env]) == 0
    text = capsys.readouterr().out
    assert s.series_uid in text and "PHI-ID-0042" not in text and "Leak" not in text
    out = tmp_path / "dl"
    args = ["pacs", "pull", orthanc.url, "--series", s.series_uid, "-o", str(out), *auth_env]
    assert main(args) == 0
    assert "3 fetched, 0 already on disk" in capsys.readouterr().out
    assert main(args) == 0  # resumable: nothing fetched twice
    assert "0 fetched, 3 already on disk" in capsys.readouterr().out
    assert len(list((out / s.series_uid).glob("*.dcm"))) == 3


@pytest.mark.parametrize(
    "argv,env,message",
    [
        (["find", "{url}"], {}, "refused the credentials (HTTP 401)"),
        (["find", "{url}", "--user", "reader"], {"CLINLABEL_PACS_PASSWORD": "bad"},
         "refused the credentials"),
        (["find", "{url}", "--user", "reader"], {}, "set CLINLABEL_PACS_PASSWORD"),
        (["find", "http://127.0.0.1:9/dicom-web", "--timeout", "2"], {}, "cannot connect"),
        (["pull", "{url}", "--series", "1.2.3.99", "-o", "{tmp}"],
         {"CLINLABEL_PACS_PASSWORD": "test-only-secret", "_user": "reader"}, "no series 1.2.3.99"),
        (["pull", "{url}", "--study", "abc", "-o", "{tmp}"], {}, "not a DICOM Study Instance UID"),
        (["push", "{url}", "{tmp}/none.dcm"], {}, "no such file"),
        (["find", "{url}", "--insecure", "--ca-bundle", "{tmp}"], {}, "not both"),
    ],
)  # fmt: skip
def test_bad_input_one_line_exit_2(orthanc, tmp_path, capsys, monkeypatch, argv, env, message):  # noqa: F811
    monkeypatch.delenv("CLINLABEL_PACS_PASSWORD", raising=False)
    env = dict(env)
    user = env.pop("_user", None)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    args = [a.format(url=orthanc.url, tmp=tmp_path) for a in argv]
    if user:
        args += ["--user", user]
    assert main(["pacs", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
