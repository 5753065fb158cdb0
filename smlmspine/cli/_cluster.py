"""``smlmspine cluster``: DBSCAN / HDBSCAN of a localization file, with statistics."""

from __future__ import annotations

import sys
from pathlib import Path

from .._validate import cli_type, integer
from ._common import (NON_NEGATIVE, POSITIVE, POSITIVE_INT, Outputs, add_input_options,
                      read_input, results_output, table_output, write_results)


def register(sub) -> None:
    p = sub.add_parser(
        "cluster", help="DBSCAN or HDBSCAN clustering, optional per-cluster statistics",
        description="Cluster the localizations of IN (DBSCAN on a cell grid, exact "
                    "scikit-learn semantics; or HDBSCAN), write the table with a "
                    "cluster_id column (-1 = noise) to OUT and, with --stats, one row of "
                    "statistics per cluster (data_schemas/clusters.json).")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output localization file (format from the extension)")
    p.add_argument("--method", choices=("dbscan", "hdbscan"), default="dbscan",
                   help="clustering method (default: dbscan)")
    p.add_argument("--eps-nm", type=POSITIVE, default=40.0,
                   help="DBSCAN neighbourhood radius in nm (default: 40)")
    p.add_argument("--min-samples", type=POSITIVE_INT, default=None,
                   help="DBSCAN: localizations within eps (the point included) that make a "
                        "core point (default: 5); HDBSCAN: neighbours defining the core "
                        "distance (default: --min-cluster-size)")
    p.add_argument("--min-cluster-size", type=cli_type(integer, minimum=2), default=10,
                   help="HDBSCAN smallest cluster size (default: 10)")
    p.add_argument("--cluster-selection-epsilon-nm", type=NON_NEGATIVE, default=0.0,
                   help="HDBSCAN: merge clusters closer than this in nm (default: 0)")
    p.add_argument("--by", default=None, metavar="COLUMN",
                   help="cluster each value of this integer column separately "
                        "(e.g. channel, spine_id)")
    p.add_argument("--skip", type=int, action="append", default=None, metavar="VALUE",
                   help="with --by: leave rows with this value unclustered (repeatable; "
                        "e.g. --by spine_id --skip -1)")
    p.add_argument("--dims", type=int, choices=(2, 3), default=None,
                   help="cluster in x/y (2) or x/y/z (3); default: 3 when the file has z")
    p.add_argument("--stats", default=None, metavar="CLUSTERS",
                   help="also write the cluster statistics table here (e.g. clusters.parquet)")
    p.add_argument("--no-hulls", action="store_true",
                   help="skip the convex hulls in --stats (faster for very many clusters)")
    p.add_argument("--progress", action="store_true",
                   help="progress bar on stderr when clustering many groups")
    p.set_defaults(func=_cluster)


def _cluster(args) -> int:
    with Outputs() as outputs:
        args.output = table_output(outputs, args.output, option="-o")
        args.stats = results_output(outputs, args.stats, option="--stats", what="statistics")
        return _cluster_in(args)


def _cluster_in(args) -> int:
    import numpy as np

    from ..cluster import cluster_statistics, dbscan, hdbscan
    from ..io import write

    table = read_input(args, attr="in")
    common = dict(dims=args.dims, by=args.by, skip_groups=args.skip or (),
                  progress=args.progress)
    if args.method == "dbscan":
        out = dbscan(table, eps_nm=args.eps_nm,
                     min_samples=5 if args.min_samples is None else args.min_samples, **common)
    else:
        out = hdbscan(table, min_cluster_size=args.min_cluster_size,
                      min_samples=args.min_samples,
                      cluster_selection_epsilon_nm=args.cluster_selection_epsilon_nm, **common)
    path = write(out, Path(args.output))
    labels = out.column("cluster_id").to_numpy()
    n_clusters = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    noise = float(np.mean(labels < 0)) if labels.size else 0.0
    stats_note = ""
    if args.stats:
        stats = cluster_statistics(out, hulls=not args.no_hulls)
        stats_path = write_results(stats, Path(args.stats), what="statistics")
        stats_note = f"; statistics to {stats_path}"
    print(f"{args.method}: {n_clusters} clusters in {out.num_rows} localizations, noise "
          f"fraction {noise:.3f}; wrote {path}{stats_note}", file=sys.stdout)
    return 0
