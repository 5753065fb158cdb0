"""``smlmspine couple``: SODA coupling statistics between two populations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._validate import positive
from ..errors import FormatError, ParameterError
from ._common import NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, Outputs


def register(sub) -> None:
    p = sub.add_parser(
        "couple", help="pre/post-synaptic coupling statistics (SODA, cross Ripley)",
        description="SODA coupling between PRE and POST (objects or localizations, 2D/3D): "
                    "writes OUTDIR/summary.json, pairs.parquet, rings.parquet and coupling.png. "
                    "PRE and POST can be one file split by --channel-column.")
    p.add_argument("pre", metavar="PRE", help="population 1 (localizations, objects or a cluster "
                                              "statistics table with centroid_*_nm)")
    p.add_argument("post", metavar="POST", nargs="?", default=None,
                   help="population 2 (omit with --channel-column)")
    p.add_argument("-o", "--out", dest="outdir", required=True, metavar="OUTDIR")
    p.add_argument("--region", default="bbox",
                   help="MASK.tif (with --voxel-size-nm unless the TIFF stores it), 'hull', "
                        "'bbox' (default; both derived from the data, with a warning) or a box "
                        "'x0,y0,x1,y1' / 'x0,y0,z0,x1,y1,z1' in nm")
    p.add_argument("--voxel-size-nm", type=POSITIVE, nargs="+", default=None,
                   help="pixel/voxel size of the mask, nm (one value or x y [z])")
    p.add_argument("--r-max-nm", type=POSITIVE, default=500.0, help="largest distance, nm (500)")
    p.add_argument("--ring-nm", type=POSITIVE, default=20.0, help="ring width, nm (20)")
    p.add_argument("--centroids-from-clusters", action="store_true",
                   help="inputs are clustered localizations (cluster_id): use cluster centroids")
    p.add_argument("--null", choices=("analytic", "shift", "csr"), default="analytic",
                   help="null model: analytic CSR variance (objects; default) or Monte Carlo "
                        "random shift / CSR (raw localizations)")
    p.add_argument("--n-simulations", type=POSITIVE_INT, default=99, help="Monte-Carlo realisations (99)")
    p.add_argument("--threshold", default="universal", type=_threshold,
                   help="ring significance threshold: 'universal' = sqrt(2 ln n_pre), or a number")
    p.add_argument("--no-bias-correction", action="store_true",
                   help="plain SODA: count coupling only in significant rings")
    p.add_argument("--index", choices=("pairs", "points"), default=None,
                   help="coupled counts: 'pairs' (objects, one partner each; default with the "
                        "analytic null) or 'points' (localizations; default with shift/csr)")
    p.add_argument("--outside", choices=("error", "drop"), default="error",
                   help="points outside the region: refuse (default) or leave out with a warning")
    p.add_argument("--ndim", type=int, choices=(2, 3), default=None, help="force 2D or 3D")
    p.add_argument("--channel-column", default=None, help="split one input file by this column")
    p.add_argument("--pre", dest="pre_value", default="0", help="value of the pre channel (0)")
    p.add_argument("--post", dest="post_value", default="1", help="value of the post channel (1)")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0, help="random seed of the Monte-Carlo nulls")
    p.add_argument("--no-plot", action="store_true", help="do not write coupling.png")
    p.add_argument("--format", dest="in_format", default=None, help="input format (default: detected)")
    p.add_argument("--pixel-size-nm", type=POSITIVE, default=None,
                   help="pixel size for pixel-unit localization files that do not store one")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_couple)


def _threshold(text):
    """``--threshold``: 'universal' or a positive finite number."""
    import argparse

    if text == "universal":
        return text
    try:
        return positive(text, "")
    except ParameterError:
        raise argparse.ArgumentTypeError(f"must be 'universal' or a positive finite number, "
                                         f"got {text!r}") from None


def _read(path, args):
    import pyarrow.parquet as pq

    from ..io import read

    path = Path(path)
    if path.suffix.lower() == ".parquet" and path.exists():
        try:
            names = pq.read_schema(path).names
        except Exception as exc:  # noqa: BLE001 - reported as a format error
            raise FormatError(f"cannot read Parquet schema: {exc}", path=path) from exc
        if "centroid_x_nm" in names and "x" not in names:
            return pq.read_table(path)
    return read(path, format=args.in_format, pixel_size_nm=args.pixel_size_nm)


def _select(table, column, value, path):
    import pyarrow as pa
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise FormatError(f"no column {column!r} to split channels; found {table.column_names}",
                          path=path)
    col = table.column(column)
    try:
        v = pa.scalar(value).cast(col.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise ParameterError(f"channel value {value!r} does not fit column {column!r} "
                             f"({col.type})") from exc
    out = table.filter(pc.equal(col, v))
    if out.num_rows == 0:
        raise ParameterError(f"{path}: no row with {column} == {value}")
    return out


def _centroids(table, path):
    from ..coupling import cluster_centroids
    from ..errors import SmlmSpineError

    try:
        return cluster_centroids(table)
    except SmlmSpineError as exc:
        raise ParameterError(f"{path}: --centroids-from-clusters: {exc}") from None


def _region_spec(text, voxel):
    if text in ("bbox", "hull"):
        return text
    parts = text.split(",")
    if len(parts) in (4, 6):
        try:
            vals = [float(v) for v in parts]
        except ValueError:
            vals = None
        if vals is not None:
            h = len(vals) // 2
            if not all(np.isfinite(vals)) or not all(hi > lo for lo, hi in zip(vals[:h], vals[h:])):
                raise ParameterError(f"--region {text!r}: a box needs finite numbers with each "
                                     "upper corner coordinate above the lower one (nm)")
            return (np.array(vals[:h]), np.array(vals[h:]))
    path = Path(text)
    if not path.exists():
        raise ParameterError(f"--region {text!r}: not 'bbox', 'hull', a box 'x0,y0,x1,y1' or an "
                             "existing mask file")
    from ..coupling import read_mask_region

    vs = None if voxel is None else (voxel[0] if len(voxel) == 1 else voxel)
    return read_mask_region(path, voxel_size_nm=vs)


def _couple(args) -> int:
    with Outputs() as outputs:
        out = outputs.folder(args.outdir, option="-o", parents=True)
        return _couple_in(args, out)


def _couple_in(args, out: Path) -> int:
    import sys
    import warnings

    import pyarrow.parquet as pq

    from ..coupling import soda, soda_cross_h
    from ..errors import QualityWarning
    from ..io._registry import atomic_output

    if args.post is None and args.channel_column is None:
        raise ParameterError("give POST, or one input with --channel-column")
    t1 = _read(args.pre, args)
    if args.channel_column:
        src = t1 if args.post is None else None
        t2 = _read(args.post, args) if args.post is not None else src
        pre_t = _select(t1, args.channel_column, args.pre_value, args.pre)
        post_t = _select(t2, args.channel_column, args.post_value, args.post or args.pre)
    else:
        pre_t, post_t = t1, _read(args.post, args)
    if args.centroids_from_clusters:
        pre, post = _centroids(pre_t, args.pre), _centroids(post_t, args.post or args.pre)
    else:
        pre, post = pre_t, post_t
    threshold = args.threshold
    region = _region_spec(args.region, args.voxel_size_nm)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        res = soda(pre, post, region=region, r_max_nm=args.r_max_nm, ring_nm=args.ring_nm,
                   ndim=args.ndim, threshold=threshold, bias_correction=not args.no_bias_correction,
                   null=args.null, n_simulations=args.n_simulations, outside=args.outside,
                   index=args.index,
                   rng=args.seed)
    # Data-quality warnings go to stderr and into the summary; any other warning (e.g. from
    # a library about the environment) takes the ordinary route and stays out of it.
    others = [w for w in caught if not issubclass(w.category, QualityWarning)]
    caught = [w for w in caught if issubclass(w.category, QualityWarning)]
    for w in others:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    for w in caught:
        print(f"smlmspine couple: warning: {w.message}", file=sys.stderr)
    summary = res.to_dict()
    summary["parameters"].update(pre=str(args.pre), post=str(args.post), region_spec=args.region,
                                 centroids_from_clusters=bool(args.centroids_from_clusters),
                                 channel_column=args.channel_column)
    summary["warnings"] = [str(w.message) for w in caught]
    with atomic_output(out / "pairs.parquet") as tmp:
        pq.write_table(res.pairs_table(), tmp)
    with atomic_output(out / "rings.parquet") as tmp:
        pq.write_table(res.rings_table(), tmp)
    if not args.no_plot:
        from ..coupling._plots import plot_coupling

        rip = soda_cross_h(res, pre, post, region=region, n_simulations=19, rng=args.seed)
        plot_coupling(res, out / "coupling.png", ripley=rip)
        summary["cross_h_p_value"] = rip.p_value
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    if args.json:
        from ._common import print_json

        print_json(summary)
    else:
        print(f"coupling index pre {res.coupling_index_pre:.3f}, post {res.coupling_index_post:.3f}; "
              f"mean coupling distance {res.mean_coupling_distance_weighted_nm:.1f} nm "
              f"(probability-weighted); p = {res.p_value:.3g}; wrote {out}")
    return 0

