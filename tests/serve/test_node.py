"""The node's SCP without a PACS: who may associate, what is on disk when a C-STORE is answered."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from hemato.serve.node import Node, NodeConfig
from hemato.serve.scu import Destination, send
from tests.data.files import write_dicom_series
from tests.serve.orthanc import free_port


@pytest.fixture
def node(tmp_path: Path):
    n = Node(NodeConfig(queue=tmp_path / "q", host="127.0.0.1", port=free_port(), allowed=["PACS"], quiet_s=3600))
    n.model = object()  # the model is not needed to receive (nothing is processed within the hour)
    n.start()
    yield n
    n.stop()


def test_only_allowed_callers_and_instances_on_disk_when_acknowledged(
    node: Node, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hu = np.full((3, 32, 32), 30.0)
    files = write_dicom_series(tmp_path / "s", hu, series="1.2.826.0.1.3680043.8.498.77")
    me = Destination("HEMATO", "127.0.0.1", node.cfg.port)
    with caplog.at_level(logging.WARNING, logger="hemato.serve"):
        with pytest.raises(RuntimeError, match="association rejected"):
            send(files, me, calling_ae="INTRUDER")
        deadline = time.time() + 5
        while not [r for r in caplog.records if r.getMessage() == "association_rejected"] and time.time() < deadline:
            time.sleep(0.05)
    (rej,) = [r for r in caplog.records if r.getMessage() == "association_rejected"]
    assert rej.fields["calling_ae"] == "INTRUDER" and rej.fields["allowed"] == ["PACS"]
    assert not list((node.queue.root / "incoming").iterdir())
    send(files, me, calling_ae="PACS")  # returns after every C-STORE was answered with success
    stored = sorted((node.queue.root / "incoming" / "1.2.826.0.1.3680043.8.498.77").glob("*.dcm"))
    assert len(stored) == 3 and not list(stored[0].parent.glob("*.part"))
    from pydicom import dcmread

    sent = {dcmread(f).SOPInstanceUID: dcmread(f).PixelData for f in files}
    for f in stored:
        ds = dcmread(f)
        assert f.stem == ds.SOPInstanceUID and ds.PixelData == sent[ds.SOPInstanceUID]
    assert node.step() == 0  # not quiet yet: nothing processed


def test_destination_parsing() -> None:
    assert str(Destination.parse("ORTHANC@pacs.local:4242")) == "ORTHANC@pacs.local:4242"
    for bad in ("pacs.local:4242", "ORTHANC@pacs", "A_TITLE_LONGER_THAN_16@h:1"):
        with pytest.raises(ValueError, match="AE_TITLE@host:port"):
            Destination.parse(bad)


def test_cli_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import socket

    from hemato.cli import main as hemato

    with pytest.raises(SystemExit) as e:
        hemato(["serve", "--help"])
    assert e.value.code == 0 and "--destination AE@HOST:PORT" in capsys.readouterr().out
    assert hemato(["serve", "--queue", str(tmp_path / "q"), "--ae-title", "A_TITLE_OF_17_CHR"]) == 2
    assert capsys.readouterr().err.strip().endswith("1-16 printable ASCII characters, no backslash, not all spaces")
    assert hemato(["serve", "--queue", str(tmp_path / "q"), "--destination", "pacs:4242"]) == 2
    assert "expected AE_TITLE@host:port" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = hemato(["serve", "--queue", str(tmp_path / "q"), "--host", "127.0.0.1", "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1] == f"hemato.serve: error: cannot listen on 127.0.0.1:{port} (Address already in use)"
