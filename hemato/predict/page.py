"""The one-page ``report.html`` of one scan (``hemato.predict``): self-contained (images
embedded), readable without hemato. It shows:
- the volume (planimetric, and ABC/2 per bleed);
- the flags (warnings, confidence, input QC);
- every bleed slice with its overlay;
- the model, its training data and its card;
- the geometry used, and where each value came from."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any


def _e(v: Any) -> str:
    return html.escape(str(v))


def _num(v: Any, fmt: str = ".2f") -> str:
    return "&ndash;" if v is None else format(v, fmt)


def render_scan_page(report: dict[str, Any], overlays: list[Path]) -> str:
    """HTML of one scan's report; ``overlays`` are the bleed slices' PNGs (embedded)."""
    vol = f"{report['volume_ml']:.2f} ml" if report["volume_ml"] is not None else _e(report["volume_status"])
    a = report.get("abc2") or {}
    flags: list[str] = [
        *(f"warning: {w}" for w in report.get("warnings", [])),
        *(f"input: {q}" for q in report.get("input_qc", [])),
    ]
    conf = report.get("confidence") or {}
    if conf.get("unsure"):
        flags.append(
            f"model unsure: the mask depends on the threshold (relative spread {conf['relative_spread']:.2f}; {conf['rule']})"
        )
    rows_bleeds = "".join(
        f"<tr><td>{i + 1}</td><td>{_num(b.get('volume_ml'))}</td><td>{_num(b.get('A_mm'), '.1f')}</td><td>{_num(b.get('B_mm'), '.1f')}</td>"
        f"<td>{_num(b.get('C_mm'), '.1f')}</td><td>{_num(b.get('planimetric_ml'))}</td></tr>"
        for i, b in enumerate(a.get("bleeds", []))
    )
    geo = report.get("geometry_source", {})
    spacing = report.get("spacing_mm")
    sspacing = report.get("slice_spacing_mm")
    model = report.get("model", {})
    figs = "".join(
        f'<figure><img alt="{_e(p.stem)}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{_e(p.stem.replace("_", " "))}</figcaption></figure>'
        for p in overlays
    )
    flag_html = "".join(f"<li>{_e(f)}</li>" for f in flags) or "<li>none</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hemato report {_e(report["patient"])}</title>
<style>
body {{ font-family: sans-serif; max-width: 60em; margin: 1em auto; color: #222; }}
h1 {{ font-size: 1.4em; }} .volume {{ font-size: 2em; font-weight: bold; }}
table {{ border-collapse: collapse; margin: .5em 0; }} td, th {{ border: 1px solid #bbb; padding: .2em .6em; text-align: right; }}
figure {{ display: inline-block; margin: .3em; }} img {{ width: 256px; image-rendering: pixelated; }}
.flags li {{ color: #a40; }} .note {{ color: #555; font-size: .9em; }}
</style></head><body>
<h1>Hematoma report: {_e(report["patient"])}</h1>
<p class="volume" id="volume">{vol}</p>
<p id="finding">{_e(report.get("finding", ""))}</p>
<p id="status">Status: {_e(report["volume_status"])}. {report["n_bleed_slices"]} of {report["n_slices"]} slices with bleed.</p>
<h2>ABC/2 per bleed</h2>
<p id="abc2">{"ABC/2 total " + _num(a.get("volume_ml")) + " ml over " + str(a.get("n_bleeds", 0)) + " bleed(s)" if a else "not given (spacing unknown or more than one slice spacing)"}</p>
<table id="bleeds"><tr><th>bleed</th><th>ABC/2 (ml)</th><th>A (mm)</th><th>B (mm)</th><th>C (mm)</th><th>planimetric (ml)</th></tr>{rows_bleeds}</table>
<h2>Flags</h2><ul class="flags" id="flags">{flag_html}</ul>
<h2>Bleed slices</h2><div id="overlays">{figs or "<p>no bleed found by this model</p>"}</div>
<h2>Geometry</h2>
<table id="geometry"><tr><th>pixel spacing (mm)</th><td>{_e(spacing) if spacing else "unknown"}</td><td>{_e(geo.get("spacing", ""))}</td></tr>
<tr><th>slice spacing (mm)</th><td>{_e(sspacing) if sspacing else "unknown"}</td><td>{_e(geo.get("thickness", ""))}</td></tr></table>
<h2>Model</h2>
<p id="model">{_e(model.get("format", ""))} {_e(model.get("checkpoint", ""))} (SHA-256 {_e(str(model.get("sha256", ""))[:16])}...), trained on {_e(report.get("model_trained_on", "unknown"))}.
Precision: {_e((report.get("inference", {}).get("precision") or {}).get("precision", ""))}.</p>
<p class="note">hemato {_e(report.get("software", {}).get("hemato", ""))}: research software, not a medical device.</p>
</body></html>
"""
