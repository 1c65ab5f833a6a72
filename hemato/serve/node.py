"""The DICOM node: a Storage SCP in front of the queue, one worker thread running predict.

The model is loaded once (:func:`hemato.weights.load.load_model`) and every series goes through
:func:`hemato.predict.pipeline.predict` with ``dicom_seg`` and ``dicom_sr``: the node computes exactly
what ``python -m hemato.predict --input <series folder> --dicom-sr`` computes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hemato.inference import peak_rss_mb
from hemato.serve.queue import Ready, SeriesQueue
from hemato.serve.scu import Destination, send

log = logging.getLogger("hemato.serve")


class JsonLines(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, event and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        return json.dumps(
            {
                "time": t,
                "level": record.levelname.lower(),
                "event": record.getMessage(),
                **getattr(record, "fields", {}),
            }
        )


def _emit(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


@dataclass
class NodeConfig:
    """How the node listens, where it sends, and how it predicts."""

    queue: Path
    ae_title: str = "HEMATO"
    host: str = "0.0.0.0"
    port: int = 11112
    allowed: list[str] | None = None  # calling AE titles accepted; None: any
    destination: Destination | None = None
    quiet_s: float = 5.0  # a series is processed after this long without a new instance
    retry_s: float = 30.0  # a failed delivery is retried after this long
    poll_s: float = 0.5
    checkpoint: str | None = None
    predict_options: dict[str, Any] = field(default_factory=dict)


class Node:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`step` does one round of work."""

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.queue = SeriesQueue(cfg.queue)
        self.model = None
        self._server = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_try: dict[str, float] = {}

    # ------------------------------------------------------------ lifecycle
    def load(self) -> None:
        from hemato.weights.load import check_device, default_checkpoint, load_model

        opts = self.cfg.predict_options
        ckpt = self.cfg.checkpoint or default_checkpoint()
        self.model = load_model(ckpt, check_device(opts.get("device", "cpu")), precision=opts.get("precision", "32"))
        _emit(logging.INFO, "model_loaded", checkpoint=str(ckpt), sha256=self.model.identity["sha256"])

    def start(self) -> None:
        """Load the model, resume what the queue holds, listen, and start the worker."""
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        if self.model is None:
            self.load()
        ae = AE(ae_title=self.cfg.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        if self.cfg.allowed:
            ae.require_calling_aet = list(self.cfg.allowed)
        handlers = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, lambda event: 0x0000),
            (evt.EVT_REJECTED, self._on_rejected),
        ]
        self._server = ae.start_server((self.cfg.host, self.cfg.port), block=False, evt_handlers=handlers)
        pending = [p.name for p in (self.queue.root / "incoming").iterdir() if p.is_dir()]
        _emit(
            logging.INFO,
            "listening",
            ae_title=self.cfg.ae_title,
            port=self.cfg.port,
            allowed=self.cfg.allowed,
            destination=str(self.cfg.destination) if self.cfg.destination else None,
            queued=len(pending),
            unsent=len(self.queue.unsent()),
        )
        self._worker = threading.Thread(target=self._work, name="hemato-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join(timeout=60)
        _emit(logging.INFO, "stopped", peak_rss_mb=round(peak_rss_mb(), 1))

    def wait(self) -> None:
        """Block until :meth:`stop` is called (e.g. from a signal handler)."""
        while not self._stop.wait(1.0):
            pass

    # ------------------------------------------------------------ receiving
    def _on_rejected(self, event: Any) -> None:
        """An association this node refused (a calling AE title not in ``allowed``): one log line."""
        req = event.assoc.requestor
        _emit(
            logging.WARNING,
            "association_rejected",
            calling_ae=str(getattr(req, "ae_title", "")).strip(),
            address=f"{getattr(req, 'address', '?')}:{getattr(req, 'port', '?')}",
            allowed=self.cfg.allowed,
        )

    def _on_store(self, event: Any) -> int:
        """Write the instance to incoming/ before answering; 0x0000 only once it is on disk."""
        from pydicom import dcmread

        try:
            data = event.encoded_dataset()  # preamble + file meta + dataset, as received
        except Exception as e:  # a dataset pynetdicom cannot even encode
            _emit(logging.ERROR, "refused_instance", reason=f"cannot encode the received dataset ({e})")
            return 0xC210
        series = sop = None
        try:
            head = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            series = str(head.get("SeriesInstanceUID", "")) or None
        except Exception:  # kept: it ends in failed/ with the reader's reason
            pass
        sop = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "") or None
        try:
            path = self.queue.store(series, sop, data)
        except OSError as e:
            _emit(logging.ERROR, "store_failed", series=series, reason=str(e))
            return 0xA700  # out of resources: the sender keeps it
        _emit(
            logging.DEBUG,
            "received",
            series=path.parent.name,
            instance=path.name,
            calling_ae=event.assoc.requestor.ae_title,
        )
        return 0x0000

    # ------------------------------------------------------------ the worker
    def _work(self) -> None:
        while not self._stop.wait(self.cfg.poll_s):
            try:
                self.step()
            except Exception as e:  # the worker must outlive any one series
                _emit(
                    logging.ERROR, "worker_error", reason=f"{e.__class__.__name__}: {e}", trace=traceback.format_exc()
                )

    def step(self, quiet_s: float | None = None) -> int:
        """Process every quiet series and retry due deliveries; returns how many series ran."""
        n = 0
        for r in self.queue.ready(self.cfg.quiet_s if quiet_s is None else quiet_s):
            if self._stop.is_set():
                break
            self.process(r)
            n += 1
        for series in self.queue.unsent():
            if time.time() >= self._next_try.get(series, 0.0):
                self.deliver(series)
        return n

    def process(self, r: Ready) -> None:
        """predict one series; its result goes to done/ (and is delivered) or failed/."""
        from hemato.data.readers.errors import InputError
        from hemato.predict import predict

        if self.queue.done_fingerprint(r.series) == r.fingerprint:
            self.queue.duplicate(r)
            _emit(logging.INFO, "duplicate", series=r.series, instances=len(r.files), fingerprint=r.fingerprint)
            return
        work = self.queue.root / "work" / r.series
        shutil.rmtree(work.parent, ignore_errors=True)
        (work / "in").mkdir(parents=True)
        for f in r.files:
            try:
                os.link(f, work / "in" / f.name)
            except OSError:
                shutil.copy2(f, work / "in" / f.name)
        t0 = time.perf_counter()
        _emit(logging.INFO, "processing", series=r.series, instances=len(r.files), fingerprint=r.fingerprint)
        try:
            report = predict(
                self.model.identity.get("checkpoint"),
                work / "in",
                work / "out",
                loaded=self.model,
                dicom_seg=True,
                dicom_sr=True,
                **self.cfg.predict_options,
            )
        except Exception as e:  # every refusal or error ends in failed/, with its reason
            where = self.queue.root / "failed" / r.series / "instances"
            if isinstance(e, InputError):
                reason = str(e).replace(str(work / "in"), str(where))
            else:
                reason = f"{where}: internal error ({e.__class__.__name__}: {e})"
            self.queue.fail(r, reason)
            _emit(logging.ERROR, "failed", series=r.series, instances=len(r.files), reason=reason)
            return
        finally:
            shutil.rmtree(work / "in", ignore_errors=True)
        self.queue.finish(r, work / "out")
        shutil.rmtree(work.parent, ignore_errors=True)
        _emit(
            logging.INFO,
            "done",
            series=r.series,
            volume_ml=report.get("volume_ml"),
            volume_status=report.get("volume_status"),
            seconds=round(time.perf_counter() - t0, 2),
            peak_rss_mb=round(peak_rss_mb(), 1),
        )
        self.deliver(r.series)

    def deliver(self, series: str) -> None:
        """Send the series' SEG + SR to the destination; retried later if that fails."""
        dest = self.cfg.destination
        result = self.queue.root / "done" / series / "result"
        if dest is None:
            return
        files = [p for p in (result / "seg.dcm", result / "sr.dcm") if p.exists()]
        try:
            send(files, dest, calling_ae=self.cfg.ae_title)
        except Exception as e:  # kept in done/ and retried
            self._next_try[series] = time.time() + self.cfg.retry_s
            _emit(
                logging.WARNING,
                "send_failed",
                series=series,
                destination=str(dest),
                reason=str(e),
                retry_s=self.cfg.retry_s,
            )
            return
        self.queue.mark_sent(series)
        self._next_try.pop(series, None)
        _emit(logging.INFO, "sent", series=series, destination=str(dest), files=[p.name for p in files])
