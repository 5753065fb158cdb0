"""``smlmspine drift`` and ``smlmspine merge`` in-process."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.csv as pcsv

from smlmspine.cli import main
from smlmspine.drift import DriftModel
from smlmspine.io import read, write

from ._synth import dendrite_like, residual_rms


def test_drift_cli_outputs(tmp_path, capsys):
    t, *_ = dendrite_like(n_emitters=1500, blinks_per_emitter=12, n_frames=10000, dims=2, rng=3)
    src = write(t, tmp_path / "in.parquet")
    out, table, plot = tmp_path / "out.parquet", tmp_path / "drift.csv", tmp_path / "drift.png"
    rc = main(["drift", str(src), "-o", str(out), "--method", "aim", "--segment-frames", "500",
               "--drift-table", str(table), "--plot", str(plot), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "aim" and summary["n_localizations"] == t.num_rows
    model = DriftModel.from_table(pcsv.read_csv(table))
    assert np.all(residual_rms(model, 10000, dims=2) <= 2.0)
    corrected = read(out)
    assert corrected.num_rows == t.num_rows
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_drift_cli_user_error(tmp_path, capsys):
    from smlmspine.schema import make_table

    t = make_table({"x": np.arange(50.0), "y": np.zeros(50), "frame": np.arange(50)})
    src = write(t, tmp_path / "in.parquet")
    rc = main(["drift", str(src), "-o", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and "too few" in err and "Traceback" not in err
    rc = main(["drift", str(src), "-o", str(tmp_path / "o.parquet"), "--fiducial", "1,2"])
    assert rc == 2 and "--method fiducial" in capsys.readouterr().err


def test_merge_cli(tmp_path, capsys):
    from smlmspine.schema import make_table

    t = make_table({"x": [0.0, 1.0, 300.0], "y": [0.0, 0.0, 0.0], "frame": [0, 1, 1],
                    "precision_xy": [10.0, 10.0, 10.0]})
    src = write(t, tmp_path / "in.parquet")
    rc = main(["merge", str(src), "-o", str(tmp_path / "m.parquet"), "--max-gap-frames", "0"])
    assert rc == 0 and "into 2" in capsys.readouterr().out
    assert read(tmp_path / "m.parquet").column("n_merged").to_pylist() == [2, 1]
