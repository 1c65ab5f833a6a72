"""hemato in a DICOM network, end to end, with a screenshot of Orthanc's explorer (README,
docs/dicom_network.md):

    .venv/bin/python experiments/dicom_network_demo.py [--out docs/dicom_network_orthanc.png]

Starts Orthanc (tests/serve/orthanc.py: temporary config, loopback ports, basic auth) and
``python -m hemato.serve`` with the shipped model, uploads the shipped sample's patient 081 as a
CT series (tests.data.files.sample_hu), asks Orthanc to send it to the node, waits for the SEG
and SR to come back, and photographs the study page of Orthanc Explorer in headless Chromium.
Prints the node's log and the volume in the SR.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import headless_chromium  # noqa: E402
from tests.data.files import sample_hu, write_dicom_series  # noqa: E402
from tests.serve.orthanc import PASSWORD, USER, Orthanc, free_port  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "dicom_network_orthanc.png"))
    a = ap.parse_args()
    from pydicom.uid import generate_uid

    from hemato.dicom_sr import read_dicom_sr

    tmp = Path(tempfile.mkdtemp(prefix="hemato-demo-"))
    port = free_port()
    pacs = Orthanc(tmp / "orthanc", node_port=port)
    node = subprocess.Popen(
        [sys.executable, "-m", "hemato.serve", "--queue", str(tmp / "queue"), "--host", "127.0.0.1"]
        + ["--port", str(port), "--allow", "ORTHANC", "--quiet", "2"]
        + ["--destination", f"ORTHANC@127.0.0.1:{pacs.dicom_port}", "--log", str(tmp / "queue" / "node.jsonl")],
        cwd=ROOT,
    )
    try:
        study = generate_uid()
        tags = {"StudyInstanceUID": study, "StudyDescription": "CT HEAD (ct-ich sample 081)", "SeriesDescription": "Head 5 mm"}
        files = write_dicom_series(tmp / "series", sample_hu("081"), spacing=(0.45, 0.45), name="Sample^CtIch", pid="081", tags=tags)
        while not (tmp / "queue" / "node.jsonl").exists() or "listening" not in (tmp / "queue" / "node.jsonl").read_text():
            time.sleep(0.5)
        ids = pacs.upload(files)
        t0 = time.perf_counter()
        pacs.send_to_node(ids["series"])
        res = pacs.results(study, timeout_s=300)
        print(f"SEG + SR in Orthanc {time.perf_counter() - t0:.1f} s after the C-STORE")
        (tmp / "sr.dcm").write_bytes(pacs.instance_file(res["SR"][0]))
        print("SR:", read_dicom_sr(tmp / "sr.dcm"))
        print((tmp / "queue" / "node.jsonl").read_text())
        with headless_chromium() as driver:
            driver.set_window_size(1200, 800)
            driver.execute_cdp_cmd("Network.enable", {})
            auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {auth}"}})
            driver.get(f"{pacs.url}/app/explorer.html#study?uuid={ids['study']}")
            time.sleep(4)
            driver.save_screenshot(a.out)
        print(f"screenshot -> {a.out}")
    finally:
        node.terminate()
        node.wait(timeout=60)
        pacs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
