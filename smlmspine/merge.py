"""Blink merging: one localization per emitter burst (STORM), one per trace (MINFLUX).

:func:`merge_blinks` links localizations of the same emitter in consecutive frames (a
dark gap of up to ``max_gap_frames`` frames allowed) and replaces each burst by one
localization: photon-weighted mean position, summed photons, combined precision
``1 / sqrt(sum 1 / sigma_i^2)``, first frame, and the columns ``first_frame``,
``last_frame`` and ``n_merged``.

Linking test. By default it adapts to each localization's precision: a localization
of precision ``s_i`` joins a burst of combined precision ``s_b`` when its distance to
the burst's photon-weighted position is at most ``n_sigma * sqrt(s_i^2 + s_b^2)``
(``n_sigma = 3.5``, laterally with ``precision_xy`` and axially with ``precision_z``),
so a dim localization with a wide scatter is not split off while bright ones are held
to a tight radius; for median precision ``s`` that is a radius of about ``5 s``
between two single localizations. With ``radius_nm`` (and ``radius_z_nm``) a fixed
distance is used instead. ``max_gap_frames = 1`` by default: one missed frame (a
localization the fitter rejected) does not split a burst.

Tables without ``frame`` but with ``track_id`` (MINFLUX) are averaged per trace by
:func:`smlmspine.minflux.average_traces` (one implementation for the package); the
linking options do not apply to them, and giving one warns
(:class:`~smlmspine.errors.QualityWarning`).

Examples
--------
>>> from smlmspine.schema import make_table
>>> t = make_table({"x": [0.0, 2.0, 500.0, 1.0], "y": [0.0, 0.0, 0.0, 0.0],
...                 "frame": [0, 1, 1, 2], "photons": [100.0, 300.0, 50.0, 100.0]})
>>> m = merge_blinks(t, radius_nm=20.0, max_gap_frames=0)
>>> m.column("n_merged").to_pylist(), m.column("x").to_pylist()
([3, 1], [1.4, 500.0])
>>> m.column("photons").to_pylist()
[500.0, 50.0]
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ._validate import integer, positive
from .errors import ParameterError, QualityWarning, SchemaError
from .schema import COLUMNS, make_table, unit_of, validate, with_history

__all__ = ["merge_blinks", "default_merge_parameters", "DEFAULT_N_SIGMA"]

_MAX_CELLS = 50_000_000
#: Default adaptive linking threshold in combined standard deviations (a true link of
#: 2D Gaussian scatter fails it with probability exp(-3.5^2 / 2) = 0.2 %).
DEFAULT_N_SIGMA = 3.5


def _median_positive(table: pa.Table, name: str) -> float | None:
    if name not in table.column_names:
        return None
    v = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(v)) if v.size else None


def default_merge_parameters(table: pa.Table) -> dict[str, float]:
    """The default linking parameters for a table, with the typical distances they give.

    ``typical_radius_nm`` / ``typical_radius_z_nm`` are the adaptive linking distances
    for two localizations of median precision: ``n_sigma * sqrt(2) * median``.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with ``precision_xy`` (and optionally ``precision_z``) in nm; only
        the finite positive precisions count.

    Returns
    -------
    dict
        ``n_sigma`` (:data:`DEFAULT_N_SIGMA`), ``max_gap_frames`` (1),
        ``typical_radius_nm`` and ``typical_radius_z_nm`` in nm (the median
        ``precision_z``, or ``3 x`` the median ``precision_xy`` without it).

    Raises
    ------
    ParameterError
        When the table has no ``precision_xy`` to derive the distances from.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 1.0], "y": [0.0, 0.0], "frame": [0, 1],
    ...                 "precision_xy": [10.0, 10.0]})
    >>> p = default_merge_parameters(t)
    >>> round(float(p["typical_radius_nm"]), 2), round(float(p["typical_radius_z_nm"]), 2)
    (49.5, 148.49)
    """
    pxy = _median_positive(table, "precision_xy")
    if pxy is None:
        raise ParameterError("merge_blinks: the table has no 'precision_xy' column to derive "
                             "the linking distance from; give radius_nm=")
    pz = _median_positive(table, "precision_z") or 3.0 * pxy
    k = DEFAULT_N_SIGMA * np.sqrt(2.0)
    return {"n_sigma": DEFAULT_N_SIGMA, "max_gap_frames": 1, "typical_radius_nm": k * pxy,
            "typical_radius_z_nm": k * pz}


def _warn_ignored_for_minflux(**given) -> None:
    """Warn about the linking options given for a MINFLUX table (they do not apply)."""

    def differs(name, value):
        if name != "n_sigma":
            return value is not None
        try:
            return float(value) != DEFAULT_N_SIGMA
        except (TypeError, ValueError):
            return True

    ignored = [f"{name}={value!r}" for name, value in given.items() if differs(name, value)]
    if ignored:
        warnings.warn(
            f"merge_blinks: {', '.join(ignored)} ignored: this is a MINFLUX table ('track_id', "
            "no 'frame'), whose traces are averaged per track_id "
            "(smlmspine.minflux.average_traces), not linked by distance and frame gap",
            QualityWarning, stacklevel=3)


def _link_kernel(x, y, z, w, frame, v, vz, k2, r, rz, gap, cell, lo_x, lo_y, nx, ny):
    """Greedy burst linking in frame order (compiled with numba by :func:`_link`).

    Active bursts hang in singly linked lists per grid cell (cell of the first
    localization, cell size >= 2 x the largest linking distance; the shared cell grid of
    :mod:`smlmspine._grid`, y fastest, only the cells holding a localization are
    stored); a localization joins the closest burst in the 3x3 cells around it that was
    last seen at most ``gap + 1`` frames ago, has no localization in this frame yet and
    passes the distance test to the burst's photon-weighted position:
    ``d^2 <= k2 (v_i + 1 / sum 1/v_j)`` with the variances ``v`` (adaptive, ``k2 > 0``)
    or ``d <= r`` and ``|dz| <= rz`` (fixed). Otherwise it starts a new burst. Expired
    bursts are unlinked on the way.
    """
    n = x.size
    dims = np.empty(2, np.int64)
    dims[0] = nx
    dims[1] = ny
    strides = np.empty(2, np.int64)
    strides[0] = ny
    strides[1] = 1
    origin = np.empty(2)
    origin[0] = lo_x
    origin[1] = lo_y
    xy = np.empty((n, 2))
    for i in range(n):
        xy[i, 0] = x[i]
        xy[i, 1] = y[i]
    keys = point_keys(xy, origin, cell, 0, dims, strides)
    total = nx * ny
    order, ukeys, starts = sort_cells(keys, total)
    if total <= 4 * n + 64:  # dense cell table (as _grid.dense_ok)
        slots = cell_slots(ukeys, total)
    else:
        slots = np.empty(0, np.int64)
    cell_id = np.empty(n, np.int64)  # occupied cell of every localization
    for c in range(ukeys.shape[0]):
        for s in range(starts[c], starts[c + 1]):
            cell_id[order[s]] = c
    head = np.full(ukeys.shape[0], -1, np.int64)
    nxt = np.full(n, -1, np.int64)
    sx = np.zeros(n)
    sy = np.zeros(n)
    sz = np.zeros(n)
    sw = np.zeros(n)
    sv = np.zeros(n)
    svz = np.zeros(n)
    last = np.zeros(n, np.int64)
    label = np.empty(n, np.int64)
    nb_first, nb_cells = neighbour_table(ukeys, slots, dims, strides, 1)
    n_bursts = 0
    for i in range(n):
        f = frame[i]
        ci = cell_id[i]
        best = -1
        bestd = 2.0
        for t in range(nb_first[ci], nb_first[ci + 1]):
            c = nb_cells[t]
            prev = -1
            b = head[c]
            while b >= 0:
                b_next = nxt[b]
                if last[b] < f - gap - 1:
                    # expired: unlink
                    if prev < 0:
                        head[c] = b_next
                    else:
                        nxt[prev] = b_next
                else:
                    if last[b] < f:
                        mx = sx[b] / sw[b]
                        my = sy[b] / sw[b]
                        d2 = (x[i] - mx) ** 2 + (y[i] - my) ** 2
                        dz = z[i] - sz[b] / sw[b]
                        if k2 > 0:
                            # chi-square test against the combined uncertainty
                            lim = k2 * (v[i] + 1.0 / sv[b])
                            limz = k2 * (vz[i] + 1.0 / svz[b])
                            score = d2 / lim
                            okz = dz * dz <= limz
                        else:
                            lim = r * r
                            score = d2 / lim
                            okz = abs(dz) <= rz
                        if score <= 1.0 and okz and score < bestd:
                            bestd = score
                            best = b
                    prev = b
                b = b_next
        if best < 0:
            best = n_bursts
            n_bursts += 1
            c = cell_id[i]
            nxt[best] = head[c]
            head[c] = best
        sx[best] += w[i] * x[i]
        sy[best] += w[i] * y[i]
        sz[best] += w[i] * z[i]
        sw[best] += w[i]
        sv[best] += 1.0 / v[i]
        svz[best] += 1.0 / vz[i]
        last[best] = f
        label[i] = best
    return label


_KERNEL = None
# grid functions of the kernel, bound by _link (numba resolves them when it compiles)
point_keys = sort_cells = cell_slots = neighbour_table = None


def _link(*args):
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        from . import _grid

        # the kernel's grid functions become module globals only here, so that
        # ``import smlmspine.merge`` does not import numba
        globals().update(point_keys=_grid.point_keys, sort_cells=_grid.sort_cells,
                         cell_slots=_grid.cell_slots, neighbour_table=_grid.neighbour_table)
        _KERNEL = njit(cache=True)(_link_kernel)
    return _KERNEL(*args)


@dataclass(frozen=True)
class _LinkSetup:
    """What the linking needs beyond the rows: the test, the precision clipping, the grid.

    Derived from the whole table (:func:`_link_setup`), so that parts of a table linked
    separately (:mod:`smlmspine._large`, frame windows) are linked exactly as the whole.
    """

    adaptive: bool
    n_sigma: float
    r: float                       # fixed radius, or the adaptive reach (nm)
    rz: float                      # axial limit (nm; inf in 2D)
    gap: int
    is3d: bool
    clip_xy: tuple[float, float] | None   # (median, 99th percentile) of precision_xy
    clip_z: tuple[float, float] | None    # the same of precision_z (None: 3 x xy)
    grid: tuple[float, float, float, int, int]   # lo_x, lo_y, cell, nx, ny


def _bounds(table: pa.Table) -> tuple[float, float, float, float] | None:
    """(min x, max x, min y, max y) of a table, None when it is empty."""
    if table.num_rows == 0:
        return None
    x = table.column("x").to_numpy()
    y = table.column("y").to_numpy()
    return float(x.min()), float(x.max()), float(y.min()), float(y.max())


def _clip(values, name: str) -> tuple[float, float]:
    """(median, 99th percentile) of the positive finite precisions, missing ones count as the median."""
    v = np.asarray(values, dtype=float)
    good = np.isfinite(v) & (v > 0)
    if not good.any():
        raise ParameterError(f"merge_blinks: column {name!r} holds no positive precision")
    med = np.median(v[good])
    v = np.where(good, v, med)
    return float(med), float(np.percentile(v, 99))


def _variances(values, clip: tuple[float, float]) -> np.ndarray:
    """Variances (nm^2) of a precision column with the table-wide clipping ``clip``."""
    v = np.asarray(values, dtype=float)
    good = np.isfinite(v) & (v > 0)
    v = np.where(good, v, clip[0])
    v = np.minimum(v, clip[1])
    return v * v


def _link_setup(names, n: int, precision_xy, precision_z, bounds, *, radius_nm, gap: int,
                radius_z_nm, n_sigma: float) -> _LinkSetup:
    """The linking parameters of a whole table (its column names, row count, precision
    columns and x/y bounds); raises the ParameterErrors of :func:`merge_blinks`."""
    is3d = "z" in names
    adaptive = radius_nm is None
    clip_xy = clip_z = None
    if adaptive:
        if "precision_xy" not in names:
            raise ParameterError("merge_blinks: the table has no 'precision_xy' column to derive "
                                 "the linking distance from; give radius_nm=")
        clip_xy = _clip(precision_xy, "precision_xy")
        if "precision_z" in names:
            clip_z = _clip(precision_z, "precision_z")
        # the largest variance after clipping: the 99th percentile squared
        vmax_xy = clip_xy[1] * clip_xy[1]
        vmax_z = clip_z[1] * clip_z[1] if clip_z is not None else 9.0 * vmax_xy
        reach = float(n_sigma * np.sqrt(2.0 * vmax_xy)) if n else 1.0
        r, rz = reach, float(n_sigma * np.sqrt(2.0 * vmax_z)) if n else 1.0
    else:
        r = positive(radius_nm, "radius_nm", unit="nm")
        if not r * r > 0:  # the kernel compares squared distances
            raise ParameterError(f"radius_nm must be >= 1e-150 nm (its square is used), got {r!r}")
        if radius_z_nm is None:
            pz = None
            if precision_z is not None:
                v = np.asarray(precision_z, dtype=float)
                v = v[np.isfinite(v) & (v > 0)]
                pz = float(np.median(v)) if v.size else None
            rz = 3.0 * pz if pz else 3.0 * r
        else:
            rz = positive(radius_z_nm, "radius_z_nm", unit="nm")
        reach = r
    if not rz > 0:
        raise ParameterError(f"radius_z_nm must be > 0, got {radius_z_nm}")
    if adaptive and radius_z_nm is not None:
        raise ParameterError("radius_z_nm needs radius_nm (the adaptive test uses precision_z)")
    grid = (0.0, 0.0, 1.0, 1, 1)
    if n and bounds is not None:
        x0, x1, y0, y1 = bounds
        # cells >= 2 x the reach; never so small that the cell counts overflow
        cell = max(2.0 * reach, float(np.sqrt((x1 - x0) * (y1 - y0) / _MAX_CELLS)), 1e-300)
        nx = int((x1 - x0) // cell) + 1
        ny = int((y1 - y0) // cell) + 1
        while nx * ny > _MAX_CELLS:
            cell *= 2
            nx = int((x1 - x0) // cell) + 1
            ny = int((y1 - y0) // cell) + 1
        grid = (x0, y0, cell, nx, ny)
    return _LinkSetup(adaptive, float(n_sigma), r, rz if is3d else np.inf, gap, is3d,
                      clip_xy, clip_z, grid)


def _link_rows(table: pa.Table, setup: _LinkSetup, order: np.ndarray | None = None):
    """Burst labels of the rows of ``table`` in frame order.

    Returns ``(order, labels_sorted, w)``: the row order (stable by frame unless
    ``order`` is given), the burst label of each row in that order and the photon
    weights (in table order).
    """
    n = table.num_rows
    names = table.column_names
    frame = table.column("frame").to_numpy()
    if order is None:
        order = np.argsort(frame, kind="stable")
    x = table.column("x").to_numpy()
    y = table.column("y").to_numpy()
    z = table.column("z").to_numpy() if setup.is3d else np.zeros(n)
    w = np.ones(n)
    if "photons" in names:
        ph = np.asarray(table.column("photons").to_numpy(zero_copy_only=False), float)
        w = np.where(np.isfinite(ph) & (ph > 0), ph, 0.0)
        w = np.where(w > 0, w, 1e-9)
    if setup.adaptive:
        vxy = _variances(table.column("precision_xy").to_numpy(zero_copy_only=False),
                         setup.clip_xy)
        vz = (_variances(table.column("precision_z").to_numpy(zero_copy_only=False),
                         setup.clip_z) if setup.clip_z is not None else vxy * 9.0)
    else:
        vxy = vz = np.ones(n)
    labels_sorted = np.zeros(0, np.int64)
    if n:
        lo_x, lo_y, cell, nx, ny = setup.grid
        c = np.ascontiguousarray
        labels_sorted = _link(c(x[order]), c(y[order]), c(z[order]), c(w[order]),
                              c(frame[order]).astype(np.int64), c(vxy[order]), c(vz[order]),
                              setup.n_sigma ** 2 if setup.adaptive else 0.0, setup.r,
                              setup.rz, setup.gap, cell, lo_x, lo_y, nx, ny)
    return order, labels_sorted, w


def _aggregate(table: pa.Table, order: np.ndarray, labels_sorted: np.ndarray, w: np.ndarray):
    """One row per burst (the package's aggregator) over the rows in frame order.

    Bursts are numbered by first appearance, a burst's first row is its first
    localization. Returns the table (without history; the input's schema metadata) and
    the :class:`~smlmspine._aggregate.Groups` of the labels.
    """
    from ._aggregate import Groups

    names = table.column_names
    frame = table.column("frame").to_numpy()
    g = Groups(labels_sorted)
    first_idx = order[g.first_rows]
    w_f = w[order]

    def values(col) -> np.ndarray:
        return np.asarray(col.to_numpy(zero_copy_only=False), float)[order]

    cols: dict[str, object] = {}
    units: dict[str, str] = {}
    for name in names:
        col = table.column(name)
        if name in ("x", "y", "z"):
            cols[name] = g.weighted_mean(values(col), w_f)
        elif name == "photons":
            cols[name] = g.sum(values(col))
        elif name in ("precision_xy", "precision_z"):
            cols[name] = 1.0 / np.sqrt(g.sum(1.0 / values(col) ** 2))
        elif name == "background":
            cols[name] = g.mean(values(col))
        elif name in COLUMNS or not (pa.types.is_floating(col.type)):
            cols[name] = col.take(pa.array(first_idx))
        else:
            cols[name] = g.mean(values(col))
        if name not in COLUMNS:
            u = unit_of(table, name)
            if u is not None:
                units[name] = u
    cols["first_frame"] = frame[first_idx]
    cols["last_frame"] = g.max(frame[order].astype(np.int64))
    cols["n_merged"] = g.counts
    units.update({"first_frame": "frame", "last_frame": "frame", "n_merged": "1"})
    out = make_table(cols, units=units)
    return out.replace_schema_metadata(table.schema.metadata), g


def merge_blinks(table: pa.Table, *, radius_nm: float | None = None,
                 max_gap_frames: int | None = None, radius_z_nm: float | None = None,
                 n_sigma: float = DEFAULT_N_SIGMA) -> pa.Table:
    """Merge the localizations of each emitter burst into one.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations with ``frame`` (STORM). Without ``frame`` but with ``track_id``
        (MINFLUX) the traces are averaged by :func:`smlmspine.minflux.average_traces`
        and the four options below are ignored (with a warning when one is given).
    radius_nm : float, optional
        Fixed largest lateral distance in nm of a localization from the burst's running
        position. Default: the adaptive test (below) from ``precision_xy``.
    max_gap_frames : int, optional
        Dark frames allowed inside a burst (default 1; 0 links consecutive frames only).
    radius_z_nm : float, optional
        Fixed largest axial distance in nm with ``radius_nm`` (3D; default ``3 x`` the
        median ``precision_z``, or ``3 x radius_nm`` without it).
    n_sigma : float
        Adaptive test (no ``radius_nm``): a localization with precision ``s_i`` joins a
        burst whose combined precision is ``s_b`` when its lateral distance is at most
        ``n_sigma * sqrt(s_i^2 + s_b^2)`` (and likewise in z with ``precision_z``, or
        ``3 x precision_xy`` without it). Precisions are clipped at their 99th
        percentile.

    Returns
    -------
    pyarrow.Table
        One row per burst in order of first appearance: canonical columns aggregated
        (x, y, z photon-weighted means, or plain means without ``photons``; photons
        summed; precisions combined; ``frame``, ``time_s``, ``channel``, ids from the
        first localization; ``background`` averaged), other numeric columns averaged,
        non-numeric ones from the first localization, plus ``first_frame``,
        ``last_frame`` and ``n_merged``. The history gets a ``merge.blinks`` step.
        For a MINFLUX table: the result of :func:`smlmspine.minflux.average_traces`.

    Raises
    ------
    SchemaError
        Neither ``frame`` nor ``track_id``, or a table that fails validation.
    ParameterError
        Invalid options, no ``precision_xy`` for the adaptive test (give ``radius_nm``),
        or ``radius_z_nm`` without ``radius_nm``.

    Warns
    -----
    QualityWarning
        A MINFLUX table (``track_id``, no ``frame``) with ``radius_nm``,
        ``max_gap_frames``, ``radius_z_nm`` given or ``n_sigma`` other than
        :data:`DEFAULT_N_SIGMA`: MINFLUX traces are averaged per ``track_id``, not linked
        by distance and frame gap, so these options are ignored (the result is the same
        as without them).
    """
    validate(table)
    names = table.column_names
    if "frame" not in names:
        if "track_id" in names:
            _warn_ignored_for_minflux(radius_nm=radius_nm, max_gap_frames=max_gap_frames,
                                      radius_z_nm=radius_z_nm, n_sigma=n_sigma)
            try:
                from .minflux import average_traces
            except ImportError as exc:  # pragma: no cover - depends on the MINFLUX module
                raise ParameterError("this table has no 'frame' column but a 'track_id': "
                                     "MINFLUX traces are averaged by "
                                     "smlmspine.minflux.average_traces, which is not "
                                     "available in this installation") from exc
            return average_traces(table)
        raise SchemaError(f"merge_blinks needs a 'frame' column (or 'track_id' for MINFLUX); "
                          f"found {names}")
    gap = 1 if max_gap_frames is None else integer(max_gap_frames, "max_gap_frames", minimum=0)
    if not n_sigma > 0:
        raise ParameterError(f"n_sigma must be > 0, got {n_sigma}")

    def column(name):
        return table.column(name).to_numpy(zero_copy_only=False) if name in names else None

    setup = _link_setup(names, table.num_rows, column("precision_xy"), column("precision_z"),
                        _bounds(table), radius_nm=radius_nm, gap=gap,
                        radius_z_nm=radius_z_nm, n_sigma=n_sigma)
    order, labels_sorted, w = _link_rows(table, setup)
    out, _ = _aggregate(table, order, labels_sorted, w)
    n, m = table.num_rows, out.num_rows
    adaptive, r, rz, is3d = setup.adaptive, setup.r, setup.rz, setup.is3d
    return with_history(out, "merge.blinks", {
        "mode": "adaptive" if adaptive else "fixed", "n_sigma": float(n_sigma) if adaptive else None,
        "radius_nm": None if adaptive else r, "radius_z_nm": None if adaptive or not is3d else rz,
        "max_gap_frames": gap, "n_in": n, "n_out": m})
