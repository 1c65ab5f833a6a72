"""The node's on-disk queue: durable, ordered by first arrival, fingerprinted, nothing dropped."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hemato.serve.queue import UNPARSED, SeriesQueue, fingerprint, safe_name


def _age(q: SeriesQueue, series: str, seconds: float) -> None:
    folder = q.root / "incoming" / series
    t = time.time() - seconds
    os.utime(folder, (t, t))


def test_instances_are_on_disk_grouped_and_ready_after_the_quiet_period(tmp_path: Path) -> None:
    q = SeriesQueue(tmp_path / "q")
    p = q.store("1.2.3", "1.2.3.1", b"first")
    q.store("1.2.3", "1.2.3.2", b"second")
    assert p == tmp_path / "q" / "incoming" / "1.2.3" / "1.2.3.1.dcm" and p.read_bytes() == b"first"
    assert not list((tmp_path / "q" / "incoming" / "1.2.3").glob("*.part"))
    assert q.ready(quiet_s=60) == []  # just arrived
    _age(q, "1.2.3", 61)
    (r,) = q.ready(quiet_s=60)
    assert r.series == "1.2.3" and [f.name for f in r.files] == ["1.2.3.1.dcm", "1.2.3.2.dcm"]
    assert r.fingerprint == fingerprint(["1.2.3.2", "1.2.3.1"])


def test_series_come_out_in_order_of_first_arrival(tmp_path: Path) -> None:
    q = SeriesQueue(tmp_path)
    for series in ("9.9", "1.1", "5.5"):
        q.store(series, f"{series}.1", b"x")
        time.sleep(0.01)
    q.store("9.9", "9.9.2", b"late instance of the first series")
    for s in ("9.9", "1.1", "5.5"):
        _age(q, s, 10)
    assert [r.series for r in q.ready(quiet_s=1)] == ["9.9", "1.1", "5.5"]


def test_unsafe_uids_become_safe_names(tmp_path: Path) -> None:
    assert safe_name("../../etc", "x") == "x" and safe_name("1.2.840.10008", "x") == "1.2.840.10008"
    q = SeriesQueue(tmp_path)
    p = q.store(None, "../evil", b"data")
    assert p.parent == tmp_path / "incoming" / UNPARSED and p.name.startswith("instance-")


def test_finish_fail_duplicate_and_delivery_state(tmp_path: Path) -> None:
    q = SeriesQueue(tmp_path)
    q.store("1.2", "1.2.1", b"a")
    _age(q, "1.2", 10)
    (r,) = q.ready(1)
    result = tmp_path / "out"
    result.mkdir()
    (result / "sr.dcm").write_bytes(b"sr")
    done = q.finish(r, result)
    assert (done / "result" / "sr.dcm").exists() and (done / "instances" / "1.2.1.dcm").exists()
    assert not (tmp_path / "incoming" / "1.2").exists() and q.done_fingerprint("1.2") == r.fingerprint
    assert q.unsent() == ["1.2"]
    q.mark_sent("1.2")
    assert q.unsent() == []
    # the same series sent again: the same fingerprint (known instances + the new copies)
    q.store("1.2", "1.2.1", b"a")
    _age(q, "1.2", 10)
    (again,) = q.ready(1)
    assert again.fingerprint == r.fingerprint
    q.duplicate(again)
    assert not (tmp_path / "incoming" / "1.2").exists() and q.unsent() == []
    # the series grew: a new fingerprint over old and new instances
    q.store("1.2", "1.2.2", b"b")
    _age(q, "1.2", 10)
    (grown,) = q.ready(1)
    assert grown.fingerprint == fingerprint(["1.2.1", "1.2.2"]) != r.fingerprint
    assert [f.name for f in grown.files] == ["1.2.1.dcm", "1.2.2.dcm"]
    # a refusal keeps the instances and the reason
    q.store("7.7", "7.7.1", b"mr")
    _age(q, "7.7", 10)
    bad = [x for x in q.ready(1) if x.series == "7.7"][0]
    failed = q.fail(bad, "7.7.1.dcm: Modality is MR, not CT\n")
    assert (failed / "reason.txt").read_text() == "7.7.1.dcm: Modality is MR, not CT\n"
    assert (failed / "instances" / "7.7.1.dcm").read_bytes() == b"mr"
