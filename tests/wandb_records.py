"""Read an offline W&B run file (``run-*.wandb``) in tests: its config and summary.

Hand-written because wandb (0.31) no longer ships a Python reader for its record log (the
reading moved to its Go core), and offline runs no longer write config.yaml /
wandb-summary.json. The file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of
records (4-byte CRC, 2-byte little-endian length, 1-byte type: 1 full, 2 first, 3 middle,
4 last), whose payloads are ``wandb.proto`` ``Record`` messages.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    out, pos, buf = [], HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = struct.unpack("<HB", data[pos + 4 : pos + 7])
        payload = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 2):
            buf = payload
        elif kind in (3, 4):
            buf += payload
        if kind in (1, 4):
            r = pb.Record()
            r.ParseFromString(buf)
            out.append(r)
        if kind == 0 and length == 0:
            break
    return out


def config_and_summary(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's config (key -> value) and final summary (key -> value), as W&B stored them."""
    cfg: dict[str, Any] = {}
    summ: dict[str, Any] = {}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "config":
            for it in r.config.update:
                cfg[it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
        elif kind == "summary":
            for it in r.summary.update:
                summ[it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
        elif kind == "run":
            for it in r.run.config.update:
                cfg[it.key or "/".join(it.nested_key)] = json.loads(it.value_json)
    return cfg, summ
