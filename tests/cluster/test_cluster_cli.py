"""`smlmspine cluster` in-process."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from smlmspine.cli import main
from smlmspine.io import read, write

from ._data import gaussian_clusters, to_table


def _input(tmp_path):
    xyz, _ = gaussian_clusters(5, 30, dims=3, rng=21, n_background=20)
    t = to_table(xyz, channel=np.arange(len(xyz)) % 2, frame=np.arange(len(xyz)))
    return write(t, tmp_path / "in.parquet")


def test_cluster_dbscan_with_stats(tmp_path, capsys):
    src = _input(tmp_path)
    rc = main(["cluster", str(src), "-o", str(tmp_path / "out.parquet"), "--eps-nm", "40",
               "--min-samples", "4", "--stats", str(tmp_path / "clusters.parquet")])
    assert rc == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("dbscan: 5 clusters in 170 localizations, noise fraction 0.")
    out = read(tmp_path / "out.parquet")
    assert out.column("cluster_id").to_numpy().max() == 4
    stats = pq.read_table(tmp_path / "clusters.parquet")
    assert stats.num_rows == 5 and stats.schema.field("centroid_x_nm").metadata[b"unit"] == b"nm"


def test_cluster_hdbscan_by_channel_csv_stats(tmp_path, capsys):
    src = _input(tmp_path)
    rc = main(["cluster", str(src), "-o", str(tmp_path / "out.parquet"), "--method", "hdbscan",
               "--min-cluster-size", "8", "--by", "channel", "--dims", "3",
               "--stats", str(tmp_path / "clusters.csv")])
    assert rc == 0
    assert "hdbscan: 10 clusters" in capsys.readouterr().out
    text = (tmp_path / "clusters.csv").read_text().splitlines()
    assert len(text) == 11 and text[0].startswith('"cluster_id","group"')


def test_cluster_user_errors_exit_2(tmp_path, capsys):
    src = _input(tmp_path)
    assert main(["cluster", str(src), "-o", str(tmp_path / "o.parquet"), "--eps-nm", "0"]) == 2
    assert "--eps-nm must be" in capsys.readouterr().err
    assert main(["cluster", str(src), "-o", str(tmp_path / "o.parquet"), "--by", "nope"]) == 2
    assert "no such column" in capsys.readouterr().err
    assert main(["cluster", str(src), "-o", str(tmp_path / "o.parquet"),
                 "--stats", str(tmp_path / "s.xyz")]) == 2
    assert "statistics format" in capsys.readouterr().err
