"""hemato.dicomweb without a server: what is refused before anything is sent (the round trips
against Orthanc are in tests/serve/test_orthanc.py)."""

from __future__ import annotations

import pytest

from hemato.data.readers.errors import InputError
from hemato.dicomweb import ENV_PASSWORD, ENV_TOKEN, ENV_USER, client
from hemato.predict import main


def test_credentials_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in (ENV_TOKEN, ENV_USER, ENV_PASSWORD):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(InputError, match="credentials in the URL") as e:
        client("https://me:hunter2@pacs.example:8443/dicom-web")
    assert "hunter2" not in str(e.value) and "pacs.example:8443" in str(e.value)
    with pytest.raises(InputError, match="not an http"):
        client("ftp://pacs/dicom-web")
    monkeypatch.setenv(ENV_USER, "me")
    with pytest.raises(InputError, match="must be set together"):
        client("https://pacs/dicom-web")
    monkeypatch.setenv(ENV_PASSWORD, "hunter2")
    assert client("https://pacs/dicom-web")._session.auth == ("me", "hunter2")
    monkeypatch.setenv(ENV_TOKEN, "tok")
    assert client("https://pacs/dicom-web")._session.headers["Authorization"] == "Bearer tok"


def test_cli_options_go_together(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["--input", "x", "--output", "o", "--stow"])
    assert "--study and --stow go with --dicomweb" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--dicomweb", "https://pacs/dicom-web", "--output", "o"])
    assert "--dicomweb needs --study" in capsys.readouterr().err
