"""``write_report``: the report of a run or batch folder as one self-contained HTML file."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import ParameterError
from ._collect import collect
from ._html import SECTIONS, page, section
from ._sections import build

__all__ = ["write_report", "build_report"]


def build_report(outdir: str | Path, *, kind: str = "auto", title: str | None = None,
                 max_thumbnails: int = 48) -> str:
    """The HTML text of the report of a ``smlmspine run`` or ``smlmspine batch`` folder.

    Parameters
    ----------
    outdir : str or Path
        The output folder of ``smlmspine run`` (holds ``run.json``) or ``smlmspine batch``
        (holds ``batch.json``).
    kind : {"auto", "run", "batch"}
        What the folder is; ``"auto"`` tells by ``batch.json`` / ``run.json``.
    title : str, optional
        Page title; default from the folder's name.
    max_thumbnails : int
        Spines drawn in the gallery (the first ones in table order); >= 1.

    Returns
    -------
    str
        A complete HTML document: every figure embedded as a base64 PNG, inline CSS, no
        script and no reference to any other file or to the network. The same folder
        gives the same text.

    Raises
    ------
    FormatError
        ``outdir`` is not a folder holding ``run.json`` or ``batch.json``, or that file
        is not a JSON object.
    ParameterError
        An unknown ``kind`` or a ``max_thumbnails`` below 1.

    Examples
    --------
    >>> import tempfile
    >>> build_report(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smlmspine.errors.FormatError: ...not a run or batch output folder: no run.json or batch.json...
    """
    if not isinstance(max_thumbnails, int) or isinstance(max_thumbnails, bool) \
            or max_thumbnails < 1:
        raise ParameterError(f"max_thumbnails must be an integer >= 1, got {max_thumbnails!r}")
    outdir = Path(outdir)
    folder = collect(outdir, kind)
    if title is None:
        title = f"smlmspine {folder.kind} report: {outdir.resolve().name}"
    version = folder.info.get("smlmspine_version")
    subtitle = (f"{folder.kind} folder {outdir.resolve().name}"
                + (f" · smlmspine {version}" if version else "")
                + f" · figures: matplotlib {_matplotlib_version()}")
    from .. import _background

    # the sections with figures go to idle helpers when there are some (inside the
    # CLI's smlmspine._background.helpers), the costliest first; the text is the same
    pending = {sid: _background.submit(_section_body, folder, sid, max_thumbnails)
               for sid in DRAWN if sid in dict(SECTIONS)}
    deadline = time.monotonic() + _background.WAIT_S
    bodies = []
    for sid, heading in SECTIONS:
        body = _background.result(pending.get(sid), deadline - time.monotonic())
        if body is None:
            body = _section_body(folder, sid, max_thumbnails)
        bodies.append(section(sid, heading, body))
    return page(title, subtitle, bodies)


#: The sections that draw figures, costliest first (those a helper may draw).
DRAWN = ("features", "gallery", "drift", "overview", "coupling")


def _section_body(folder, sid: str, max_thumbnails: int) -> str:
    """The body of section ``sid`` of ``folder`` (figures in the report's font size)."""
    import matplotlib

    with matplotlib.rc_context({"font.size": 9}):
        return build(folder, sid, max_thumbnails=max_thumbnails)


def _matplotlib_version() -> str:
    """matplotlib's version, without importing it (the figures may be drawn elsewhere)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("matplotlib")
    except PackageNotFoundError:   # pragma: no cover - an unusual install
        import matplotlib

        return matplotlib.__version__


def write_report(outdir: str | Path, *, kind: str = "auto", title: str | None = None,
                 output: str | Path | None = None, max_thumbnails: int = 48) -> Path:
    """Write ``OUTDIR/report.html``: the report of a ``smlmspine run`` or ``batch`` folder.

    The sections (:data:`smlmspine.report.SECTIONS`): a summary, the drift trace, a
    rendered overview of the localizations, a gallery of spine thumbnails (mesh renders
    coloured by class, captioned with their neck and head numbers), feature
    distributions by class and by manifest condition, the coupling curves when a
    ``smlmspine couple`` output is in the folder, the failures of a batch and every
    parameter. A section whose input is absent says "not run" and why; spines that
    failed a plausibility rule are shown as such.

    Parameters
    ----------
    outdir : str or Path
        The output folder of ``smlmspine run`` or ``smlmspine batch``.
    kind : {"auto", "run", "batch"}
        What the folder is; ``"auto"`` tells by ``batch.json`` / ``run.json``.
    title : str, optional
        Page title; default from the folder's name.
    output : str or Path, optional
        Where to write; default ``OUTDIR/report.html``.
    max_thumbnails : int
        Spines drawn in the gallery (the first ones in table order); >= 1.

    Returns
    -------
    Path
        The report file, written atomically (a reader never sees half of it).

    Raises
    ------
    FormatError
        ``outdir`` is not a run or batch output folder.
    ParameterError
        An unknown ``kind`` or a ``max_thumbnails`` below 1.

    Examples
    --------
    >>> import tempfile
    >>> write_report(tempfile.mkdtemp(), kind="run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    smlmspine.errors.FormatError: ...not a run output folder: no run.json...
    """
    from .._outputs import atomic_write

    text = build_report(outdir, kind=kind, title=title, max_thumbnails=max_thumbnails)
    path = Path(outdir) / "report.html" if output is None else Path(output)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path
