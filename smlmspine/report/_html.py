"""HTML building blocks of the report: escaped text, tables, embedded images, the page."""

from __future__ import annotations

import base64
import json
import math
from html import escape

__all__ = ["SECTIONS", "esc", "img", "not_run", "note", "table", "fmt", "details_json",
           "section", "page"]

#: The report's sections, ``(id, heading)``, in page order.
SECTIONS = (
    ("summary", "Summary"),
    ("drift", "Drift trace"),
    ("overview", "Rendered overview"),
    ("gallery", "Spine gallery"),
    ("features", "Feature distributions"),
    ("coupling", "Coupling"),
    ("failures", "Failures"),
    ("parameters", "Parameters"),
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 margin:0 auto;max-width:1100px;padding:0 1.2em 3em;color:#222;line-height:1.4}
header{border-bottom:2px solid #444;margin-bottom:1em}
h1{font-size:1.5em;margin:.8em 0 .2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;
 padding-bottom:.2em;margin-top:1.8em}h3{font-size:1em;margin:1em 0 .3em}
nav a{margin-right:1em;font-size:.9em}
.meta{color:#555;font-size:.9em}
.not-run{color:#555;font-style:italic;background:#f4f4f4;padding:.4em .7em;border-left:3px solid #aaa}
.error{color:#a00;background:#fff0f0;padding:.4em .7em;border-left:3px solid #a00}
.note{color:#555;font-size:.85em}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flagged td{background:#fff4e0}tr.not_measured td{background:#f0f0f0;color:#666}
.untrusted{color:#a05a00;font-weight:bold}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0}figure.thumb{width:170px;border:1px solid #ddd;padding:4px;background:#fff}
figure.thumb img{width:160px;height:160px}
figcaption{font-size:.75em;line-height:1.25}
img.plot{max-width:100%;height:auto}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{max-width:48%}
details pre{font-size:.78em;background:#f7f7f7;padding:.6em;overflow-x:auto}
.swatch{display:inline-block;width:.8em;height:.8em;margin-right:.25em;vertical-align:middle}
"""


def esc(text) -> str:
    """HTML-escaped ``str(text)``."""
    return escape(str(text), quote=True)


def fmt(value, *, digits: int = 3) -> str:
    """A cell value as text: numbers to ``digits`` significant figures, NaN/None as "n/a".

    Examples
    --------
    >>> fmt(198.2026), fmt(float("nan")), fmt(None), fmt(True), fmt(0.000123)
    ('198', 'n/a', 'n/a', 'yes', '0.000123')
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value == 0:
            return "0"
        mag = int(math.floor(math.log10(abs(value))))
        if mag >= digits - 1:
            return f"{value:.0f}"
        return f"{value:.{digits - 1 - mag}f}" if mag > -4 else f"{value:.{digits}g}"
    return str(value)


def img(data: bytes, *, alt: str, cls: str = "plot") -> str:
    """An ``<img>`` with the PNG embedded as a base64 data URI."""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{esc(alt)}" src="data:image/png;base64,{b64}">'


def not_run(text: str) -> str:
    """The paragraph of a section whose inputs are absent."""
    return f'<p class="not-run">not run: {esc(text)}</p>'


def error(text: str) -> str:
    """The paragraph of a section whose input could not be used."""
    return f'<p class="error">{esc(text)}</p>'


def note(text: str) -> str:
    """A small explanatory paragraph."""
    return f'<p class="note">{esc(text)}</p>'


def table(header: list[str], rows: list[list], *, row_classes: list[str] | None = None,
          numeric: set[int] | None = None) -> str:
    """A table; cells are formatted with :func:`fmt` and escaped (``numeric``: right-aligned
    column indices)."""
    numeric = numeric or set()
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in header), "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = (row_classes or [""] * len(rows))[i]
        out.append(f'<tr class="{esc(cls)}">' if cls else "<tr>")
        for j, cell in enumerate(row):
            attr = ' class="num"' if j in numeric else ""
            out.append(f"<td{attr}>{esc(fmt(cell))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def details_json(summary: str, obj) -> str:
    """A collapsed block with ``obj`` as indented JSON."""
    text = json.dumps(obj, indent=2, default=str, allow_nan=True)
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def section(sid: str, heading: str, body: str) -> str:
    """One ``<section>`` with its id and ``<h2>``."""
    return f'<section id="{esc(sid)}"><h2>{esc(heading)}</h2>\n{body}\n</section>'


def page(title: str, subtitle: str, sections: list[str]) -> str:
    """The whole document: inline CSS, navigation, sections; no script, no external link."""
    nav = " ".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h in SECTIONS)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"<header><h1>{esc(title)}</h1><p class=\"meta\">{esc(subtitle)}</p>"
            f"<nav>{nav}</nav></header>\n" + "\n".join(sections) + "\n</body>\n</html>\n")
