"""Shared machinery of the delimited-text readers (ThunderSTORM, rapidSTORM, Zeiss, ONI,
N-STORM, generic CSV/TSV).

A text reader does three things: it reads the header to learn the column names and
their units, it decides which source column becomes which canonical column
(:class:`Role`), and it hands both to :func:`read_text_table`, which

1. streams the data rows with :func:`pyarrow.csv.read_csv` (multithreaded, column
   types set explicitly where known, no pandas round trip);
2. turns every pyarrow parse/conversion error into a :class:`~smlmspine.errors.FormatError`
   naming the file, the line and the column (pyarrow does not report line numbers, so
   on the error path the file is scanned once to find the offending line);
3. converts coordinate/precision columns to nm (pixel units need ``pixel_size_nm``;
   never guessed), refuses NaN/inf/missing coordinates (naming the line), and builds
   the canonical table with :func:`smlmspine.schema.make_table`, keeping every other
   column under a sanitized name with its original name and unit.

Examples
--------
>>> split_unit("x [nm]")
('x', 'nm')
>>> split_unit("X precision (nm)")
('X precision', 'nm')
>>> split_unit("frame")
('frame', None)
>>> length_factor_nm("um", pixel_size_nm=None, path="a.csv", column="x [um]")
1000.0
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import FormatError, ParameterError
from ..schema import COLUMNS, COORDINATES, make_table, sanitize_name

__all__ = [
    "Role", "LENGTH_UNITS_NM", "PIXEL_UNITS", "PHOTON_UNITS", "split_unit", "normalize_unit",
    "length_factor_nm", "head_text", "read_header", "first_lines", "split_fields", "read_text_table",
    "check_mapping", "find_nul", "header_roles", "dedupe_names", "header_fields",
    "choose_delimiter", "sniff_lines", "TEXT_DELIMITERS", "is_utf16",
]

#: Bytes of the file head given to the sniffers (the registry reads this many; defined here,
#: in the module that imports nothing else of ``smlmspine.io``, so the registry -> text
#: dependency runs one way only).
HEAD_BYTES = 64 * 1024

#: Length units, as nm per unit (lower-case keys; see :func:`normalize_unit`).
LENGTH_UNITS_NM = {
    "nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "nanometre": 1.0, "nanometres": 1.0,
    "um": 1e3, "µm": 1e3, "μm": 1e3, "micrometer": 1e3, "micrometers": 1e3,
    "micrometre": 1e3, "micron": 1e3, "microns": 1e3,
    "mm": 1e6, "m": 1e9, "meter": 1e9, "metre": 1e9,
}
#: Units meaning camera pixels (converted with ``pixel_size_nm``).
PIXEL_UNITS = {"px", "pix", "pixel", "pixels"}
#: Units accepted for the canonical ``photons``/``background`` columns.
PHOTON_UNITS = {"photon", "photons", "ph"}

_UNIT_RE = re.compile(r"^(.*?)\s*[\[(]([^\[\]()]*)[\])]\s*$")


@dataclass(frozen=True, slots=True)
class Role:
    """Where one source column goes.

    Attributes
    ----------
    source : str
        Column name in the file (after de-duplication, see :func:`read_text_table`).
    target : str
        Canonical name (``x``, ``frame``, ...) or the name of a kept extra column.
    unit : str or None
        Unit of the values in the file. For canonical length columns (coordinates and
        precisions) it is converted to nm; for extra columns it is stored as is.
    """

    source: str
    target: str
    unit: str | None = None


def split_unit(name: str) -> tuple[str, str | None]:
    """Split ``"x [nm]"`` / ``"X (nm)"`` into ``("x", "nm")``; no unit gives ``None``.

    Parameters
    ----------
    name : str
        A header name.

    Returns
    -------
    base : str
        The name without the unit, stripped (case kept).
    unit : str or None
        The unit in brackets or parentheses.

    Examples
    --------
    >>> split_unit("X (nm)"), split_unit("frame")
    (('X', 'nm'), ('frame', None))
    """
    m = _UNIT_RE.match(name.strip())
    if not m or not m.group(1).strip():
        return name.strip(), None
    return m.group(1).strip(), m.group(2).strip()


def normalize_unit(unit: str | None) -> str | None:
    """Lower-case, trimmed unit (``None`` stays ``None``; an empty unit becomes ``None``).

    Parameters
    ----------
    unit : str or None
        A unit as written in a file.

    Returns
    -------
    str or None

    Examples
    --------
    >>> normalize_unit(" NM "), normalize_unit("  ")
    ('nm', None)
    """
    if unit is None:
        return None
    unit = unit.strip().lower()
    return unit or None


def length_factor_nm(unit: str | None, *, pixel_size_nm: float | None, path, column: str,
                     default_unit: str | None = None) -> float:
    """nm per unit of a length column; raises :class:`FormatError` when it cannot be known.

    Parameters
    ----------
    unit : str or None
        The unit the header states (``"nm"``, ``"um"``, ``"µm"``, ``"px"``, ...).
    pixel_size_nm : float or None
        Pixel size in nm, needed when the unit is a pixel.
    path : str or pathlib.Path
        The file, for messages.
    column : str
        The column, for messages.
    default_unit : str, optional
        Unit to assume when the header states none (a format's documented unit, or the
        user's ``coordinate_unit``); never guessed.

    Returns
    -------
    float
        Multiply the column by this to get nm.

    Raises
    ------
    FormatError
        No unit stated or given, a pixel unit without a pixel size, or a unit that is
        not a length.
    ParameterError
        ``pixel_size_nm`` is not a positive finite number.

    Examples
    --------
    >>> length_factor_nm("um", pixel_size_nm=None, path="a.csv", column="x")
    1000.0
    >>> length_factor_nm("px", pixel_size_nm=107.0, path="a.csv", column="x")
    107.0
    """
    u = normalize_unit(unit) or normalize_unit(default_unit)
    if u is None:
        raise FormatError("the column states no length unit and none was given; pass "
                          "coordinate_unit='nm' (or 'um', 'px' with pixel_size_nm) — units are "
                          "never guessed", path=path, column=column)
    if u in LENGTH_UNITS_NM:
        return LENGTH_UNITS_NM[u]
    if u in PIXEL_UNITS:
        if pixel_size_nm is None:
            raise FormatError("coordinates are in pixels and the file stores no pixel size; "
                              "pass pixel_size_nm= (CLI: --pixel-size-nm)", path=path,
                              column=column)
        try:
            size = float(pixel_size_nm)
        except (TypeError, ValueError):
            raise ParameterError(f"pixel_size_nm must be a number, got {pixel_size_nm!r}") from None
        if not np.isfinite(size) or size <= 0:
            raise ParameterError(f"pixel_size_nm must be a positive finite number, got {pixel_size_nm!r}")
        return size
    raise FormatError(f"unit {unit!r} is not a length unit (expected one of nm, um, mm, px)",
                      path=path, column=column)


def find_nul(head: bytes) -> int:
    """Index of the first NUL byte in ``head`` (-1 if none).

    Parameters
    ----------
    head : bytes
        The first bytes of a file.

    Returns
    -------
    int

    Examples
    --------
    >>> find_nul(b"ab\\x00c"), find_nul(b"abc")
    (2, -1)
    """
    return head.find(b"\x00")


def is_utf16(head: bytes) -> bool:
    """Whether ``head`` starts with a UTF-16 byte-order mark (read as binary otherwise).

    Parameters
    ----------
    head : bytes
        The first bytes of a file.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_utf16("x\\ty".encode("utf-16")), is_utf16(b"x,y")
    (True, False)
    """
    return head[:2] in (b"\xff\xfe", b"\xfe\xff")


def head_text(head: bytes, *, stop_at_nul: bool = False) -> str | None:
    """Decode the head of a file as text, or ``None`` when it is not text.

    Binary content (NUL bytes, unless ``stop_at_nul``, or many control characters) gives
    ``None``. UTF-8 (with or without BOM) is tried first, then Latin-1.

    Parameters
    ----------
    head : bytes
        The first bytes of a file (a multi-byte character cut at the end is tolerated).
    stop_at_nul : bool
        Decode up to the first NUL byte instead of calling the content binary (files
        with a text header and binary data).

    Returns
    -------
    str or None

    Examples
    --------
    >>> head_text("x [nm],y [µm]\\n".encode("utf-8"))
    'x [nm],y [µm]\\n'
    >>> head_text(b"\\x00\\x01\\x02") is None
    True
    """
    if stop_at_nul:
        k = head.find(b"\x00")
        if k >= 0:
            head = head[:k]
    elif b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut by the head limit
            text = head[:exc.start].decode("utf-8", errors="strict")
        else:
            text = head.decode("latin-1")
    text = text.lstrip("\ufeff")
    bad = sum(1 for c in text[:4096] if ord(c) < 32 and c not in "\t\r\n")
    if bad:
        return None
    return text


def read_header(path: str | Path, *, n_lines: int = 1, stop_at_nul: bool = False,
                what: str = "delimited text") -> list[str]:
    """The first ``n_lines`` lines of a text file (fewer if the file is shorter).

    Parameters
    ----------
    path : str or pathlib.Path
        The file.
    n_lines : int
        Number of lines to return.
    stop_at_nul : bool
        Read only up to the first NUL byte (see :func:`head_text`).
    what : str
        The format expected, for messages.

    Returns
    -------
    list of str
        Lines without line ends.

    Raises
    ------
    FormatError
        The file is missing, empty or binary (naming it and what was expected).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except OSError as exc:
        raise FormatError(f"cannot be read: {exc.strerror or exc}", path=path) from None
    if not head.strip():
        raise FormatError(f"the file is empty; expected {what} with a header line", path=path)
    text = head_text(head, stop_at_nul=stop_at_nul)
    if text is None:
        if is_utf16(head):
            raise FormatError(f"UTF-16 text (e.g. a spreadsheet's 'Unicode text' export); "
                              f"expected {what} in UTF-8: save it as UTF-8", path=path, line=1)
        raise FormatError(f"binary content (NUL or control bytes); expected {what}",
                          path=path, line=1)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise FormatError(f"the first line is empty; expected {what} with a header line",
                          path=path, line=1)
    if len(head) == HEAD_BYTES and len(lines) <= n_lines and not text.endswith("\n"):
        raise FormatError(f"the header is longer than {HEAD_BYTES} bytes; expected {what}",
                          path=path, line=1)
    return lines[:n_lines]


def first_lines(text: str, n: int) -> list[str]:
    """The first ``n`` lines of ``text``, without line ends.

    Parameters
    ----------
    text : str
        Decoded text.
    n : int
        Number of lines.

    Returns
    -------
    list of str
        At most ``n`` lines.

    Examples
    --------
    >>> first_lines("a\\r\\nb\\nc", 2)
    ['a', 'b']
    """
    return text.splitlines()[:n]


def split_fields(line: str, delimiter: str) -> list[str]:
    """Split one line on ``delimiter`` honouring double quotes; fields are stripped.

    Parameters
    ----------
    line : str
        One line of a delimited text file.
    delimiter : str
        Field delimiter.

    Returns
    -------
    list of str

    Examples
    --------
    >>> split_fields('1,"a,b", 3', ",")
    ['1', 'a,b', '3']
    """
    try:
        row = next(csv.reader([line], delimiter=delimiter, quotechar='"'))
    except (csv.Error, StopIteration):
        row = line.split(delimiter)
    return [f.strip() for f in row]


#: Delimiters the text readers recognise (re-saved files use any of them).
TEXT_DELIMITERS = (",", ";", "\t")


def header_fields(line: str, delimiter: str) -> list[str]:
    """Header names of ``line`` split on ``delimiter``.

    Besides the usual layouts (names bare or each quoted) this reads a header that a
    spreadsheet re-saved as *one* quoted field with doubled inner quotes
    (``"id,""frame"",""x [nm]""`` and a closing quote): a single field that holds the
    delimiter is split again.

    Parameters
    ----------
    line : str
        The header line.
    delimiter : str
        Field delimiter.

    Returns
    -------
    list of str
        Names, stripped and unquoted.

    Examples
    --------
    >>> whole = '"' + 'id,""frame"",""x [nm]""' + '"'
    >>> header_fields(whole, ",")
    ['id', 'frame', 'x [nm]']
    >>> header_fields('"frame";"x [nm]";"y [nm]"', ";")
    ['frame', 'x [nm]', 'y [nm]']
    """
    fields = split_fields(line, delimiter)
    if len(fields) == 1 and delimiter in fields[0] and line.lstrip().startswith('"'):
        inner = split_fields(fields[0], delimiter)
        if len(inner) > 1:
            return inner
    return fields


def choose_delimiter(lines: Sequence[str], preferred: str = ",",
                     delimiters: Sequence[str] = TEXT_DELIMITERS) -> tuple[str, list[str]]:
    """Delimiter and header names of a delimited text file, from its first lines.

    ``lines[0]`` is the header, the others the first data rows. The delimiter that
    splits the header into the most fields (at least 2) *and* every given row into as
    many wins; ties go to ``preferred``, then to the order of ``delimiters``. When no
    delimiter is consistent with the rows (e.g. a truncated first row) the header alone
    decides, so the reader reports the bad row with its line. Content only: the file
    name plays no part.

    Parameters
    ----------
    lines : sequence of str
        The header line, then the first data rows (without line ends).
    preferred : str
        The format's usual delimiter.
    delimiters : sequence of str
        The candidates (default :data:`TEXT_DELIMITERS`).

    Returns
    -------
    delimiter : str
        ``preferred`` when nothing splits the header into 2 or more fields.
    names : list of str
        The header split on it (see :func:`header_fields`).

    Examples
    --------
    >>> choose_delimiter(["frame;x [nm];y [nm]", "1;2,5;3"])
    (';', ['frame', 'x [nm]', 'y [nm]'])
    >>> choose_delimiter(["x\\ty\\tframe", "1.5\\t2\\t7"], preferred=",")
    ('\\t', ['x', 'y', 'frame'])
    """
    order = [preferred] + [d for d in delimiters if d != preferred]
    rows = [ln for ln in lines[1:] if ln.strip()]
    best = best_header = None
    for d in order:
        names = header_fields(lines[0], d) if lines else []
        n = len(names)
        if n < 2:
            continue
        if best_header is None or n > len(best_header[1]):
            best_header = (d, names)
        if all(len(split_fields(r, d)) == n for r in rows):
            if best is None or n > len(best[1]):
                best = (d, names)
    chosen = best or best_header
    if chosen is None:
        return preferred, header_fields(lines[0], preferred) if lines else []
    return chosen


def sniff_lines(head: bytes, n: int = 6, *, stop_at_nul: bool = False) -> list[str] | None:
    """The first ``n`` complete lines of a file head (text only), for the sniffers.

    A last line cut by the head limit is dropped (the first line is always kept).
    ``None`` when the head is not text.

    Parameters
    ----------
    head : bytes
        The first bytes of a file (the registry reads ``HEAD_BYTES``; a shorter head is
        the whole file and its last line is kept).
    n : int
        Most lines returned.
    stop_at_nul : bool
        Read only up to the first NUL byte (see :func:`head_text`).

    Returns
    -------
    list of str or None

    Examples
    --------
    >>> sniff_lines(b"frame,x\\n1,2\\n3,4\\n", n=2)
    ['frame,x', '1,2']
    >>> sniff_lines(b"\\x00\\x01") is None
    True
    """
    text = head_text(head, stop_at_nul=stop_at_nul)
    if not text:
        return None
    lines = text.splitlines()
    if len(head) >= HEAD_BYTES and not text.endswith(("\n", "\r")) and len(lines) > 1:
        lines = lines[:-1]
    return lines[:n]


def check_mapping(mapping: Mapping[str, str] | None, names: Sequence[str], *, path) -> dict[str, str]:
    """Validate a user mapping ``{canonical: source column}`` against the header names.

    Parameters
    ----------
    mapping : mapping of str to str or None
        Canonical column -> header name in the file (``None``: no mapping).
    names : sequence of str
        The header names of the file.
    path : str or pathlib.Path
        The file, for messages.

    Returns
    -------
    dict of str to str
        The mapping as a plain dict (empty for ``None``).

    Raises
    ------
    ParameterError
        Not a mapping, a key that is not a canonical column, or one source column used
        twice.
    FormatError
        A source column the header does not have.

    Examples
    --------
    >>> check_mapping({"x": "X_pos"}, ["X_pos", "Y_pos"], path="a.csv")
    {'x': 'X_pos'}
    """
    if mapping is None:
        return {}
    if not isinstance(mapping, Mapping):
        raise ParameterError(f"mapping must be a dict {{canonical: source column}}, got "
                             f"{type(mapping).__name__}")
    out = {}
    for key, src in mapping.items():
        if key not in COLUMNS:
            raise ParameterError(f"mapping key {key!r} is not a canonical column; use one of "
                                 f"{', '.join(COLUMNS)}")
        if src not in names:
            raise FormatError(f"mapping {key}={src!r}: no such column; the header has "
                              f"{list(names)}", path=path)
        out[key] = src
    if len(set(out.values())) != len(out):
        raise ParameterError(f"mapping uses one source column twice: {out}")
    return out


def header_roles(names: Sequence[str], candidates: Mapping[str, Sequence[str]], *,
                 mapping: Mapping[str, str] | None = None, path=None,
                 fixed_units: Mapping[str, str] | None = None,
                 targets: Mapping[str, str] | None = None) -> tuple[list[Role], dict[str, str]]:
    """Assign canonical roles to header names ``"base [unit]"``.

    Parameters
    ----------
    names : sequence of str
        De-duplicated header names.
    candidates : mapping
        Canonical target -> base names (case-insensitive, unit stripped) in priority
        order; the first present header whose unit suits the target wins, the others
        are kept as extra columns.
    mapping : mapping, optional
        User mapping ``{canonical: header name}``; it overrides the candidates.
    path : str or pathlib.Path, optional
        The file, for messages.
    fixed_units : mapping, optional
        Header name -> unit, for formats whose header states no unit (e.g. N-STORM, nm).
    targets : mapping, optional
        Header name -> output name of kept columns (to avoid clashes like ``X (pix)``).

    Returns
    -------
    roles : list of Role
    extra_units : dict
        Unit of every kept column that states one.
    """
    fixed_units = dict(fixed_units or {})
    parsed = {}
    for n in names:
        base, unit = split_unit(n)
        parsed[n] = (base.lower(), fixed_units.get(n, unit))
    user = check_mapping(mapping, names, path=path)
    roles: list[Role] = []
    used: set[str] = set()
    for target, src in user.items():
        roles.append(Role(src, target, parsed[src][1]))
        used.add(src)
    for target, bases in candidates.items():
        if target in user:
            continue
        found = None
        for base in bases:
            for n in names:
                if n in used or parsed[n][0] != base.lower():
                    continue
                if _unit_suits(target, parsed[n][1]):
                    found = n
                    break
            if found:
                break
        if found:
            roles.append(Role(found, target, parsed[found][1]))
            used.add(found)
    extra_units = {n: parsed[n][1] for n in names if n not in used and parsed[n][1]}
    targets = dict(targets or {})
    for n in names:
        if n in used or n in targets:
            continue
        # a kept column must not take a canonical name: "X (pix)" -> "x_pix"
        clean = sanitize_name(parsed[n][0])
        if clean in COLUMNS:
            unit = parsed[n][1]
            targets[n] = sanitize_name(f"{clean}_{unit}" if unit else f"{clean}_source")
    roles += [Role(n, targets[n], parsed[n][1]) for n in names if n not in used and n in targets]
    return roles, extra_units


def _unit_suits(target: str, unit: str | None) -> bool:
    u = normalize_unit(unit)
    if target in _NUMERIC_LENGTH:
        return u is None or u in LENGTH_UNITS_NM or u in PIXEL_UNITS
    if target in ("photons", "background"):
        return u is None or u in PHOTON_UNITS
    if target == "time_s":
        return u in ("s", "sec", "second", "seconds")
    return u is None or u in ("1", "frame", "frames", "fr")


def dedupe_names(names: Sequence[str]) -> list[str]:
    """Make header names unique (``a``, ``a#2``, ...); empty names become ``column``.

    Parameters
    ----------
    names : sequence of str
        Header names as read.

    Returns
    -------
    list of str
        The names, the second and later copies of a name suffixed ``#2``, ``#3``, ...

    Examples
    --------
    >>> dedupe_names(["x", "x", "", "x"])
    ['x', 'x#2', 'column', 'x#3']
    """
    return _dedupe(names)


def _dedupe(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        n = n if n else "column"
        if n in seen:
            seen[n] += 1
            n2 = f"{n}#{seen[n]}"
            while n2 in seen:
                seen[n] += 1
                n2 = f"{n}#{seen[n]}"
            n = n2
        seen.setdefault(n, 1)
        out.append(n)
    return out


# --------------------------------------------------------------------------- reading

_NUMERIC_LENGTH = {"x", "y", "z", "precision_xy", "precision_z"}
_PARSE_RE = re.compile(r"Expected (\d+) columns, got (\d+)")
_CONVERT_RE = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)"
                         r"(?:\[[^\]]*\])?: invalid value '(.*)'", re.S)


#: Bytes per parsed block: the streaming reader holds about one block of raw text per
#: thread beside the growing table, which keeps the peak near 1.5x the table's size.
_BLOCK_BYTES = 1 << 22


def _stream_csv(source, *, read_options, parse_options, convert_options) -> pa.Table:
    """Read with :func:`pyarrow.csv.open_csv` block by block into one (chunked) table.

    The streaming reader keeps the peak memory at about the final table plus a few
    blocks, where :func:`pyarrow.csv.read_csv` holds ~3x the table at its peak.
    """
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(source, read_options=read_options, parse_options=parse_options,
                           convert_options=convert_options)
    batches = []
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
    return pa.Table.from_batches(batches, schema=reader.schema)


#: Bytes of text per chunk of the parallel reader.
_CHUNK_BYTES = 16 << 20


def _parallel_csv(path: Path, *, skip_lines: int, read_options, parse_options,
                  convert_options) -> pa.Table:
    """Parse a file in newline-aligned chunks on all cores.

    The streaming reader decodes blocks one after another; here every chunk (about
    ``_CHUNK_BYTES`` of text, cut after a newline: values never hold newlines) is read
    with ``os.pread`` and parsed by :func:`pyarrow.csv.read_csv` in a thread pool
    (pyarrow releases the GIL), at most one chunk per core plus one in flight, so the
    peak stays near the final table plus a few chunks while the wall time approaches
    pyarrow's multithreaded floor.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.csv as pcsv

    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size

        def next_line(pos: int) -> int:
            """Offset just after the newline at or after ``pos`` (``size`` if none)."""
            while pos < size:
                block = os.pread(fd, 1 << 16, pos)
                k = block.find(b"\n")
                if k >= 0:
                    return pos + k + 1
                pos += len(block)
            return size

        start = 0
        for _ in range(skip_lines):
            start = next_line(start)
        bounds = [start]
        while bounds[-1] < size:
            cut = bounds[-1] + _CHUNK_BYTES
            bounds.append(size if cut >= size else next_line(cut))
        ropts = pcsv.ReadOptions(skip_rows=0, column_names=read_options.column_names,
                                 use_threads=False, block_size=_CHUNK_BYTES + (2 << 20))

        def parse(lo_hi):
            lo, hi = lo_hi
            buf = pa.py_buffer(os.pread(fd, hi - lo, lo))
            return pcsv.read_csv(pa.BufferReader(buf), read_options=ropts,
                                 parse_options=parse_options, convert_options=convert_options)

        spans = list(zip(bounds[:-1], bounds[1:])) or [(start, start)]
        workers = max(1, min(os.cpu_count() or 1, len(spans)))
        tables = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = []
            for span in spans:
                pending.append(pool.submit(parse, span))
                if len(pending) > workers:
                    tables.append(pending.pop(0).result())
            tables.extend(f.result() for f in pending)
    finally:
        os.close(fd)
    return pa.concat_tables(tables)


_SAMPLE_BYTES = 1 << 20


def _infer_types(path: Path, names: Sequence[str], *, skip_lines: int, delimiter: str,
                 end_offset: int | None, known: Mapping[str, pa.DataType],
                 newlines_in_values: bool = False) -> dict[str, pa.DataType]:
    """Column types inferred by pyarrow from the first MiB of the file (header included).

    Columns that are empty in the sample become float64. Any problem in the sample is
    left to the full read, which reports it with its line.
    """
    import pyarrow.csv as pcsv

    with open(path, "rb") as fh:
        data = fh.read(_SAMPLE_BYTES if end_offset is None else min(_SAMPLE_BYTES, end_offset))
    if len(data) == _SAMPLE_BYTES:
        cut = data.rfind(b"\n")
        if cut <= 0:
            return {}
        data = data[:cut + 1]
    try:
        sample = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(skip_rows=skip_lines, column_names=list(names),
                                          use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"',
                                            double_quote=True,
                                            newlines_in_values=newlines_in_values,
                                            ignore_empty_lines=True),
            convert_options=pcsv.ConvertOptions(column_types=dict(known), null_values=[""],
                                                strings_can_be_null=True,
                                                quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return {}
    out = {}
    for f in sample.schema:
        if f.name in known:
            continue
        out[f.name] = pa.float64() if pa.types.is_null(f.type) else f.type
    return out


def _open_source(path: Path, end_offset: int | None):
    if end_offset is None:
        return str(path)
    mm = pa.memory_map(str(path), "r")
    return pa.BufferReader(mm.read_buffer(end_offset))


def _iter_lines(path: Path, end_offset: int | None):
    """Yield ``(line_number, text)`` of the file (1-based), up to ``end_offset`` bytes."""
    with open(path, "rb") as fh:
        remaining = end_offset
        for number, raw in enumerate(fh, start=1):
            if remaining is not None:
                if remaining <= 0:
                    return
                raw = raw[:remaining]
                remaining -= len(raw)
            yield number, raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _iter_records(path: Path, skip_lines: int, delimiter: str | None, end_offset: int | None):
    """Yield ``(line_number, fields)`` of every non-blank data record after the header.

    ``line_number`` is the 1-based line where the record starts; a quoted value may
    hold line breaks, so a record can span several lines (parsed with :mod:`csv`, as
    pyarrow parses it). ``delimiter=None`` yields the raw text of each line instead.
    """
    lines = (text + "\n" for number, text in _iter_lines(path, end_offset)
             if number > skip_lines)
    if delimiter is None:
        for number, text in enumerate(lines, start=skip_lines + 1):
            if text.strip("\r\n"):
                yield number, text.rstrip("\r\n")
        return
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"')
    consumed = 0
    while True:
        try:
            fields = next(reader)
        except (StopIteration, csv.Error):  # csv.Error: e.g. a field over csv's size limit
            return
        start = skip_lines + consumed + 1
        consumed = reader.line_num
        if not fields or fields == [""]:
            continue
        yield start, [f.strip() for f in fields]


def _line_of_row(path: Path, skip_lines: int, row: int, end_offset: int | None,
                 delimiter: str | None = None) -> int | None:
    """1-based file line of the 0-based data ``row`` (blank lines are skipped by the parser)."""
    for k, (number, _) in enumerate(_iter_records(path, skip_lines, delimiter, end_offset)):
        if k == row:
            return number
    return None


def _locate_parse_error(path, skip_lines, delimiter, expected, end_offset):
    for number, fields in _iter_records(path, skip_lines, delimiter, end_offset):
        if len(fields) != expected:
            return number, len(fields)
    return None, None


def _locate_bad_value(path, skip_lines, delimiter, col_index, value, end_offset):
    for number, fields in _iter_records(path, skip_lines, delimiter, end_offset):
        if col_index < len(fields) and fields[col_index] == value.strip():
            return number
    return None


def _data_region(path: Path, skip_lines: int, end_offset: int | None) -> tuple[int, int]:
    """Byte offsets ``(start, end)`` of the data rows (after ``skip_lines`` lines)."""
    end = path.stat().st_size if end_offset is None else end_offset
    start = 0
    with open(path, "rb") as fh:
        for _ in range(skip_lines):
            line = fh.readline()
            if not line:
                break
            start += len(line)
    return min(start, end), end


def _region_has_quote(path: Path, start: int, end: int) -> bool:
    """Whether the bytes ``[start, end)`` hold a double quote (memchr on a memory map)."""
    import mmap

    if end <= start:
        return False
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return mm.find(b'"', start, end) >= 0


def _check_quotes_closed(path: Path, start: int, end: int, skip_lines: int) -> None:
    """Refuse data with an odd number of double quotes.

    A quoted value that is never closed makes the parser read the rest of the file as
    that one value: rows vanish without an error. In well-formed CSV every quoted value
    has an opening and a closing quote and inner quotes are doubled, so the count is
    even. The error names the line where the last unbalanced quote opens.
    """
    count = 0
    with open(path, "rb") as fh:
        fh.seek(start)
        pos = start
        while pos < end:
            block = fh.read(min(1 << 24, end - pos))
            if not block:
                break
            count += block.count(b'"')
            pos += len(block)
    if count % 2 == 0:
        return
    opened, odd = None, False
    for number, text in _iter_lines(path, end):
        if number <= skip_lines:
            continue
        if text.count('"') % 2:
            odd = not odd
            opened = number if odd else None
    raise FormatError('a quoted value is never closed (odd number of \'"\' in the data): the '
                      "rest of the file would be read as one value", path=path, line=opened)


def _check_complete(path: Path, start: int, end: int, delimiter: str) -> None:
    """Warn when the data do not end with a line break: the last row may be cut.

    A row cut short of its field count is already an error (truncated row); a row cut
    inside its *last* value still parses (``21.5`` -> ``2``), and no reader can tell
    that from a file whose writer omitted the final line break, so this is a
    :class:`~smlmspine.errors.QualityWarning` naming the line and the value.
    """
    import warnings

    from ..errors import QualityWarning

    if end <= start:
        return
    with open(path, "rb") as fh:
        tail_at = max(start, end - (1 << 16))
        fh.seek(tail_at)
        tail = fh.read(end - tail_at)
        if tail.endswith((b"\n", b"\r")):
            return
        fh.seek(0)
        n_newlines, pos = 0, 0
        while pos < end:
            block = fh.read(min(1 << 24, end - pos))
            if not block:
                break
            n_newlines += block.count(b"\n")
            pos += len(block)
    last = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace").rstrip("\r")
    fields = split_fields(last, delimiter) if last.strip() else [""]
    warnings.warn(f"{path}, line {n_newlines + 1}: the file does not end with a line break, "
                  f"so its last row may be truncated (last value {fields[-1][:40]!r}); check "
                  "that the file was copied completely", QualityWarning, stacklevel=4)


def read_text_table(path: str | Path, *, fmt: str, names: Sequence[str], delimiter: str,
                    skip_lines: int, roles: Iterable[Role],
                    pixel_size_nm: float | None = None, end_offset: int | None = None,
                    float_columns: Iterable[str] = (), default_length_unit: str | None = None,
                    extra_units: Mapping[str, str] | None = None,
                    extra_metadata: Mapping | None = None,
                    channel_names: str | None = None,
                    ignore_columns: Iterable[str] = ()) -> pa.Table:
    """Stream a delimited text file into the canonical localization table.

    Parameters
    ----------
    path : str or Path
        The file.
    fmt : str
        Reader name, stored in the table metadata.
    names : sequence of str
        Column names of the data rows in file order (from the header, de-duplicated
        here with ``#2`` suffixes when a name repeats).
    delimiter : str
        One character: ``,``, ``;``, ``\\t`` or a space.
    skip_lines : int
        Number of header lines before the first data row.
    roles : iterable of Role
        Source column -> canonical column (with the source unit). Source columns without
        a role are kept under their sanitized name (unit from ``extra_units``).
    pixel_size_nm : float, optional
        Needed when a length column is in pixels.
    end_offset : int, optional
        Read only the first ``end_offset`` bytes (Zeiss files carry metadata after a NUL).
    float_columns : iterable of str
        Source columns to parse as float64 (roles of length columns always are).
    default_length_unit : str, optional
        Unit for length columns whose role states none (generic CSV's ``coordinate_unit``).
    extra_units : mapping, optional
        Unit of kept (non-canonical) source columns.
    extra_metadata : mapping, optional
        Stored in the table metadata.
    channel_names : str, optional
        Source column of string channel names: the canonical ``channel`` gets integer
        codes (sorted names -> 0, 1, ...) and the names are kept.
    ignore_columns : iterable of str
        Names (in ``names``) of columns to drop, e.g. the empty field a trailing
        delimiter creates.

    Returns
    -------
    pyarrow.Table
        Canonical localization table (coordinates in nm).

    Raises
    ------
    FormatError
        Header only, truncated/overlong rows, unparsable values, missing/NaN/inf
        coordinates, pixel units without a pixel size; naming file, line and column.
    """
    import pyarrow.csv as pcsv

    path = Path(path)
    names = _dedupe(list(names))
    roles = list(roles)
    by_target = {r.target: r for r in roles}
    for need in ("x", "y"):
        if need not in by_target:
            raise FormatError(f"missing coordinate column {need!r}; the header has {list(names)}",
                              path=path, line=skip_lines or None)
    role_sources = {r.source for r in roles}
    unknown = role_sources - set(names)
    if unknown:
        raise FormatError(f"column(s) {sorted(unknown)} not in the header {list(names)}", path=path)

    # Units first: a pixel file without a pixel size fails before a long read.
    factors: dict[str, float] = {}
    pixel_used = None
    for r in roles:
        if r.target in _NUMERIC_LENGTH:
            factors[r.target] = length_factor_nm(r.unit, pixel_size_nm=pixel_size_nm, path=path,
                                                 column=r.source, default_unit=default_length_unit)
            if normalize_unit(r.unit or default_length_unit) in PIXEL_UNITS:
                pixel_used = float(pixel_size_nm)

    # Explicit types where they are known; the rest is inferred (and widened on retry).
    types: dict[str, pa.DataType] = {}
    for r in roles:
        if r.target in _NUMERIC_LENGTH or r.target in ("time_s", "photons", "background"):
            types[r.source] = pa.float64()
    for c in float_columns:
        if c in names:
            types[c] = pa.float64()
    if channel_names is not None:
        types[channel_names] = pa.string()
    forced = set(types)
    # Every other column gets the type inferred from a sample at the head of the file:
    # explicit types for all columns take ~40 % less CPU than pyarrow's per-block
    # inference, and integer columns stay integers (widened on retry if a later row
    # needs it).
    # A quote in the data may hide a line break inside a value: then blocks must be cut
    # by pyarrow's quote-aware chunker (newlines_in_values) and the newline-aligned
    # parallel chunks below are not safe, so such files are streamed.
    data_start, data_end = _data_region(path, skip_lines, end_offset)
    quoted = _region_has_quote(path, data_start, data_end)
    if quoted:
        _check_quotes_closed(path, data_start, data_end, skip_lines)
    types.update(_infer_types(path, names, skip_lines=skip_lines, delimiter=delimiter,
                              end_offset=end_offset, known=types, newlines_in_values=quoted))

    raw = None
    for _attempt in range(len(names) * 2 + 2):
        try:
            parallel = (not quoted and end_offset is None
                        and path.stat().st_size > 2 * _CHUNK_BYTES)
            reader = _parallel_csv if parallel \
                else (lambda p, skip_lines, **kw: _stream_csv(_open_source(p, end_offset), **kw))
            raw = reader(
                path, skip_lines=skip_lines,
                read_options=pcsv.ReadOptions(skip_rows=skip_lines, column_names=names,
                                              use_threads=True, block_size=_BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char='"',
                                                double_quote=True, newlines_in_values=quoted,
                                                ignore_empty_lines=True),
                convert_options=pcsv.ConvertOptions(column_types=types, null_values=[""],
                                                    strings_can_be_null=True,
                                                    quoted_strings_can_be_null=True,
                                                    check_utf8=True))
            break
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            m = _CONVERT_RE.search(msg)
            if m:
                idx, typ, value = int(m.group(1)), m.group(2), m.group(3)
                col = names[idx] if idx < len(names) else f"#{idx}"
                widened = None
                if col not in forced:
                    widened = {"null": pa.float64(), "int64": pa.float64()}.get(typ)
                    if widened is None and col not in role_sources:
                        widened = pa.string()  # a kept free-text column
                if widened is not None and not types.get(col, pa.null()).equals(widened):
                    types[col] = widened
                    continue
                line = _locate_bad_value(path, skip_lines, delimiter, idx, value, end_offset)
                hint = ""
                if delimiter != "," and re.fullmatch(r"\s*[-+]?\d+,\d+\s*", value):
                    hint = ("; decimal commas are not read (units and separators are never "
                            "guessed): export with '.' as the decimal separator")
                raise FormatError(f"cannot read value {value[:40]!r} as a number "
                                  f"(expected {typ}){hint}", path=path, line=line,
                                  column=col) from None
            m = _PARSE_RE.search(msg)
            if m:
                expected = int(m.group(1))
                line, got = _locate_parse_error(path, skip_lines, delimiter, expected, end_offset)
                got = got if got is not None else int(m.group(2))
                what = "truncated row" if got < expected else "row with too many fields"
                hint = ""
                if got == 1 and expected > 1:
                    hint = f"; is the delimiter {delimiter!r} right?"
                raise FormatError(f"{what}: expected {expected} fields separated by "
                                  f"{delimiter!r}, found {got}{hint}", path=path, line=line) from None
            if "UTF8" in msg or "utf8" in msg or "UTF-8" in msg:
                raise FormatError("not valid UTF-8 text (binary content?)", path=path) from None
            raise FormatError(f"cannot be parsed as delimited text: {msg.splitlines()[0][:200]}",
                              path=path) from None
    if raw is None:  # pragma: no cover - the retry loop always ends in break or raise
        raise FormatError("cannot be parsed", path=path)
    if raw.num_rows == 0:
        raise FormatError("no localizations: the file has a header but no data rows",
                          path=path, line=skip_lines + 1)

    columns: dict[str, object] = {}
    original: dict[str, str] = {}
    units: dict[str, str] = {}
    for r in roles:
        col = raw.column(r.source)
        if r.target in _NUMERIC_LENGTH:
            factor = factors[r.target]
            if not col.type.equals(pa.float64()):
                col = col.cast(pa.float64())
            if factor != 1.0:
                col = pc.multiply(col, _float_scalar(factor))
        elif r.target == "channel" and r.source == channel_names:
            continue
        columns[r.target] = col
        original[r.target] = r.source
        if r.target not in COLUMNS and r.unit:
            units[r.target] = r.unit
    if channel_names is not None:
        name_col = raw.column(channel_names)
        uniq = sorted(v for v in pc.unique(name_col).to_pylist() if v is not None)
        codes = pc.index_in(name_col, value_set=pa.array(uniq, pa.string()))
        columns["channel"] = pc.fill_null(codes, -1).cast(pa.int64())
        original["channel"] = channel_names
    where = (path, skip_lines, end_offset, original, delimiter)
    _check_finite(columns, *where)
    _check_integral(columns, *where)
    _check_frame_sign(columns, *where)
    _check_complete(path, data_start, data_end, delimiter)
    extra_units = dict(extra_units or {})
    ignore = set(ignore_columns)
    for name in names:
        if (name in role_sources and name != channel_names) or name in ignore:
            continue
        col = raw.column(name)
        if pa.types.is_null(col.type):
            col = col.cast(pa.float64())
        columns[name] = col
        original[name] = name
        if extra_units.get(name):
            units[name] = extra_units[name]
    meta = dict(extra_metadata or {})
    try:
        return make_table(columns, units=units, original_names=original, source=str(path),
                          format=fmt, pixel_size_nm=pixel_used, extra_metadata=meta)
    except Exception as exc:
        # e.g. a non-integer frame value
        raise FormatError(str(exc), path=path) from exc


def _float_scalar(value: float) -> pa.Scalar:
    """A float64 Arrow scalar built from raw bytes (``pa.scalar`` imports pandas, which
    costs a noticeable fraction of a second on the first read of a process)."""
    import struct

    buf = pa.py_buffer(struct.pack("<d", float(value)))
    return pa.Array.from_buffers(pa.float64(), 1, [None, buf])[0]


_INT_TARGETS = [n for n, spec in COLUMNS.items() if pa.types.is_integer(spec.type)]


def _check_integral(columns, path, skip_lines, end_offset, original, delimiter=None):
    """Cast float-typed integer columns (frame written as ``1.0``) to int64, or raise
    naming the first line holding a non-integer or missing value."""
    for name in _INT_TARGETS:
        col = columns.get(name)
        if col is None or not pa.types.is_floating(col.type):
            continue
        if col.null_count == 0:
            try:  # a safe cast fails on any fraction, NaN, inf or overflow
                columns[name] = pc.cast(col, pa.int64())
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        values = col.to_numpy() if isinstance(col, pa.Array) else col.to_numpy()
        values = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.floor(values)) | (np.abs(values) >= 2.0 ** 63)
        row = int(np.flatnonzero(bad)[0])
        value = col[row].as_py()
        line = _line_of_row(path, skip_lines, row, end_offset, delimiter)
        shown = "missing" if value is None else repr(value)
        raise FormatError(f"{name} must be a whole number, found {shown}", path=path, line=line,
                          column=original.get(name, name))


def _check_finite(columns, path, skip_lines, end_offset, original, delimiter=None):
    for name in COORDINATES:
        if name not in columns:
            continue
        col = columns[name]
        ok = pc.is_finite(col)
        if col.null_count == 0 and pc.all(ok).as_py():
            continue
        arr = col.to_numpy() if isinstance(col, pa.Array) else col.to_numpy()
        bad_rows = np.flatnonzero(~np.isfinite(np.asarray(arr, dtype=float)))
        row = int(bad_rows[0])
        line = _line_of_row(path, skip_lines, row, end_offset, delimiter)
        value = "missing" if np.isnan(arr[row]) and col.null_count else repr(float(arr[row]))
        raise FormatError(f"coordinate {name} is not finite ({value}) in {bad_rows.size} row(s); "
                          "localizations need finite coordinates", path=path, line=line,
                          column=original.get(name, name))


def _check_frame_sign(columns, path, skip_lines, end_offset, original, delimiter=None):
    """Frames count from 0 (rapidSTORM) or 1 (ThunderSTORM, ZEN): a negative frame is
    a damaged or foreign column, reported with its line."""
    col = columns.get("frame")
    if col is None or len(col) == 0 or not pa.types.is_integer(col.type):
        return
    low = pc.min(col).as_py()
    if low is None or low >= 0:
        return
    values = np.asarray(col.to_numpy(zero_copy_only=False) if isinstance(col, pa.Array)
                        else col.to_numpy())
    row = int(np.flatnonzero(values < 0)[0])
    n_bad = int(np.count_nonzero(values < 0))
    line = _line_of_row(path, skip_lines, row, end_offset, delimiter)
    raise FormatError(f"frame must be >= 0 (frames count from 0 or 1), found {int(values[row])} "
                      f"in {n_bad} row(s)", path=path, line=line,
                      column=original.get("frame", "frame"))
