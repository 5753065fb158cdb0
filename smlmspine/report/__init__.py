"""One self-contained HTML report of a ``smlmspine run`` or ``smlmspine batch`` folder.

- :func:`write_report`: ``OUTDIR/report.html`` from what ``run`` (``run.json``,
  ``spines.parquet``, ``localizations.parquet``, ``drift.csv``, ``spine_<id>.ply``) or
  ``batch`` (``batch.json``, the tidy ``spines.parquet``, ``failures.csv``, one run folder
  per file) wrote, plus any ``smlmspine couple`` output found in the folder. One file:
  figures embedded as base64 PNG (matplotlib, Agg), no script, no network.
- :data:`SECTIONS`: the report's sections, ``(id, heading)`` in page order; a section
  whose inputs are absent says "not run" and why.

Examples
--------
>>> from smlmspine.report import SECTIONS
>>> [sid for sid, _ in SECTIONS][:3]
['summary', 'drift', 'overview']
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "write_report": "._write:write_report",
    "build_report": "._write:build_report",
    "SECTIONS": "._html:SECTIONS",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
