"""Coupling of two channels: pre- and post-synaptic clusters, SODA statistics vs the truth.

    python examples/coupling_two_channels.py OUTDIR
    python examples/coupling_two_channels.py OUTDIR --coupled-fraction 0.2 --seed 3

Simulates a two-colour 2D acquisition (``smlmspine.simulate.synapses``): pre and post
objects (synapses) of which a known fraction of post objects sits at ~80 nm from a pre
object, each object rendered as a cluster of blinking localizations, written to
``OUTDIR/two_channels.csv`` with a ``channel`` column (0 = pre, 1 = post). Then, as one
would with real data:

1. read the file and split it by channel;
2. cluster each channel (DBSCAN) and take the cluster centroids as the objects;
3. SODA (:func:`smlmspine.coupling.soda`) in the field of view: coupling indices, coupled
   pairs and the mean coupling distance, plus the cross Ripley H function with a
   Monte-Carlo envelope (:func:`smlmspine.coupling.cross_k_envelope`).

Writes what ``smlmspine couple`` writes (``OUTDIR/coupling/summary.json``,
``rings.parquet``, ``pairs.parquet``, ``coupling.png``) and prints the estimate next to
the simulated truth. The same from the command line:
``smlmspine couple OUTDIR/two_channels.csv -o OUTDIR/coupling --channel-column channel``
(on localizations; this script clusters them first).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

FIELD_NM = 8000.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", type=Path, help="output folder (created)")
    p.add_argument("--n-objects", type=int, default=250, help="pre and post objects (250 each)")
    p.add_argument("--coupled-fraction", type=float, default=0.5,
                   help="true fraction of post objects coupled to a pre object (0.5)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    return p.parse_args(argv)


def simulate(path: Path, *, n: int, fraction: float, seed: int):
    """Two channels of clustered localizations in one CSV; returns the simulation."""
    import pyarrow as pa

    from smlmspine.coupling import BoxRegion
    from smlmspine.io import write
    from smlmspine.simulate import SynapsePopulations, SynapseRendering
    from smlmspine.simulate.synapses import synapses

    sim = synapses(populations=SynapsePopulations(n_pre=n, n_post=n, coupled_fraction=fraction,
                                                  distance_mean_nm=80.0, distance_sd_nm=15.0),
                   region=BoxRegion((0.0, 0.0), (FIELD_NM, FIELD_NM)),
                   rendering=SynapseRendering(locs_per_object=12, blinks_per_fluorophore=2.0,
                                              object_radius_nm=15.0, precision_nm=8.0),
                   rng=seed)
    write(pa.concat_tables([sim.pre_localizations, sim.post_localizations]), path)
    return sim


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from smlmspine.cluster import dbscan
    from smlmspine.coupling import BoxRegion, cluster_centroids, cross_k_envelope, soda
    from smlmspine.errors import QualityWarning
    from smlmspine.io import read

    args = parse_args(argv)
    out = args.outdir
    (out / "coupling").mkdir(parents=True, exist_ok=True)
    path = out / "two_channels.csv"
    sim = simulate(path, n=args.n_objects, fraction=args.coupled_fraction, seed=args.seed)
    print(f"simulated {sim.pre_localizations.num_rows} pre and {sim.post_localizations.num_rows} "
          f"post localizations -> {path}")

    # 1-2. read, split by channel, cluster each channel, objects = cluster centroids
    table = read(path)
    objects = {}
    for name, value in (("pre", 0), ("post", 1)):
        channel = table.filter(pc.equal(table.column("channel"), value))
        clustered = dbscan(channel, eps_nm=30.0, min_samples=4)
        objects[name] = cluster_centroids(clustered)
        print(f"{name}: {channel.num_rows} localizations -> {objects[name].num_rows} clusters "
              f"({getattr(sim, name + '_objects').num_rows} objects simulated)")

    # 3. SODA in the field of view (a known region: no edge guess), cross H envelope
    region = BoxRegion((0.0, 0.0), (FIELD_NM, FIELD_NM))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QualityWarning)
        res = soda(objects["pre"], objects["post"], region=region, r_max_nm=300.0, ring_nm=20.0)
        rip = cross_k_envelope(objects["pre"], objects["post"], radii_nm=range(10, 301, 10),
                               region=region, n_simulations=39, rng=args.seed)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)

    summary = res.to_dict()
    summary["truth"] = {"coupled_fraction_post": sim.coupled_fraction_post,
                        "coupled_fraction_pre": sim.coupled_fraction_pre,
                        "mean_coupling_distance_nm": sim.mean_coupling_distance_nm}
    summary["cross_h_p_value"] = rip.p_value
    pq.write_table(res.rings_table(), out / "coupling" / "rings.parquet")
    pq.write_table(res.pairs_table(), out / "coupling" / "pairs.parquet")
    (out / "coupling" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    e = res.r_edges_nm
    a.bar(0.5 * (e[:-1] + e[1:]), res.z_score, width=0.9 * (e[1] - e[0]),
          color=["tab:red" if w else "tab:gray" for w in res.in_window])
    a.axhline(res.threshold, color="tab:blue", ls="--", label=f"threshold {res.threshold:.2f}")
    a.set(xlabel="distance (nm)", ylabel="ring z-score", title="SODA rings (red: coupled)")
    a.legend()
    b.fill_between(rip.radii_nm, rip.h_low_nm, rip.h_high_nm, color="0.85",
                   label=f"{rip.null} envelope")
    b.plot(rip.radii_nm, rip.h_nm, "tab:red", label="cross H(r)")
    b.set(xlabel="r (nm)", ylabel="H (nm)", title="cross Ripley")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "coupling" / "coupling.png", dpi=100)
    plt.close(fig)

    print(f"coupling index post {res.coupling_index_post:.3f} "
          f"(true coupled fraction {sim.coupled_fraction_post:.3f}), "
          f"pre {res.coupling_index_pre:.3f} (true {sim.coupled_fraction_pre:.3f})")
    print(f"mean coupling distance {res.mean_coupling_distance_weighted_nm:.1f} nm "
          f"(true {sim.mean_coupling_distance_nm:.1f} nm); p = {res.p_value:.2g}; "
          f"cross-H envelope p = {rip.p_value:.2g}")
    print(f"wrote {out / 'coupling'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
