"""Ground truth for coupling statistics: pre/post-synaptic objects and their localizations.

Objects of both populations are completely spatially random (CSR) in a region (a box or
a boolean mask); a fraction of the post objects is *coupled*: each is placed at a distance
drawn from N(mean, sd) (truncated to > 0) in a uniformly random direction from a distinct
random pre object (one post per pre, a synapse), redrawn until it falls inside the region.
Each object can be rendered as a cluster of blinking localizations.

Examples
--------
>>> from smlmspine.coupling import BoxRegion
>>> sim = synapses(populations=SynapsePopulations(n_pre=50, n_post=40, coupled_fraction=0.5),
...                region=BoxRegion((0, 0), (5000, 5000)), rng=1)
>>> sim.n_coupled, sim.coupled_fraction_post, sim.coupled_fraction_pre
(20, 0.5, 0.4)
>>> sim.pairs.column_names
['pre_index', 'post_index', 'distance_nm']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..errors import ParameterError
from ._output import close_truth_folder, open_truth_folder, simulation_writer, write_truth_tables

__all__ = ["synapses", "SynapseSimulation", "SynapsePopulations", "SynapseRendering"]


@dataclass(frozen=True)
class SynapseSimulation:
    """Result of :func:`synapses` (all coordinates in nm).

    Attributes
    ----------
    pre_objects, post_objects : pyarrow.Table
        Object centres: canonical columns ``x``, ``y`` (, ``z``), one row per object.
    pre_localizations, post_localizations : pyarrow.Table
        Localizations (``x, y, (z), frame, precision_xy, (precision_z), channel``;
        channel 0 = pre, 1 = post); empty when ``locs_per_object == 0``.
    pre_truth, post_truth : pyarrow.Table
        One row per localization: ``cluster_id`` = index of the object it came from.
    pairs : pyarrow.Table
        The coupled pairs: ``pre_index``, ``post_index``, ``distance_nm`` (distance
        between the object centres).
    coupled_fraction_pre, coupled_fraction_post : float
        Fraction of pre (post) objects that are coupled.
    n_coupled : int
        Number of coupled pairs.
    mean_coupling_distance_nm : float
        Mean of ``pairs.distance_nm`` (NaN without pairs).
    region : smlmspine.coupling.Region
        The region the objects were drawn in.
    parameters : dict
        The arguments used.
    """

    pre_objects: pa.Table
    post_objects: pa.Table
    pre_localizations: pa.Table
    post_localizations: pa.Table
    pre_truth: pa.Table
    post_truth: pa.Table
    pairs: pa.Table
    coupled_fraction_pre: float
    coupled_fraction_post: float
    n_coupled: int
    mean_coupling_distance_nm: float
    region: object
    parameters: dict = field(default_factory=dict)

    @property
    def ndim(self) -> int:
        """Dimensionality (2 or 3) of the region and the objects."""
        return self.region.ndim

    def localizations(self) -> pa.Table:
        """Pre and post localizations in one table (``channel`` 0 = pre, 1 = post).

        Returns
        -------
        pyarrow.Table
        """
        return pa.concat_tables([self.pre_localizations, self.post_localizations])

    def objects(self) -> pa.Table:
        """Pre and post objects in one table with a ``channel`` column (0 pre, 1 post).

        Returns
        -------
        pyarrow.Table
        """
        from ..schema import make_table

        cols = {}
        for c in self.pre_objects.column_names:
            cols[c] = np.concatenate([self.pre_objects.column(c).to_numpy(),
                                      self.post_objects.column(c).to_numpy()])
        cols["channel"] = np.r_[np.zeros(self.pre_objects.num_rows, np.int64),
                                np.ones(self.post_objects.num_rows, np.int64)]
        return make_table(cols, format="simulate.synapses")

    @simulation_writer
    def write(self, path, *, format: str | None = None) -> dict:
        """Write the localizations (or, without any, the objects) and the truth.

        The truth folder ``<stem>.truth/`` holds ``pre_objects``, ``post_objects``,
        ``pre_truth``, ``post_truth`` and ``pairs`` as Parquet and ``parameters.json``.

        Parameters
        ----------
        path : str or pathlib.Path
            Localization file (format from ``format`` or the extension).
        format : str, optional
            Writer name of :func:`smlmspine.io.write`.

        Returns
        -------
        dict
            ``{"localizations": Path, "truth": Path, "files": [Path, ...]}``.
        """
        from ..io import write

        path, folder = open_truth_folder(path)
        locs = self.localizations()
        write(locs if locs.num_rows else self.objects(), path, format=format)
        names = ("pre_objects", "post_objects", "pre_truth", "post_truth", "pairs")
        files = write_truth_tables({n: getattr(self, n) for n in names}, folder)
        return close_truth_folder(self.to_dict(), path, folder, files)

    def to_dict(self) -> dict:
        """Summary: counts, coupling truth, region and parameters (JSON-able).

        Returns
        -------
        dict
            ``n_pre``, ``n_post``, ``n_coupled``, ``coupled_fraction_pre``,
            ``coupled_fraction_post``, ``mean_coupling_distance_nm`` (NaN without
            pairs), ``region`` (:meth:`Region.to_dict`) and ``parameters``.
        """
        return {"n_pre": self.pre_objects.num_rows, "n_post": self.post_objects.num_rows,
                "n_coupled": self.n_coupled, "coupled_fraction_pre": self.coupled_fraction_pre,
                "coupled_fraction_post": self.coupled_fraction_post,
                "mean_coupling_distance_nm": self.mean_coupling_distance_nm,
                "region": self.region.to_dict(), "parameters": dict(self.parameters)}


@dataclass(frozen=True)
class SynapsePopulations:
    """The two populations of :func:`synapses` and how they are coupled.

    Parameters
    ----------
    n_pre, n_post : int
        Number of pre (population 1) and post (population 2) objects, >= 0.
    coupled_fraction : float
        Fraction of post objects coupled to a pre object, in [0, 1]; the number coupled
        is ``round(coupled_fraction * n_post)``, at most ``n_pre`` (one post per pre).
    distance_mean_nm, distance_sd_nm : float
        Coupling distance ~ N(mean, sd) truncated to > 0, nm (centre to centre), >= 0.

    Raises
    ------
    ParameterError
        ``coupled_fraction`` outside [0, 1], negative counts or distances.

    Examples
    --------
    >>> SynapsePopulations(n_pre=10, n_post=10, coupled_fraction=1.5)
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: coupled_fraction must be in [0, 1], got 1.5
    """

    n_pre: int = 500
    n_post: int = 500
    coupled_fraction: float = 0.5
    distance_mean_nm: float = 100.0
    distance_sd_nm: float = 30.0

    def __post_init__(self):
        if not 0.0 <= self.coupled_fraction <= 1.0:
            raise ParameterError(f"coupled_fraction must be in [0, 1], got {self.coupled_fraction}")
        if self.n_pre < 0 or self.n_post < 0:
            raise ParameterError(f"n_pre and n_post must be >= 0, got {self.n_pre} and {self.n_post}")
        if self.distance_mean_nm < 0 or self.distance_sd_nm < 0:
            raise ParameterError("distance_mean_nm and distance_sd_nm must be >= 0")


@dataclass(frozen=True)
class SynapseRendering:
    """How each object of :func:`synapses` becomes a cluster of localizations.

    Parameters
    ----------
    locs_per_object : float
        Mean number of fluorophores per object (Poisson); 0 gives no localizations.
    blinks_per_fluorophore : float
        Mean number of localizations per fluorophore (geometric, >= 1; a value at or
        below 1 gives one localization each).
    object_radius_nm : float
        Fluorophores are uniform in a disk/ball of this radius around the object centre.
    precision_nm, precision_z_nm : float
        Gaussian localization error (1 sigma), lateral and axial (default = lateral), nm.
    n_frames : int
        Frames are drawn uniformly in ``[0, n_frames)``.

    Raises
    ------
    ParameterError
        A negative ``locs_per_object``, ``object_radius_nm`` or precision, or a
        non-positive ``blinks_per_fluorophore``.

    Examples
    --------
    >>> SynapseRendering(locs_per_object=5.0).precision_nm
    10.0
    """

    locs_per_object: float = 0.0
    blinks_per_fluorophore: float = 1.0
    object_radius_nm: float = 0.0
    precision_nm: float = 10.0
    precision_z_nm: float | None = None
    n_frames: int = 10000

    def __post_init__(self):
        if self.locs_per_object < 0 or self.object_radius_nm < 0:
            raise ParameterError("locs_per_object and object_radius_nm must be >= 0")
        if self.precision_nm < 0 or (self.precision_z_nm is not None and self.precision_z_nm < 0):
            raise ParameterError("precision_nm and precision_z_nm must be >= 0")
        if not self.blinks_per_fluorophore > 0:
            raise ParameterError(f"blinks_per_fluorophore must be > 0, got "
                                 f"{self.blinks_per_fluorophore}")


def synapses(*, populations: SynapsePopulations | None = None, region=None,
             ndim: int | None = None, rendering: SynapseRendering | None = None,
             rng: np.random.Generator | int | None = None) -> SynapseSimulation:
    """Simulate pre- and post-synaptic objects with a known coupled fraction and distance.

    The settings come in groups; ``None`` for a group means its defaults.

    Parameters
    ----------
    populations : SynapsePopulations, optional
        Numbers of pre and post objects, coupled fraction and coupling distance.
    region : smlmspine.coupling.Region, optional
        Where the objects are drawn: a :class:`~smlmspine.coupling.BoxRegion`,
        :class:`~smlmspine.coupling.MaskRegion` (or any other region); default a box
        from 0 to 10 um on each of ``ndim`` axes.
    ndim : {2, 3}, optional
        Dimensionality of the default box (default 2); with a ``region`` it must match
        the region's (or be left out).
    rendering : SynapseRendering, optional
        Fluorophores per object, blinks, object radius, precision, frames; default no
        localizations (``locs_per_object=0``).
    rng : numpy Generator, int or None
        Random source.

    Returns
    -------
    SynapseSimulation
        ``parameters`` holds the flat settings (``n_pre``, ..., ``ndim``, ...,
        ``n_frames``).

    Raises
    ------
    ParameterError
        A group or region of the wrong type, ``ndim`` not 2 or 3 or not that of
        ``region``, or coupled objects that cannot be placed inside the region (a region
        narrower than the coupling distance). The groups and regions check their own
        values when they are made.

    Examples
    --------
    >>> sim = synapses(populations=SynapsePopulations(n_pre=100, n_post=100, coupled_fraction=0.3),
    ...                rendering=SynapseRendering(locs_per_object=5, object_radius_nm=20.0), rng=0)
    >>> sim.n_coupled, sim.pre_localizations.num_rows == sim.pre_truth.num_rows
    (30, True)
    >>> bool(sim.pairs.column("distance_nm").to_numpy().min() > 0)
    True
    """
    from ..coupling._region import BoxRegion, Region
    from ..schema import make_table
    from ._settings import check_group

    rng = np.random.default_rng(rng)
    populations = check_group(populations, SynapsePopulations, "populations")
    rendering = check_group(rendering, SynapseRendering, "rendering")
    if ndim is not None and ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim}")
    if region is None:
        d0 = 2 if ndim is None else ndim
        region = BoxRegion(np.zeros(d0), np.full(d0, 10000.0))
    elif not isinstance(region, Region):
        raise ParameterError(f"region= must be a smlmspine.coupling region (BoxRegion, MaskRegion, "
                             f"...), got {type(region).__name__}")
    elif ndim is not None and ndim != region.ndim:
        raise ParameterError(f"ndim={ndim} but the region is {region.ndim}D")
    n_pre, n_post = populations.n_pre, populations.n_post
    coupled_fraction = populations.coupled_fraction
    distance_mean_nm, distance_sd_nm = populations.distance_mean_nm, populations.distance_sd_nm
    locs_per_object = rendering.locs_per_object
    blinks_per_fluorophore = rendering.blinks_per_fluorophore
    object_radius_nm = rendering.object_radius_nm
    precision_nm, precision_z_nm = rendering.precision_nm, rendering.precision_z_nm
    n_frames = rendering.n_frames
    d = region.ndim
    pre = region.sample(int(n_pre), rng)
    n_c = min(int(round(coupled_fraction * n_post)), int(n_pre))
    partners = rng.choice(int(n_pre), size=n_c, replace=False) if n_c else np.empty(0, np.int64)
    coupled = np.empty((n_c, d))
    dist = np.empty(n_c)
    todo = np.arange(n_c)
    for _ in range(10000):
        if todo.size == 0:
            break
        m = todo.size
        r = rng.normal(distance_mean_nm, distance_sd_nm, m)
        bad = r <= 0
        while bad.any():
            r[bad] = rng.normal(distance_mean_nm, distance_sd_nm, bad.sum())
            bad = r <= 0
        u = rng.normal(size=(m, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        cand = pre[partners[todo]] + r[:, None] * u
        ok = region.contains(cand)
        coupled[todo[ok]] = cand[ok]
        dist[todo[ok]] = r[ok]
        todo = todo[~ok]
    if todo.size:
        raise ParameterError("could not place coupled objects inside the region; is it "
                             "narrower than the coupling distance?")
    free = region.sample(int(n_post) - n_c, rng)
    post = np.vstack([coupled, free]) if n_post else np.empty((0, d))
    perm = rng.permutation(int(n_post))
    post = post[perm]
    post_index = np.empty(int(n_post), np.int64)
    post_index[perm] = np.arange(int(n_post))
    pair_post = post_index[:n_c]
    order = np.argsort(partners, kind="stable")
    pairs = pa.table({"pre_index": pa.array(partners[order].astype(np.int64)),
                      "post_index": pa.array(pair_post[order].astype(np.int64)),
                      "distance_nm": pa.array(dist[order].astype(np.float64))})
    names = "xyz"[:d]

    def objects(pts):
        return make_table({names[a]: pts[:, a] for a in range(d)}, format="simulate.synapses")

    pz = precision_nm if precision_z_nm is None else precision_z_nm
    locs_pre, truth_pre = _render(pre, 0, locs_per_object, blinks_per_fluorophore, object_radius_nm,
                                  precision_nm, pz, n_frames, rng)
    locs_post, truth_post = _render(post, 1, locs_per_object, blinks_per_fluorophore, object_radius_nm,
                                    precision_nm, pz, n_frames, rng)
    params = dict(n_pre=n_pre, n_post=n_post, coupled_fraction=coupled_fraction,
                  distance_mean_nm=distance_mean_nm, distance_sd_nm=distance_sd_nm, ndim=d,
                  locs_per_object=locs_per_object, blinks_per_fluorophore=blinks_per_fluorophore,
                  object_radius_nm=object_radius_nm, precision_nm=precision_nm,
                  precision_z_nm=pz, n_frames=n_frames)
    return SynapseSimulation(
        pre_objects=objects(pre), post_objects=objects(post),
        pre_localizations=locs_pre, post_localizations=locs_post,
        pre_truth=truth_pre, post_truth=truth_post, pairs=pairs,
        coupled_fraction_pre=n_c / n_pre if n_pre else 0.0,
        coupled_fraction_post=n_c / n_post if n_post else 0.0,
        n_coupled=int(n_c), mean_coupling_distance_nm=float(dist.mean()) if n_c else float("nan"),
        region=region, parameters=params)


def _render(centres, channel, locs_per_object, blinks, radius, prec, prec_z, n_frames, rng):
    from ..schema import make_table

    n, d = centres.shape
    names = "xyz"[:d]
    if locs_per_object > 0 and n:
        n_fl = rng.poisson(locs_per_object, n)
        obj = np.repeat(np.arange(n), n_fl)
        fl_pos = _ball(obj.size, d, radius, rng)
        if blinks > 1:
            nb = rng.geometric(1.0 / blinks, obj.size)
            obj = np.repeat(obj, nb)
            fl_pos = np.repeat(fl_pos, nb, axis=0)
        pos = centres[obj] + fl_pos
        sig = np.array([prec, prec, prec_z][:d])
        pos = pos + rng.normal(size=pos.shape) * sig
    else:
        obj = np.empty(0, np.int64)
        pos = np.empty((0, d))
    cols = {names[a]: pos[:, a] for a in range(d)}
    cols["frame"] = rng.integers(0, max(int(n_frames), 1), obj.size)
    cols["precision_xy"] = np.full(obj.size, float(prec))
    if d == 3:
        cols["precision_z"] = np.full(obj.size, float(prec_z))
    cols["channel"] = np.full(obj.size, channel, np.int64)
    table = make_table(cols, format="simulate.synapses")
    truth = pa.table({"cluster_id": pa.array(obj.astype(np.int64))})
    return table, truth


def _ball(n, d, radius, rng):
    if radius <= 0 or n == 0:
        return np.zeros((n, d))
    u = rng.normal(size=(n, d))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * radius * rng.random(n)[:, None] ** (1.0 / d)
