"""hemato as a DICOM node: receive CT series, send back SEG + SR.

    python -m hemato.serve --queue /var/lib/hemato --port 11112 --ae-title HEMATO \\
        --allow ORTHANC --destination ORTHANC@pacs.local:4242

Instances are on disk (``--queue``: incoming/, done/, failed/) before each C-STORE is
acknowledged; a series is predicted once no instance has arrived for ``--quiet`` seconds, and
its SEG + SR are sent to ``--destination``. A restart resumes whatever was queued or not yet
delivered. Logs are JSON lines on stderr (or ``--log FILE``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from hemato.serve.node import JsonLines, Node, NodeConfig
from hemato.serve.scu import Destination, check_ae_title


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hemato.serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--queue", required=True, help="queue folder (incoming/, done/, failed/)")
    ap.add_argument("--ae-title", default="HEMATO", help="this node's AE title (default HEMATO)")
    ap.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    ap.add_argument("--port", type=int, default=11112)
    ap.add_argument(
        "--allow", action="append", metavar="AE", help="a calling AE title to accept (repeat; default: any)"
    )
    ap.add_argument("--destination", metavar="AE@HOST:PORT", help="where SEG + SR are sent (default: kept in done/)")
    ap.add_argument(
        "--quiet",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds without a new instance before a series is processed",
    )
    ap.add_argument(
        "--retry", type=float, default=30.0, metavar="S", help="seconds before a failed delivery is retried"
    )
    ap.add_argument("--checkpoint", help="model (default: the shipped real-CT model)")
    ap.add_argument("--threads", type=int, help="CPU threads (default: physical cores)")
    ap.add_argument("--log", help="JSON-lines log file (default: stderr)")
    ap.add_argument("--verbose", action="store_true", help="also log every received instance")
    a = ap.parse_args(argv)
    if a.log:
        Path(a.log).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(a.log) if a.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("hemato.serve")
    logger.handlers[:] = [handler]  # the CLI owns the node's log
    logger.setLevel(logging.DEBUG if a.verbose else logging.INFO)
    try:
        for title in [a.ae_title, *(a.allow or [])]:
            check_ae_title(title)
        dest = Destination.parse(a.destination) if a.destination else None
    except ValueError as e:
        print(f"hemato.serve: error: {e}", file=sys.stderr)
        return 2
    cfg = NodeConfig(
        queue=Path(a.queue),
        ae_title=a.ae_title,
        host=a.host,
        port=a.port,
        allowed=a.allow,
        destination=dest,
        quiet_s=a.quiet,
        retry_s=a.retry,
        checkpoint=a.checkpoint,
        predict_options={"threads": a.threads} if a.threads else {},
    )
    node = Node(cfg)
    try:
        node.start()
    except OSError as e:
        print(f"hemato.serve: error: cannot listen on {a.host}:{a.port} ({e.strerror or e})", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: node._stop.set())
    node.wait()
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
