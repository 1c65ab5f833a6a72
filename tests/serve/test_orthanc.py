"""hemato in a DICOM network, against a real Orthanc (issue 25): C-STORE in, SEG + SR back,
DICOMweb fetch and STOW, refusals in failed/, a killed node that still delivers, 20 series in a row.

The node runs as its own process (``python -m hemato.serve``) with the shipped model; the
series are the shipped ct-ich sample's slices in HU (``tests.data.files.sample_hu``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serve.orthanc import PASSWORD, USER, Orthanc, free_port, missing

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=str(missing()))]
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Series:
    files: list[Path]
    study: str
    series: str


def make_series(folder: Path, hu: np.ndarray, modality: str = "CT") -> Series:
    from pydicom.uid import generate_uid

    from tests.data.files import write_dicom_series

    study, series = generate_uid(), generate_uid()
    files = write_dicom_series(
        folder, hu, spacing=(0.45, 0.45), modality=modality, series=series, tags={"StudyInstanceUID": study}
    )
    return Series(files, study, series)


@pytest.fixture(scope="module")
def hu() -> np.ndarray:
    from tests.data.files import sample_hu

    return sample_hu("081")


@pytest.fixture(scope="module")
def cli(hu: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What ``python -m hemato.predict --input <series> --dicom-sr`` reports for the sample series."""
    from hemato.predict import main

    tmp = tmp_path_factory.mktemp("cli")
    make_series(tmp / "series", hu)
    assert main(["--input", str(tmp / "series"), "--output", str(tmp / "out"), "--dicom-sr"]) == 0
    return json.loads((tmp / "out" / "report.json").read_text())


class NodeProcess:
    """``python -m hemato.serve`` as a child process, logging JSON lines to queue/node.jsonl."""

    def __init__(self, queue: Path, pacs: Orthanc, port: int) -> None:
        self.queue, self.pacs, self.port, self.proc = queue, pacs, port, None
        self.log = queue / "node.jsonl"

    def start(self, quiet: float = 1.0, destination_port: int | None = None) -> None:
        n = len(self.events())
        port = destination_port or self.pacs.dicom_port
        cmd = [sys.executable, "-m", "hemato.serve", "--queue", str(self.queue), "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--allow", "ORTHANC", "--quiet", str(quiet), "--retry", "2"]
        cmd += ["--destination", f"ORTHANC@127.0.0.1:{port}", "--log", str(self.log)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
        self.wait_for(lambda e: e["event"] == "listening", after=n, timeout_s=120)

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def wait_for(self, match: Any, after: int = 0, timeout_s: float = 120.0, count: int = 1) -> list[dict[str, Any]]:
        deadline = time.time() + timeout_s
        while True:
            hits = [e for e in self.events()[after:] if match(e)]
            if len(hits) >= count:
                return hits
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the node exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                raise AssertionError(f"timed out; last events: {self.events()[-5:]}")
            time.sleep(0.25)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    port = free_port()
    o = Orthanc(tmp_path_factory.mktemp("orthanc"), node_port=port)
    o.node_port = port
    yield o
    o.stop()


@pytest.fixture(scope="module")
def node(pacs: Orthanc, tmp_path_factory: pytest.TempPathFactory):
    n = NodeProcess(tmp_path_factory.mktemp("queue"), pacs, pacs.node_port)
    n.start()
    yield n
    n.stop()


def _sr(pacs: Orthanc, series: dict[str, Any], tmp: Path) -> dict[str, Any]:
    from hemato.dicom_sr import read_dicom_sr

    (tmp / "sr.dcm").write_bytes(pacs.instance_file(series))
    return read_dicom_sr(tmp / "sr.dcm")


def test_a_series_sent_by_orthanc_comes_back_as_seg_and_sr(pacs, node, hu, cli, tmp_path: Path) -> None:
    from pydicom import dcmread

    s = make_series(tmp_path / "s", hu)
    n = len(node.events())
    ids = pacs.upload(s.files)
    pacs.send_to_node(ids["series"])  # Orthanc -> hemato: C-STORE
    res = pacs.results(s.study, timeout_s=180)
    assert len(res["SEG"]) == 1 and len(res["SR"]) == 1, res
    sr = _sr(pacs, res["SR"][0], tmp_path)
    assert cli["volume_ml"] > 0
    assert sr["volume_ml"] == pytest.approx(cli["volume_ml"], rel=1e-6)
    assert sr["status"] == cli["volume_status"]
    (tmp_path / "seg.dcm").write_bytes(pacs.instance_file(res["SEG"][0]))
    seg = dcmread(tmp_path / "seg.dcm")
    assert seg.Modality == "SEG" and seg.StudyInstanceUID == s.study
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == s.series
    done = node.wait_for(lambda e: e["event"] == "sent" and e["series"] == s.series, after=n)
    assert done[0]["files"] == ["seg.dcm", "sr.dcm"]
    assert (node.queue / "done" / s.series / "instances").is_dir()
    assert len(list((node.queue / "done" / s.series / "instances").glob("*.dcm"))) == len(s.files)
    # the same series sent again is not processed twice
    n = len(node.events())
    pacs.send_to_node(ids["series"])
    node.wait_for(lambda e: e["event"] == "duplicate" and e["series"] == s.series, after=n)
    res = pacs.results(s.study)
    assert len(res["SEG"]) == 1 and len(res["SR"]) == 1


def test_refused_series_end_in_failed_with_their_reason(pacs, node, hu, tmp_path: Path) -> None:
    from pydicom import dcmread

    mr = make_series(tmp_path / "mr", hu[:3], modality="MR")
    broken = make_series(tmp_path / "broken", hu[:3])
    ds = dcmread(broken.files[1])
    ds.PixelData = ds.PixelData[:1000]  # a truncated instance
    ds.save_as(broken.files[1])
    n = len(node.events())
    for s in (mr, broken):
        pacs.send_to_node(pacs.upload(s.files)["series"])
    failed = node.wait_for(lambda e: e["event"] == "failed", after=n, count=2)
    reasons = {e["series"]: e["reason"] for e in failed}
    assert "Modality is MR, not CT" in reasons[mr.series]
    assert "pixel data cannot be read" in reasons[broken.series]
    for s in (mr, broken):
        folder = node.queue / "failed" / s.series
        assert (folder / "reason.txt").read_text().strip() == reasons[s.series]
        assert len(list((folder / "instances").glob("*.dcm"))) == len(s.files)
    bad_file = reasons[broken.series].split(":")[0]
    assert Path(bad_file).parent == node.queue / "failed" / broken.series / "instances" and Path(bad_file).exists()
    assert pacs.results(mr.study)["SR"] == [] and pacs.results(broken.study)["SR"] == []


def test_a_node_killed_after_acknowledging_still_delivers(pacs, node, hu, tmp_path: Path) -> None:
    s = make_series(tmp_path / "s", hu[5:10])
    node.kill()
    node.start(quiet=3600)  # receives, but would wait an hour before processing
    pacs.send_to_node(pacs.upload(s.files)["series"])  # returns once every C-STORE was acknowledged
    assert len(list((node.queue / "incoming" / s.series).glob("*.dcm"))) == len(s.files)
    node.kill()  # SIGKILL: nothing is flushed or cleaned up
    n = len(node.events())
    node.start(quiet=1.0)
    node.wait_for(lambda e: e["event"] == "sent" and e["series"] == s.series, after=n, timeout_s=180)
    res = pacs.results(s.study, timeout_s=30)
    assert len(res["SEG"]) == 1 and len(res["SR"]) == 1


def test_undeliverable_results_stay_queued_and_are_retried(pacs, node, hu, tmp_path: Path) -> None:
    s = make_series(tmp_path / "s", hu[2:6])
    node.kill()
    n = len(node.events())
    node.start(destination_port=free_port())  # nothing listens there
    pacs.send_to_node(pacs.upload(s.files)["series"])
    fails = node.wait_for(lambda e: e["event"] == "send_failed" and e["series"] == s.series, after=n, count=2)
    assert "association rejected, aborted or never connected" in fails[0]["reason"]  # one line, then a retry
    done = node.queue / "done" / s.series
    assert (done / "result" / "sr.dcm").exists() and not (done / "sent").exists()
    assert pacs.results(s.study)["SR"] == []
    node.stop()
    n = len(node.events())
    node.start()  # the right destination: what was queued is delivered
    node.wait_for(lambda e: e["event"] == "sent" and e["series"] == s.series, after=n)
    assert (done / "sent").exists() and len(pacs.results(s.study, timeout_s=30)["SR"]) == 1


def test_twenty_series_back_to_back_all_delivered_in_order(pacs, node, hu, tmp_path: Path) -> None:
    series = [make_series(tmp_path / f"s{k:02d}", hu[6 + k % 5 : 9 + k % 5]) for k in range(20)]
    ids = [pacs.upload(s.files)["series"] for s in series]
    n = len(node.events())
    t0 = time.perf_counter()
    for i in ids:
        pacs.send_to_node(i)
    sent = node.wait_for(
        lambda e: e["event"] == "sent" and e["series"] in {s.series for s in series}, after=n, count=20, timeout_s=600
    )
    seconds = time.perf_counter() - t0
    assert [e["series"] for e in sent] == [s.series for s in series]
    for s in series:
        res = pacs.results(s.study, timeout_s=30)
        assert len(res["SEG"]) == 1 and len(res["SR"]) == 1
    peak = max(e["peak_rss_mb"] for e in node.events()[n:] if e["event"] == "done")
    print(f"20 series (3 slices of 650 px each) delivered in {seconds:.1f} s; node peak RSS {peak:.0f} MB")
    assert peak < 2000, f"node peak RSS {peak:.0f} MB"


def test_dicomweb_fetch_and_stow(pacs, hu, cli, tmp_path: Path, monkeypatch, capsys) -> None:
    from hemato.dicomweb import ENV_PASSWORD, ENV_USER
    from hemato.predict import main

    s = make_series(tmp_path / "s", hu)
    pacs.upload(s.files)
    monkeypatch.setenv(ENV_USER, USER)
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    args = ["--dicomweb", pacs.dicomweb, "--study", s.study]
    assert main([*args, "--output", str(tmp_path / "o1"), "--stow"]) == 0
    report = json.loads((tmp_path / "o1" / "report.json").read_text())
    assert report["volume_ml"] == pytest.approx(cli["volume_ml"], rel=1e-6)
    res = pacs.results(s.study, timeout_s=30)
    assert len(res["SEG"]) == 1 and len(res["SR"]) == 1
    assert _sr(pacs, res["SR"][0], tmp_path)["volume_ml"] == pytest.approx(report["volume_ml"], rel=1e-6)
    # the study now holds a SEG and an SR: only its CT series is fetched, and the result is the same
    assert main([*args, "--series", s.series, "--output", str(tmp_path / "o2")]) == 0
    assert main([*args, "--output", str(tmp_path / "o3")]) == 0
    assert json.loads((tmp_path / "o3" / "report.json").read_text())["volume_ml"] == report["volume_ml"]
    capsys.readouterr()
    # wrong credentials: one line, and the password is nowhere
    monkeypatch.setenv(ENV_PASSWORD, "not-the-password")
    assert main([*args, "--output", str(tmp_path / "o4")]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "not-the-password" not in err and PASSWORD not in err
    # credentials in the URL are refused before anything is sent
    url = pacs.dicomweb.replace("http://", f"http://{USER}:{PASSWORD}@")
    assert main(["--dicomweb", url, "--study", s.study, "--output", str(tmp_path / "o5")]) == 2
    err = capsys.readouterr().err
    assert "credentials in the URL" in err and PASSWORD not in err
    assert os.environ[ENV_USER] == USER  # (monkeypatch restores the environment)
