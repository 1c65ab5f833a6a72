"""The node's on-disk queue: nothing acknowledged is lost on a restart.

Layout under the queue folder::

    incoming/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   acknowledged, not yet processed
    incoming/<SeriesInstanceUID>/.arrived                first arrival (ns), for the order
    done/<SeriesInstanceUID>/instances/*.dcm              what the result was computed from
    done/<SeriesInstanceUID>/result/                      predict's report folder (seg.dcm, sr.dcm, ...)
    done/<SeriesInstanceUID>/fingerprint                  sha256 of the series' sorted SOP UIDs
    done/<SeriesInstanceUID>/sent                         written once SEG + SR were delivered
    failed/<SeriesInstanceUID>/{instances/, reason.txt}   refused, with the one-line reason

An instance is written to a ``.part`` file, flushed to disk and renamed into place before the
C-STORE is answered. A series' fingerprint covers every instance known for it (processed before
or newly arrived), so a series sent twice is processed once, and one that grew is processed again.
Written here because no DICOM library keeps such a queue (MONAI Deploy's Informatics Gateway
does, as a .NET service with a database).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

UNPARSED = "unparsed"  # instances whose SeriesInstanceUID could not be read
_SAFE = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")


def safe_name(uid: str | None, fallback: str) -> str:
    """A UID as a folder/file name; anything that is not a plain UID becomes ``fallback``."""
    uid = (uid or "").strip().rstrip("\0")
    return uid if _SAFE.match(uid) and uid not in (".", "..") else fallback


def fingerprint(sop_uids: list[str]) -> str:
    """sha256 of the sorted SOP Instance UIDs of a series (hex)."""
    return hashlib.sha256("\n".join(sorted(sop_uids)).encode()).hexdigest()


def _fsync_write(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


@dataclass(frozen=True)
class Ready:
    """A series to process: its folder in incoming/ and every instance file known for it."""

    series: str
    files: list[Path]
    fingerprint: str


class SeriesQueue:
    """incoming / done / failed folders under ``root`` (created if missing)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for d in ("incoming", "done", "failed"):
            (self.root / d).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ receiving (SCP threads)
    def store(self, series_uid: str | None, sop_uid: str | None, data: bytes) -> Path:
        """Write one instance (a complete DICOM file's bytes) durably; returns its path."""
        series = safe_name(series_uid, UNPARSED)
        sop = safe_name(sop_uid, f"instance-{hashlib.sha256(data).hexdigest()[:16]}")
        folder = self.root / "incoming" / series
        folder.mkdir(parents=True, exist_ok=True)
        arrived = folder / ".arrived"
        if not arrived.exists():
            _fsync_write(arrived, str(time.time_ns()).encode())
        path = folder / f"{sop}.dcm"
        _fsync_write(path, data)
        os.utime(folder)  # the series' last arrival, for the quiet period
        return path

    # ------------------------------------------------------------ the worker
    def ready(self, quiet_s: float, now: float | None = None) -> list[Ready]:
        """Series quiet for ``quiet_s`` seconds, in order of first arrival."""
        now = time.time() if now is None else now
        out = []
        for folder in (self.root / "incoming").iterdir():
            if not folder.is_dir():
                continue
            files = sorted(folder.glob("*.dcm"))
            if not files or now - folder.stat().st_mtime < quiet_s:
                continue
            arrived = folder / ".arrived"
            order = int(arrived.read_text() or 0) if arrived.exists() else 0
            known = {f.name: f for f in self.instances(folder.name)}
            known.update({f.name: f for f in files})  # a newer copy of an instance wins
            out.append((order, Ready(folder.name, sorted(known.values()), fingerprint([n[:-4] for n in known]))))
        return [r for _, r in sorted(out, key=lambda t: (t[0], t[1].series))]

    def instances(self, series: str) -> list[Path]:
        """The instances a done series was computed from."""
        return sorted((self.root / "done" / series / "instances").glob("*.dcm"))

    def done_fingerprint(self, series: str) -> str | None:
        f = self.root / "done" / series / "fingerprint"
        return f.read_text().strip() if f.exists() else None

    def _absorb(self, series: str, dest: Path) -> None:
        """Move incoming/<series>'s instances into ``dest/instances`` and drop incoming/<series>."""
        incoming = self.root / "incoming" / series
        (dest / "instances").mkdir(parents=True, exist_ok=True)
        for f in incoming.glob("*.dcm"):
            os.replace(f, dest / "instances" / f.name)
        shutil.rmtree(incoming, ignore_errors=True)

    def duplicate(self, r: Ready) -> None:
        """A series already processed with the same fingerprint: its copies join done/, unprocessed."""
        self._absorb(r.series, self.root / "done" / r.series)

    def finish(self, r: Ready, result: Path) -> Path:
        """Record ``result`` (predict's report folder) as the series' result; returns done/<series>.

        The fingerprint is written before incoming/ is emptied: a node stopped in between finds
        the series again, sees it is a duplicate and still delivers the result."""
        dest = self.root / "done" / r.series
        dest.mkdir(parents=True, exist_ok=True)
        for stale in ("sent", "fingerprint"):
            (dest / stale).unlink(missing_ok=True)
        if (dest / "result").exists():
            shutil.rmtree(dest / "result")
        os.replace(result, dest / "result")
        _fsync_write(dest / "fingerprint", r.fingerprint.encode())
        self._absorb(r.series, dest)
        return dest

    def fail(self, r: Ready, reason: str) -> Path:
        """Move the series to failed/<series> with ``reason.txt``; returns that folder."""
        dest = self.root / "failed" / r.series
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        self._absorb(r.series, dest)
        (dest / "reason.txt").write_text(reason.strip() + "\n")
        return dest

    def mark_sent(self, series: str) -> None:
        _fsync_write(self.root / "done" / series / "sent", str(time.time()).encode())

    def unsent(self) -> list[str]:
        """Done series whose SEG + SR were not delivered yet (e.g. the node was stopped)."""
        done = self.root / "done"
        return sorted(d.name for d in done.iterdir() if (d / "fingerprint").exists() and not (d / "sent").exists())
