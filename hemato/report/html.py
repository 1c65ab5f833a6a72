"""A self-contained ``report.html``: tables and images embedded (base64), opens offline."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from hemato.report.tables import Table

CSS = """
body{font-family:system-ui,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}
th{background:#eee} .note{color:#666;font-size:12px} img{max-width:100%;border:1px solid #ddd}
.paper{background:#fff8e0}
"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render(
    tables: list[Table], figures: dict[str, Path], runs: list[str], skipped: list[str], title: str = "hemato report"
) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
    ]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append(
        "<p class='note'>Columns starting with 'paper' are the paper's own figures on its private data "
        "(452 patients), shown for comparison; every other number comes from the runs listed at the end.</p>"
    )
    for t in tables:
        parts.append(f"<h2 id='{t.key}'>{html.escape(t.caption)}</h2>")
        body = t.display.to_html(index=False, escape=True, border=0, classes=f"table {t.key}")
        parts.append(body)
        for n in t.notes:
            parts.append(f"<p class='note'>{html.escape(n)}</p>")
    for name, path in figures.items():
        parts.append(f"<h2 id='{html.escape(path.stem)}'>{html.escape(name)}</h2>{_img(path)}")
    parts.append("<h2>Runs</h2><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in runs) + "</ul>")
    if skipped:
        parts.append(
            "<h3>Skipped (not finished)</h3><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
