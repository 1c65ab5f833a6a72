"""Send DICOM files to an AE with C-STORE (pynetdicom), one association per call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def check_ae_title(title: str) -> str:
    """``title`` if it is a valid AE title (1-16 characters of printable ASCII, no backslash, not
    all spaces), else ``ValueError`` naming it."""
    if not (0 < len(title) <= 16) or not title.strip() or "\\" in title or not all(32 <= ord(c) < 127 for c in title):
        raise ValueError(f"AE title {title!r}: 1-16 printable ASCII characters, no backslash, not all spaces")
    return title


@dataclass(frozen=True)
class Destination:
    """A remote AE: ``AE_TITLE@host:port``."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        try:
            ae, addr = text.split("@", 1)
            host, port = addr.rsplit(":", 1)
            if not host or not ae.strip() or len(ae) > 16:
                raise ValueError
            return cls(check_ae_title(ae), host, int(port))
        except ValueError:
            raise ValueError(
                f"destination {text!r}: expected AE_TITLE@host:port (AE title of 1-16 characters)"
            ) from None

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def send(files: list[Path], dest: Destination, calling_ae: str = "HEMATO", timeout_s: float = 30.0) -> None:
    """C-STORE ``files`` to ``dest``; raises ``RuntimeError`` (one line) unless every one is stored."""
    from pydicom import dcmread
    from pynetdicom import AE

    datasets = [dcmread(f) for f in files]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        raise RuntimeError(f"{dest}: association rejected, aborted or never connected")
    try:
        for f, ds in zip(files, datasets):
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:
                raise RuntimeError(f"{dest}: no C-STORE response for {f.name} (timed out or aborted)")
            if code not in (0x0000, 0xB000, 0xB006, 0xB007):
                raise RuntimeError(f"{dest}: C-STORE of {f.name} failed with status 0x{code:04X}")
    finally:
        if assoc.is_established:
            assoc.release()
