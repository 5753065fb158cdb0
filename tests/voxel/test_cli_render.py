"""``smlmspine render``: in-process runs, outputs read back, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine.cli import main
from smlmspine.io import write
from smlmspine.schema import make_table
from smlmspine.voxel import read_image


@pytest.fixture
def locs(tmp_path):
    rng = np.random.default_rng(5)
    n = 3000
    t = make_table({"x": rng.uniform(0, 2000, n), "y": rng.uniform(0, 1500, n),
                    "z": rng.uniform(-200, 200, n), "frame": np.arange(n),
                    "precision_xy": rng.uniform(5, 12, n), "precision_z": rng.uniform(15, 30, n)})
    path = tmp_path / "locs.csv"
    write(t, path)
    return path, t


def test_render_ome_tiff_2d(locs, tmp_path, capsys):
    path, t = locs
    out = tmp_path / "img.ome.tif"
    assert main(["render", str(path), "-o", str(out), "--voxel-nm", "10"]) == 0
    line = capsys.readouterr().out
    assert f"{t.num_rows} of {t.num_rows} localizations" in line
    img = read_image(out)
    assert img.axes == ("y", "x") and img.voxel_nm == (10.0, 10.0)
    assert img.data.sum() == t.num_rows


def test_render_ome_zarr_3d_gaussian_roi(locs, tmp_path, capsys):
    path, t = locs
    out = tmp_path / "img.ome.zarr"
    code = main(["render", str(path), "-o", str(out), "--voxel-nm", "20", "--dims", "3",
                 "--method", "gaussian", "--sigma-nm", "8,20", "--roi-nm",
                 "0,0,2000,1500,-300,300", "--quiet", "--ome-zarr-version", "0.4"])
    assert code == 0
    assert capsys.readouterr().out == ""
    img = read_image(out)
    assert img.data.shape == (30, 75, 100)
    assert img.origin_nm == (-290.0, 10.0, 10.0)
    assert img.metadata["sigma_nm"] == [8.0, 20.0]
    # Gaussian tails of localizations near the ROI edge fall outside it
    assert 0.97 * t.num_rows < float(img.data.sum(dtype=np.float64)) <= t.num_rows + 1e-3


@pytest.mark.parametrize("args,message", [
    (["--voxel-nm", "0"], "--voxel-nm must be a positive"),
    (["--voxel-nm", "10", "--roi-nm", "1,2,3"], "--roi-nm must be 4 or 6"),
    (["--voxel-nm", "10", "--roi-nm", "0,0,a,5"], "--roi-nm must be a finite number"),
    (["--voxel-nm", "10", "--method", "gaussian", "--sigma-nm", "wide"],
     "--sigma-nm must be 'precision'"),
    (["--voxel-nm", "10", "--dims", "4"], "invalid choice"),
    (["--voxel-nm", "10", "--by", "nope"], "no column 'nope'"),
    (["--voxel-nm", "1e-4"], "memory budget"),
])
def test_bad_options_one_line_exit_2(locs, tmp_path, capsys, args, message):
    path, _ = locs
    out = tmp_path / "bad.ome.tif"
    assert main(["render", str(path), "-o", str(out)] + args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locs.csv"]


def test_bad_outputs_refused_before_reading(tmp_path, capsys):
    missing = tmp_path / "missing.csv"     # never read: the output is refused first
    for out, message in ((tmp_path / "a.png", "extension"),
                         (tmp_path / "no" / "a.ome.tif", "does not exist")):
        assert main(["render", str(missing), "-o", str(out), "--voxel-nm", "10"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    (tmp_path / "x.ome.zarr").mkdir()
    assert main(["render", str(missing), "-o", str(tmp_path / "x.ome.zarr"),
                 "--voxel-nm", "10"]) == 2
    assert "not a Zarr store" in capsys.readouterr().err


def test_minflux_input(tmp_path, capsys):
    from smlmspine.simulate import MinfluxSample, minflux_traces

    sim = minflux_traces(sample=MinfluxSample(n_emitters=20), ndim=3, rng=4)
    from smlmspine.io import read

    path = tmp_path / "mf.npy"
    sim.write(path)                      # an Abberior-style MINFLUX .npy export
    out = tmp_path / "mf.ome.tif"
    assert main(["render", str(path), "-o", str(out), "--voxel-nm", "5", "--dims", "3",
                 "--method", "gaussian", "--sigma-nm", "4", "--quiet"]) == 0
    img = read_image(out)
    n_valid = read(path).num_rows        # the reader keeps valid localizations (vld)
    assert 0 < n_valid < sim.localizations.num_rows
    assert img.axes == ("z", "y", "x")
    assert float(img.data.sum(dtype=np.float64)) == pytest.approx(n_valid, rel=1e-5)
