"""Read -> drift -> merge of a localization file too large for memory, in bounded memory.

:func:`reduce_large` streams a Parquet or Arrow IPC file unit by unit (a Parquet row
group, an Arrow record batch), reading only the columns each pass needs:

1. **Pass 1** (time, coordinates, precisions): a uniform random sample of at most
   ``drift_rows`` localizations (all of them when the file holds fewer; seed fixed) for
   the drift estimate, the precision columns for the merge's table-wide clipping (their
   median and 99th percentile, 8 bytes per localization and column), and the number of
   localizations per frame.
2. The drift is estimated from the sample (:func:`smlmspine.drift.estimate_drift`; its
   estimators cap their own working sets: AIM 60 000 reference and 2 500 query
   localizations per segment).
3. **Pass 2** (x, y, frame): the bounds of the drift-corrected x/y, which fix the
   merge's cell grid as for the whole table.
4. **Pass 3** (every column): frame windows of about ``chunk_rows`` localizations (a
   frame is never split) are read, drift-corrected and linked into bursts
   (:func:`smlmspine.merge.merge_blinks`' kernel with the whole file's parameters). A
   burst that may still continue (its last frame within ``max_gap_frames + 1`` of the
   window's end) is carried, with all its localizations, into the next window and
   linked again there; every other burst is final and written. The greedy linking
   only ever loses candidates by this, never changes a choice, so the bursts are
   exactly those of the in-memory merge; bursts are written in the in-memory order
   (first frame, then file order) unless more than ``chunk_rows`` finished bursts wait
   behind one still open (a burst spanning many windows, e.g. a fiducial), which is
   recorded (``order_exact`` false).

Memory: the precision columns (16 bytes per localization) plus a few copies of one
window and of the drift sample; the input's row groups are read one at a time, so a
file written as one huge row group is held whole. An unsorted file (frames not
increasing from row group to row group) is read once per window in pass 3.

A MINFLUX file (``track_id``, no ``frame``) can be drift-corrected in chunks but its
traces are not averaged in chunks (refused with ``merge=True``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .errors import FormatError, ParameterError, SchemaError

__all__ = ["reduce_large", "LargeResult", "estimate_size", "SizeEstimate",
           "DEFAULT_CHUNK_ROWS", "DEFAULT_DRIFT_ROWS", "IN_MEMORY_FACTOR"]

#: Localizations per frame window of the chunked merge.
DEFAULT_CHUNK_ROWS = 2_000_000
#: Largest drift-estimation sample, localizations.
DEFAULT_DRIFT_ROWS = 4_000_000
#: Peak memory of the in-memory read -> drift -> merge over the table's size (measured:
#: 2.95 GB for a 0.64 GB table of 10^7 localizations, 4.6x; docs/batch.md).
IN_MEMORY_FACTOR = 5
#: Bytes per value assumed for a column without a fixed width (strings, lists).
_VARIABLE_WIDTH_BYTES = 16


@dataclass(frozen=True, slots=True)
class SizeEstimate:
    """Size of a table file, from its metadata only.

    Attributes
    ----------
    rows : int
        Localizations in the file.
    bytes : int
        Bytes of the table in memory when read whole (rows x the column widths;
        16 bytes per value of a column without fixed width).
    units : int
        Parquet row groups or Arrow record batches (the reading unit).
    largest_unit_rows : int
        Rows of the largest unit (held whole while it is read).
    format : str
        ``"parquet"`` or ``"arrow"``.
    """

    rows: int
    bytes: int
    units: int
    largest_unit_rows: int
    format: str


def _row_bytes(schema: pa.Schema, columns=None) -> int:
    total = 0
    for f in schema:
        if columns is not None and f.name not in columns:
            continue
        try:
            total += max(f.type.bit_width // 8, 1)
        except ValueError:
            total += _VARIABLE_WIDTH_BYTES
    return total


class _Source:
    """A Parquet file or an Arrow IPC file, read unit by unit (row group / batch)."""

    def __init__(self, path: Path):
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        self.path = path
        with open(path, "rb") as fh:
            head = fh.read(6)
        try:
            if head[:4] == b"PAR1":
                self.format = "parquet"
                self._pf = pq.ParquetFile(path)
                md = self._pf.metadata
                self.unit_rows = np.array([md.row_group(i).num_rows
                                           for i in range(md.num_row_groups)], np.int64)
                self.schema = self._pf.schema_arrow
            elif head == b"ARROW1":
                self.format = "arrow"
                self._reader = ipc.open_file(pa.memory_map(str(path), "r"))
                self.unit_rows = np.array([self._reader.get_batch(i).num_rows for i in
                                           range(self._reader.num_record_batches)], np.int64)
                self.schema = self._reader.schema
            else:
                raise FormatError("the large-file path reads Parquet or Arrow IPC files "
                                  "(Feather v2); convert the file first "
                                  "(smlmspine convert IN OUT.parquet)", path=path)
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"not a readable Parquet/Arrow file: {exc}", path=path) from exc
        self.offsets = np.concatenate([[0], np.cumsum(self.unit_rows)])

    @property
    def n_rows(self) -> int:
        return int(self.offsets[-1])

    def check(self, coordinate_unit) -> None:
        """The reader's checks of a foreign table (coordinate columns, units) on the schema
        alone, so a file the in-memory reader refuses is refused here with its message."""
        from .io.arrowfiles import _foreign_checked

        _foreign_checked(self.schema.empty_table(), self.path, self.format, coordinate_unit)

    def read(self, i: int, columns, coordinate_unit) -> pa.Table:
        """Unit ``i`` with ``columns`` (those present), in canonical units (nm)."""
        from .io.arrowfiles import _foreign_checked

        cols = [c for c in self.schema.names if c in columns]
        try:
            if self.format == "parquet":
                t = self._pf.read_row_group(i, columns=cols)
            else:
                b = self._reader.get_batch(i).select(cols)
                t = pa.Table.from_batches([b]).replace_schema_metadata(self.schema.metadata)
        except (pa.ArrowException, OSError) as exc:
            raise FormatError(f"not a readable {self.format} file (unit {i}): {exc}",
                              path=self.path) from exc
        return _foreign_checked(t, self.path, self.format, coordinate_unit)


def estimate_size(path: str | Path) -> SizeEstimate | None:
    """The in-memory size of a Parquet / Arrow IPC file, from its metadata.

    Parameters
    ----------
    path : str or Path
        A file of any format.

    Returns
    -------
    SizeEstimate or None
        None for a file that is not Parquet or an Arrow IPC file (those are read whole).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from smlmspine.io import write
    >>> from smlmspine.schema import make_table
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write(make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "frame": [0, 1]}),
    ...           d / "t.parquet")
    >>> e = estimate_size(d / "t.parquet")
    >>> e.rows, e.bytes, e.format
    (2, 48, 'parquet')
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError:
        return None
    if head[:4] != b"PAR1" and head != b"ARROW1":
        return None
    try:
        src = _Source(path)
    except FormatError:
        return None
    return SizeEstimate(src.n_rows, src.n_rows * _row_bytes(src.schema), len(src.unit_rows),
                        int(src.unit_rows.max()) if len(src.unit_rows) else 0, src.format)


@dataclass(frozen=True, eq=False)
class LargeResult:
    """What :func:`reduce_large` produced.

    Attributes
    ----------
    path : Path
        The Parquet file written: drift-corrected (and merged) localizations.
    model : DriftModel or None
        The drift subtracted (None when the stage was skipped).
    stages : dict
        ``read``, ``drift``, ``merge`` summaries as in ``run.json`` plus ``large``
        (chunking figures).
    """

    path: Path
    model: object
    stages: dict


def _strip(t: pa.Table) -> pa.Table:
    return t.replace_schema_metadata(None)


def reduce_large(source: str | Path, out: str | Path, *, drift: str = "aim",
                 segment_frames: int | None = None, merge: bool = True,
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, drift_rows: int = DEFAULT_DRIFT_ROWS,
                 coordinate_unit: str | None = None, seed: int = 0,
                 quiet: bool = True) -> LargeResult:
    """Drift-correct and merge a large Parquet / Arrow IPC file in bounded memory.

    Parameters
    ----------
    source : str or Path
        A Parquet or Arrow IPC (Feather v2) file: smlmspine's own, or a foreign one
        with canonical column names (see :func:`smlmspine.io.arrowfiles.read_parquet`).
    out : str or Path
        The Parquet file to write (atomically: a temporary name, renamed at the end).
    drift : {"aim", "rcc", "fiducial", "none"}
        Drift estimation method (on a sample, see ``drift_rows``).
    segment_frames : int, optional
        Drift segment length in frames (default: the method's choice).
    merge : bool
        Merge blinks (needs ``frame``).
    chunk_rows : int
        Localizations per frame window of the merge (a frame is never split).
    drift_rows : int
        Largest sample for the drift estimate; a file with fewer localizations is used
        whole (and then gives the in-memory estimate exactly).
    coordinate_unit : str, optional
        Unit of x/y/z of a foreign file that states none (never guessed).
    seed : int
        Seed of the drift sample.
    quiet : bool
        No progress lines on stderr.

    Returns
    -------
    LargeResult

    Raises
    ------
    FormatError
        Not a Parquet/Arrow IPC file, or an unreadable one.
    ParameterError
        Bad options, merging a MINFLUX table (``track_id`` without ``frame``), or any
        refusal of the drift estimate or the merge.
    SchemaError
        Missing time column for drift or frame for the merge, missing values.
    """
    import sys

    from ._validate import integer
    from .config import DRIFT_METHODS
    from .io import atomic_output
    from .schema import validate, with_history

    if drift not in DRIFT_METHODS:
        raise ParameterError(f"drift must be one of {DRIFT_METHODS}, got {drift!r}")
    chunk_rows = integer(chunk_rows, "chunk_rows", minimum=1)
    drift_rows = integer(drift_rows, "drift_rows", minimum=1)
    source, out = Path(source), Path(out)
    src = _Source(source)
    src.check(coordinate_unit)

    def log(msg):
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    names = src.schema.names
    n = src.n_rows
    t_axis = "frame" if "frame" in names else ("time_s" if "time_s" in names else None)
    do_drift = drift != "none" and t_axis is not None
    do_merge = bool(merge) and "frame" in names
    if merge and "frame" not in names and "track_id" in names:
        raise ParameterError(f"{source.name}: averaging MINFLUX traces (track_id, no frame) is "
                             "not done in chunks; run with --no-merge, or on a smaller file")
    stages: dict = {}
    large: dict = {"chunk_rows": chunk_rows, "units": len(src.unit_rows),
                   "largest_unit_rows": int(src.unit_rows.max()) if n else 0,
                   "format": src.format}
    t0 = time.perf_counter()

    # ---------------------------------------------------------------- pass 1
    coord = [c for c in ("x", "y", "z") if c in names]
    prec = [c for c in ("precision_xy", "precision_z") if c in names]
    pass1 = coord + prec + ([t_axis] if t_axis else [])
    p = min(1.0, drift_rows / max(n, 1))
    rng = np.random.default_rng(seed)
    sample, precisions = [], {c: [] for c in prec}
    frame_vals, frame_counts = [], []
    unit_lo = np.zeros(len(src.unit_rows), np.int64)
    unit_hi = np.zeros(len(src.unit_rows), np.int64)
    bounds = None
    meta = None
    is_sorted, last = True, None
    for i in range(len(src.unit_rows)):
        t = src.read(i, pass1, coordinate_unit)
        if meta is None:
            meta = t.schema.metadata
        if do_drift:
            sample.append(_strip(t if p >= 1.0 else t.filter(rng.random(t.num_rows) < p)))
        for c in prec:
            precisions[c].append(np.asarray(t.column(c).to_numpy(zero_copy_only=False), float))
        if "frame" in names and t.num_rows:
            col = t.column("frame")
            if col.null_count:
                raise SchemaError(f"{source.name}: column 'frame' has missing value(s)")
            f = col.to_numpy()
            unit_lo[i], unit_hi[i] = f.min(), f.max()
            if last is not None and unit_lo[i] < last or np.any(np.diff(f) < 0):
                is_sorted = False
            last = unit_hi[i]
            u, c_ = np.unique(f, return_counts=True)
            frame_vals.append(u)
            frame_counts.append(c_)
        if not do_drift and t.num_rows:
            b = (float(np.min(t.column("x"))), float(np.max(t.column("x"))),
                 float(np.min(t.column("y"))), float(np.max(t.column("y"))))
            bounds = b if bounds is None else (min(bounds[0], b[0]), max(bounds[1], b[1]),
                                               min(bounds[2], b[2]), max(bounds[3], b[3]))
        del t
    large["frames_sorted"] = bool(is_sorted)
    stages["read"] = {"source": str(source), "format": src.format, "n_localizations": n}
    log(f"read {n} localizations from {source} ({len(src.unit_rows)} units; pass 1 "
        f"{time.perf_counter() - t0:.0f} s)")

    # ---------------------------------------------------------------- drift
    model = None
    if do_drift:
        from .drift import estimate_drift

        t = time.perf_counter()
        st = pa.concat_tables(sample).replace_schema_metadata(meta)
        del sample
        validate(st)
        model = estimate_drift(st, method=drift, segment_frames=segment_frames)
        stages["drift"] = {**model.to_dict(), "sample_rows": st.num_rows,
                           "seconds": time.perf_counter() - t}
        del st
        log(f"drift ({drift}) from a sample of {stages['drift']['sample_rows']}: "
            f"{stages['drift']['seconds']:.0f} s")
    else:
        stages["drift"] = {"skipped": "drift='none'" if drift == "none" else
                           "no frame or time_s column"}
        sample = None

    def corrected(t: pa.Table) -> pa.Table:
        return _strip(model.apply(t)) if model is not None else _strip(t)

    # ---------------------------------------------------------------- pass 2
    t_merge = time.perf_counter()
    setup = None
    if do_merge:
        from .merge import _link_setup

        if do_drift:
            for i in range(len(src.unit_rows)):
                t = corrected(src.read(i, ["x", "y", "frame", t_axis], coordinate_unit))
                if not t.num_rows:
                    continue
                x, y = t.column("x").to_numpy(), t.column("y").to_numpy()
                b = (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
                bounds = b if bounds is None else (min(bounds[0], b[0]), max(bounds[1], b[1]),
                                                   min(bounds[2], b[2]), max(bounds[3], b[3]))
        pcols = {c: np.concatenate(v) if v else np.zeros(0) for c, v in precisions.items()}
        setup = _link_setup(names, n, pcols.get("precision_xy"), pcols.get("precision_z"),
                            bounds, radius_nm=None, gap=1, radius_z_nm=None,
                            n_sigma=_n_sigma())
        del pcols
    del precisions

    # ---------------------------------------------------------------- pass 3
    all_cols = list(names)
    n_out = 0
    with atomic_output(out) as tmp:
        writer = None
        out_schema = None

        def write(table: pa.Table):
            nonlocal writer, out_schema, n_out
            import pyarrow.parquet as pq

            if writer is None:
                out_schema = table.schema.with_metadata(final_meta(table))
                writer = pq.ParquetWriter(tmp, out_schema, compression="zstd")
            writer.write_table(table.cast(out_schema))
            n_out += table.num_rows

        def final_meta(table):
            m = pa.table({"x": [0.0]}).replace_schema_metadata(meta)
            if model is not None:
                m = model.apply(pa.table({"x": [0.0], "y": [0.0], model.axis: pa.array(
                    [0], pa.int64() if model.axis == "frame" else pa.float64())}
                    ).replace_schema_metadata(meta))
            step = {"n_in": n, "chunk_rows": chunk_rows}
            if do_merge:
                step.update({"mode": "adaptive", "n_sigma": setup.n_sigma,
                             "max_gap_frames": setup.gap})
            m = with_history(m, "merge.blinks" if do_merge else "large.stream", step)
            return m.schema.metadata

        try:
            if not do_merge:
                for i in range(len(src.unit_rows)):
                    t = corrected(src.read(i, all_cols, coordinate_unit))
                    validate(t)
                    write(t)
                large["windows"] = len(src.unit_rows)
            else:
                _merge_windows(src, all_cols, coordinate_unit, corrected, setup, write,
                               frame_vals, frame_counts, unit_lo, unit_hi, chunk_rows,
                               large, log)
            if writer is None:   # nothing at all: an empty table with the input's columns
                empty = _strip(src.read(0, all_cols, coordinate_unit).slice(0, 0)) \
                    if len(src.unit_rows) else pa.table({"x": pa.array([], pa.float64())})
                write(empty)
        finally:
            if writer is not None:
                writer.close()
    if do_merge:
        stages["merge"] = {"n_before": n, "n_after": n_out,
                           "seconds": time.perf_counter() - t_merge}
    else:
        stages["merge"] = {"skipped": "merge=False" if not merge else
                           "no frame or track_id column"}
    large["seconds"] = time.perf_counter() - t0
    stages["large"] = large
    log(f"wrote {n_out} localizations to {out} ({large['seconds']:.0f} s)")
    return LargeResult(out, model, stages)


def _n_sigma() -> float:
    from .merge import DEFAULT_N_SIGMA

    return DEFAULT_N_SIGMA


def _window_edges(frame_vals, frame_counts, chunk_rows: int) -> np.ndarray:
    """Start frames of the windows plus the end (exclusive): ~chunk_rows rows each."""
    if not frame_vals:
        return np.zeros(0, np.int64)
    f = np.concatenate(frame_vals)
    c = np.concatenate(frame_counts)
    uf, inv = np.unique(f, return_inverse=True)
    counts = np.bincount(inv, weights=c).astype(np.int64)
    cum = np.cumsum(counts)
    cuts = np.searchsorted(cum, np.arange(chunk_rows, cum[-1], chunk_rows), side="left") + 1
    cuts = np.unique(cuts[cuts < len(uf)])
    return np.concatenate([[uf[0]], uf[cuts], [uf[-1] + 1]]).astype(np.int64)


def _merge_windows(src: _Source, cols, coordinate_unit, corrected, setup, write,
                   frame_vals, frame_counts, unit_lo, unit_hi, chunk_rows, large, log):
    """Pass 3: link frame windows with carry-over, write the bursts in order."""
    from .merge import _aggregate, _link_rows
    from .schema import validate

    edges = _window_edges(frame_vals, frame_counts, chunk_rows)
    gap = setup.gap
    carry = None            # (table, global row index) of the bursts still open
    pending = []            # finished bursts waiting for an earlier open burst
    n_pending = 0
    cache = (None, None)    # the last unit read, with its global row indices
    max_carry = 0
    order_exact = True
    reads = 0
    t0 = time.perf_counter()
    for k in range(len(edges) - 1):
        a, b = int(edges[k]), int(edges[k + 1])
        parts, rows = [], []
        for i in np.flatnonzero((unit_lo < b) & (unit_hi >= a) & (src.unit_rows > 0)):
            if cache[0] != i:
                t = corrected(src.read(int(i), cols, coordinate_unit))
                reads += 1
                cache = (i, t)
            t = cache[1]
            f = t.column("frame").to_numpy()
            keep = (f >= a) & (f < b)
            if keep.all():
                parts.append(t)
                rows.append(src.offsets[i] + np.arange(t.num_rows))
            elif keep.any():
                idx = np.flatnonzero(keep)
                parts.append(t.take(pa.array(idx)))
                rows.append(src.offsets[i] + idx)
        if carry is not None:
            parts.insert(0, carry[0])
            rows.insert(0, carry[1])
        if not parts:
            continue
        table = pa.concat_tables(parts)
        row = np.concatenate(rows)
        del parts, rows
        validate(table)
        frame = table.column("frame").to_numpy()
        order = np.lexsort((row, frame))
        order, labels, w = _link_rows(table, setup, order)
        out, g = _aggregate(table, order, labels, w)
        first_frame = out.column("first_frame").to_numpy()
        first_row = row[order[g.first_rows]]
        last_frame = out.column("last_frame").to_numpy()
        final = (last_frame < b - gap - 1) if k < len(edges) - 2 else np.ones(len(last_frame), bool)
        open_ = ~final
        if open_.any():
            keep_rows = np.sort(order[open_[labels]])
            carry = (table.take(pa.array(keep_rows)), row[keep_rows])
            max_carry = max(max_carry, len(keep_rows))
            # the earliest open burst: finished bursts after it must wait
            j = np.lexsort((first_row[open_], first_frame[open_]))[0]
            lim = (first_frame[open_][j], first_row[open_][j])
        else:
            carry = None
            lim = None
        fin = np.flatnonzero(final)
        pending.append((out.take(pa.array(fin)), first_frame[fin], first_row[fin]))
        n_pending += len(fin)
        del table, out
        # flush what no open burst precedes (all of it when too much waits)
        ptab = pa.concat_tables([p_[0] for p_ in pending])
        pf = np.concatenate([p_[1] for p_ in pending])
        pr = np.concatenate([p_[2] for p_ in pending])
        srt = np.lexsort((pr, pf))
        if lim is None:
            ready = np.ones(len(pf), bool)
        else:
            ready = (pf < lim[0]) | ((pf == lim[0]) & (pr < lim[1]))
        if n_pending > chunk_rows and not ready.all():
            ready[:] = True
            order_exact = False
        srt_ready = srt[ready[srt]]
        if len(srt_ready):
            write(ptab.take(pa.array(srt_ready)))
        rest = np.flatnonzero(~ready)
        pending = [(ptab.take(pa.array(rest)), pf[rest], pr[rest])] if len(rest) else []
        n_pending = len(rest)
        if k % 10 == 0:
            log(f"merge: window {k + 1}/{len(edges) - 1} (frames {a}-{b - 1}), "
                f"{time.perf_counter() - t0:.0f} s")
    large.update({"windows": max(len(edges) - 1, 0), "unit_reads": reads,
                  "max_carry_rows": int(max_carry), "order_exact": order_exact})
