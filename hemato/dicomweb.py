"""DICOMweb in and out (dicomweb-client): WADO-RS to fetch a study's CT series, STOW-RS to
store hemato's SEG + SR back (``python -m hemato.predict --dicomweb URL --study UID [--stow]``).

Credentials come from the environment only: ``HEMATO_DICOMWEB_TOKEN`` (a bearer token) or
``HEMATO_DICOMWEB_USER`` + ``HEMATO_DICOMWEB_PASSWORD`` (HTTP basic). A URL with a user or
password in it is refused, so they never reach a command line, a log or a report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hemato.data.readers.errors import InputError

ENV_TOKEN, ENV_USER, ENV_PASSWORD = "HEMATO_DICOMWEB_TOKEN", "HEMATO_DICOMWEB_USER", "HEMATO_DICOMWEB_PASSWORD"
MODALITY, SERIES_UID = "00080060", "0020000E"


def client(url: str) -> Any:
    """A ``DICOMwebClient`` for ``url`` (the service root, e.g. ``http://pacs/dicom-web``)."""
    import requests
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_user_pass

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(url, "not an http(s) DICOMweb URL")
    if parts.username or parts.password:
        raise InputError(
            parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl(),
            f"credentials in the URL: give them in {ENV_USER} / {ENV_PASSWORD} (or {ENV_TOKEN})",
        )
    token, user, password = (os.environ.get(k) for k in (ENV_TOKEN, ENV_USER, ENV_PASSWORD))
    if token:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
    elif user is not None and password is not None:
        session = create_session_from_user_pass(user, password)
    elif user is not None or password is not None:
        raise InputError(url, f"{ENV_USER} and {ENV_PASSWORD} must be set together")
    else:
        session = requests.Session()
    return DICOMwebClient(url=url, session=session)


def _http(url: str, what: str, e: Exception) -> InputError:
    status = getattr(getattr(e, "response", None), "status_code", None)
    why = f"HTTP {status}" if status is not None else e.__class__.__name__
    if status in (401, 403):
        why += f" (credentials: {ENV_USER} / {ENV_PASSWORD} or {ENV_TOKEN})"
    return InputError(url, f"{what} failed: {why}")


def _value(attrs: dict[str, Any], tag: str) -> str:
    values = attrs.get(tag, {}).get("Value") or [""]
    return str(values[0])


def retrieve(url: str, study: str, folder: str | Path, series: str | None = None) -> list[Path]:
    """Fetch ``series`` (or every CT series of ``study``, found by QIDO-RS) into ``folder``,
    one Part-10 file per instance; returns the files. Other modalities (SEG, SR, ...) are left."""
    import requests

    c = client(url)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if series:
            wanted = [series]
        else:
            found = c.search_for_series(study_instance_uid=study, fields=[MODALITY])
            wanted = [_value(s, SERIES_UID) for s in found if _value(s, MODALITY) == "CT"]
            if not wanted:
                kinds = sorted({_value(s, MODALITY) for s in found})
                raise InputError(
                    url,
                    f"study {study} has no CT series ({'series of ' + ', '.join(kinds) if kinds else 'nothing found'})",
                )
        files = []
        for uid in wanted:
            for ds in c.retrieve_series(study, uid):
                path = folder / f"{ds.SOPInstanceUID}.dcm"
                ds.save_as(path, enforce_file_format=True)
                files.append(path)
    except requests.RequestException as e:
        raise _http(url, f"retrieving study {study}" + (f" series {series}" if series else ""), e) from None
    if not files:
        raise InputError(url, f"study {study}: no instances retrieved")
    return files


def store(url: str, files: list[Path]) -> None:
    """STOW-RS ``files`` (hemato's seg.dcm / sr.dcm) to ``url``; raises InputError if refused."""
    import requests
    from pydicom import dcmread

    c = client(url)
    try:
        response = c.store_instances([dcmread(f) for f in files])
    except requests.RequestException as e:
        raise _http(url, "storing " + ", ".join(f.name for f in files), e) from None
    failed = response.get("FailedSOPSequence") if response is not None else None
    if failed:
        raise InputError(url, f"the server refused {len(failed)} of {len(files)} instances")
