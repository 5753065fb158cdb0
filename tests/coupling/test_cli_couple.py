"""`smlmspine couple` in-process: outputs, channel split, clusters, errors."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.coupling import BoxRegion
from smlmspine.io import write
from smlmspine.schema import with_columns
from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses


@pytest.fixture(scope="module")
def sim():
    return synapses(populations=SynapsePopulations(n_pre=300, n_post=300, coupled_fraction=0.5,
                                                   distance_mean_nm=80, distance_sd_nm=15),
                    region=BoxRegion((0, 0), (10000, 10000)), rng=1)


def test_couple_two_files(tmp_path, sim):
    write(sim.pre_objects, tmp_path / "pre.parquet")
    write(sim.post_objects, tmp_path / "post.parquet")
    out = tmp_path / "out"
    rc = main(["couple", str(tmp_path / "pre.parquet"), str(tmp_path / "post.parquet"), "-o", str(out),
               "--region", "0,0,10000,10000", "--r-max-nm", "300", "--ring-nm", "10"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("coupling_index_pre", "coupling_index_post", "n_coupled_pre", "n_coupled_post",
                "mean_coupling_distance_nm", "mean_coupling_distance_weighted_nm", "p_value",
                "parameters"):
        assert key in summary
    assert abs(summary["coupling_index_post"] - 0.5) < 0.06
    assert pq.read_table(out / "rings.parquet").num_rows == 30
    assert pq.read_table(out / "pairs.parquet").column_names[:3] == ["pre_index", "post_index",
                                                                     "distance_nm"]
    assert (out / "coupling.png").read_bytes()[:4] == b"\x89PNG"


def test_couple_one_file_with_clusters(tmp_path, sim, capsys):
    s2 = synapses(populations=SynapsePopulations(n_pre=150, n_post=150, coupled_fraction=0.6,
                                                 distance_mean_nm=120, distance_sd_nm=15),
                  rendering=SynapseRendering(locs_per_object=8, precision_nm=5),
                  region=BoxRegion((0, 0), (8000, 8000)), rng=2)
    pre = with_columns(s2.pre_localizations, {"cluster_id": s2.pre_truth.column("cluster_id")})
    post = with_columns(s2.post_localizations, {"cluster_id": s2.post_truth.column("cluster_id")})
    import pyarrow as pa

    write(pa.concat_tables([pre, post]), tmp_path / "both.parquet")
    rc = main(["couple", str(tmp_path / "both.parquet"), "-o", str(tmp_path / "o"), "--channel-column",
               "channel", "--pre", "0", "--post", "1", "--centroids-from-clusters", "--no-plot",
               "--json", "--r-max-nm", "300"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert abs(summary["coupling_index_post"] - 0.6) < 0.1
    assert summary["warnings"] and "oversized region" in summary["warnings"][0]


def test_couple_user_errors(tmp_path, sim, capsys):
    write(sim.pre_objects, tmp_path / "pre.parquet")
    assert main(["couple", str(tmp_path / "pre.parquet"), "-o", str(tmp_path / "o")]) == 2
    assert "give POST" in capsys.readouterr().err
    assert main(["couple", str(tmp_path / "pre.parquet"), "-o", str(tmp_path / "o"),
                 "--channel-column", "channel"]) == 2
    assert "no column 'channel'" in capsys.readouterr().err
    assert main(["couple", str(tmp_path / "pre.parquet"), str(tmp_path / "pre.parquet"), "-o",
                 str(tmp_path / "o"), "--region", "nothere.tif"]) == 2
    assert "--region" in capsys.readouterr().err
    np.testing.assert_equal(True, True)
