"""A real Orthanc PACS for the tests (Debian packages ``orthanc`` + ``orthanc-dicomweb``):
started on free loopback ports with a temporary configuration and storage, HTTP basic auth on,
and the hemato node registered as a DICOM modality."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

BINARY = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "hemato", "s3cret-test"
AET = "ORTHANC"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str | None:
    """Why Orthanc cannot run here, or None."""
    if not Path(BINARY).exists():
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb; .ci/run does)"
    if not DICOMWEB_PLUGIN.exists():
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


class Orthanc:
    """One Orthanc process; ``rest(method, path)`` talks to its REST API."""

    def __init__(self, root: Path, node_port: int, node_aet: str = "HEMATO") -> None:
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        cfg = {
            "Name": "hemato-test",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "DicomModalities": {"hemato": {"AET": node_aet, "Host": "127.0.0.1", "Port": node_port}},
            "DicomCheckCalledAet": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
            "StableAge": 1,
            "SaveJobs": False,
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "orthanc.json").write_text(json.dumps(cfg, indent=2))
        self.log = open(root / "orthanc.log", "w")  # closed in stop()
        self.proc = subprocess.Popen(
            [BINARY, f"--logdir={root}", str(root / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        deadline = time.time() + 30
        while True:
            try:
                if self.rest("GET", "/system").get("DicomAet") == AET:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Orthanc did not start: {(root / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def rest(self, method: str, path: str, **kw: Any) -> Any:
        r = requests.request(method, self.url + path, auth=(USER, PASSWORD), timeout=120, **kw)
        r.raise_for_status()
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.content

    def upload(self, files: list[Path]) -> dict[str, str]:
        """POST each file to /instances; returns the Orthanc IDs of its study and series."""
        out = {}
        for f in files:
            r = self.rest("POST", "/instances", data=f.read_bytes())
            out = {"study": r["ParentStudy"], "series": r["ParentSeries"]}
        return out

    def send_to_node(self, series_id: str) -> None:
        """Orthanc C-STOREs the series to the hemato node (synchronously)."""
        self.rest("POST", "/modalities/hemato/store", json={"Resources": [series_id], "Synchronous": True})

    def series_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        found = self.rest("POST", "/tools/find", json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid}})
        if not found:
            return []
        return self.rest("GET", f"/studies/{found[0]}/series")

    def results(self, study_uid: str, timeout_s: float = 0.0) -> dict[str, list[dict[str, Any]]]:
        """The study's SEG and SR series (``{"SEG": [...], "SR": [...]}``), waiting up to ``timeout_s``
        for at least one of each."""
        deadline = time.time() + timeout_s
        while True:
            series = self.series_of_study(study_uid)
            out = {m: [s for s in series if s["MainDicomTags"].get("Modality") == m] for m in ("SEG", "SR")}
            if (out["SEG"] and out["SR"]) or time.time() >= deadline:
                return out
            time.sleep(0.5)

    def instance_file(self, series: dict[str, Any]) -> bytes:
        return self.rest("GET", f"/instances/{series['Instances'][0]}/file")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
