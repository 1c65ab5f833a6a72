"""Pseudonymous patient identifiers: no name, ID or folder name of a patient leaves the machine
in reports, logs, W&B or file names unless the user opts in.

``pseudonym(name)`` = ``"anon-" + sha256(salt + name)[:12]``: stable for one salt, not
reversible without it. The salt comes from ``HEMATO_SALT`` or, failing that, a random salt
created once in ``~/.config/hemato/salt`` (keep it private and keep it to get the same
pseudonyms across runs).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path


def _salt() -> str:
    env = os.environ.get("HEMATO_SALT")
    if env:
        return env
    path = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "hemato" / "salt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"salt.{os.getpid()}.tmp")
        tmp.write_text(secrets.token_hex(16))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def pseudonym(name: str, salt: str | None = None) -> str:
    """Stable pseudonymous id of ``name`` (e.g. a DICOM folder or file name)."""
    digest = hashlib.sha256(((salt if salt is not None else _salt()) + "\x00" + name).encode()).hexdigest()
    return f"anon-{digest[:12]}"
