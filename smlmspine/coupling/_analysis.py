"""What ``smlmspine couple`` computes besides :func:`soda`, as API functions.

- :func:`cluster_centroids`: the objects of a clustered localization table (one centroid
  per cluster, from :func:`smlmspine.cluster.cluster_statistics`), ready for :func:`soda`,
  :func:`cross_k` and the other coupling functions.
- :func:`soda_cross_h`: the cross Ripley H function with a Monte-Carlo envelope at the
  radii of a SODA result's rings, in the same region: an independent check of the
  coupling SODA reports (``coupling.png``, ``cross_h_p_value`` of ``summary.json``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import ParameterError, SchemaError
from ._points import as_points
from ._region import make_region
from ._ripley import RipleyResult, cross_k_envelope
from ._soda import SodaResult

__all__ = ["cluster_centroids", "soda_cross_h"]


def cluster_centroids(table: pa.Table, *, dims: int | None = None) -> pa.Table:
    """Cluster centroids of a clustered localization table, as coupling input.

    The statistics table of :func:`smlmspine.cluster.cluster_statistics` (without
    hulls): one row per cluster in increasing ``cluster_id``, ``centroid_x_nm``,
    ``centroid_y_nm`` (, ``centroid_z_nm``) the mean position of its localizations
    (noise, ``cluster_id < 0``, left out). Every coupling function reads these
    columns as the points.

    Parameters
    ----------
    table : pyarrow.Table
        Localizations ``x``, ``y`` (, ``z``) in nm with an integer ``cluster_id``.
    dims : {2, 3}, optional
        Centroids in x/y (2) or x/y/z (3); default: 3 when the table has ``z``.

    Returns
    -------
    pyarrow.Table
        One row per cluster (``data_schemas/clusters.json``).

    Raises
    ------
    SchemaError
        No ``cluster_id`` column (cluster the table first).
    ParameterError
        No clustered localization (every ``cluster_id`` is negative).

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 10.0, 500.0, 520.0, 9.0], "y": [0.0, 0.0, 0.0, 0.0, 9.0],
    ...                 "cluster_id": [0, 0, 1, 1, -1]})
    >>> as_points(cluster_centroids(t)).tolist()
    [[5.0, 0.0], [510.0, 0.0]]
    """
    from ..cluster import cluster_statistics

    if not isinstance(table, pa.Table) or "cluster_id" not in table.column_names:
        raise SchemaError("cluster centroids need a 'cluster_id' column; cluster the "
                          "localizations first (smlmspine.cluster.dbscan / `smlmspine cluster`)")
    stats = cluster_statistics(table, dims=dims, by=None, hulls=False)
    if stats.num_rows == 0:
        raise ParameterError("no clustered localization (every cluster_id < 0)")
    return stats


def soda_cross_h(result: SodaResult, pre, post, *, region="bbox", n_simulations: int = 19,
                 null: str | None = None, voxel_size_nm=None, rng=None) -> RipleyResult:
    """Cross Ripley K/L/H with a Monte-Carlo envelope at the rings of a SODA result.

    The radii are the outer ring edges of ``result`` (``result.r_edges_nm[1:]``), the
    region is the one SODA used (``region`` as given to :func:`soda`), and points outside
    it are left out. Unlike SODA it does not separate coupled pairs; it tests whether
    ``post`` is closer to ``pre`` than the null allows at each distance.

    Parameters
    ----------
    result : SodaResult
        Output of :func:`soda` on the same ``pre``, ``post`` and ``region``.
    pre, post : pyarrow.Table or (N, d) array
        The two populations, nm (tables: ``x, y(, z)`` or ``centroid_*_nm``).
    region : Region, str, tuple or mask
        As given to :func:`soda` (see :func:`make_region`); ``"bbox"`` (default) and
        ``"hull"`` are derived from the points of both populations.
    n_simulations : int
        Monte-Carlo realisations of the null (19: p-values down to 0.05).
    null : {"csr", "shift"}, optional
        Null of :func:`cross_k_envelope`; default ``"shift"`` when SODA used the
        random-shift null, else ``"csr"``.
    voxel_size_nm : float or sequence of float, optional
        Voxel size of an array ``region`` (a mask), nm.
    rng : int or numpy.random.Generator, optional
        Seed of the null realisations.

    Returns
    -------
    RipleyResult
        K, L, H per radius with pointwise envelopes and the Monte-Carlo ``p_value`` of
        the largest deviation of H from its null mean.

    Raises
    ------
    ParameterError
        Inputs that are not point sets, an unknown ``null``, ``n_simulations < 1``.

    Examples
    --------
    >>> from smlmspine.coupling import BoxRegion, soda
    >>> rng = np.random.default_rng(0)
    >>> pre = rng.uniform(0, 5000, (300, 2))
    >>> post = pre + rng.normal(0, 30, pre.shape)           # every post near a pre
    >>> box = BoxRegion([-200, -200], [5200, 5200])
    >>> res = soda(pre, post, region=box, r_max_nm=200, ring_nm=20)
    >>> rip = soda_cross_h(res, pre, post, region=box, rng=0)
    >>> rip.radii_nm.size, rip.p_value
    (10, 0.05)
    """
    if not isinstance(result, SodaResult):
        raise ParameterError(f"result must be a SodaResult (from soda), got {type(result).__name__}")
    if null is None:
        null = "shift" if result.null == "shift" else "csr"
    p1 = as_points(pre, name="pre", ndim=result.ndim)
    p2 = as_points(post, name="post", ndim=result.ndim)
    reg = make_region(region, np.vstack([p1, p2]), voxel_size_nm=voxel_size_nm, warn=False)
    p1, p2 = p1[reg.contains(p1)], p2[reg.contains(p2)]
    return cross_k_envelope(p1, p2, radii_nm=result.r_edges_nm[1:], region=reg,
                            n_simulations=n_simulations, null=null, rng=rng, warn_region=False)
