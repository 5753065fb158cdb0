"""Quality/trace-length filters, trace averaging, dcr colour split, the --where filter, CLI."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import smlmspine
from smlmspine.cli import main
from smlmspine.errors import ParameterError
from smlmspine.filtering import Condition, filter_where, parse_where, where_mask
from smlmspine.io.minflux import write_abberior_npy
from smlmspine.minflux import (average_traces, filter_quality, filter_trace_length,
                               split_channels_by_dcr, trace_lengths)
from smlmspine.schema import history, make_table, validate


def _traces(n_traces=200, per_trace=(1, 30), sigma_nm=4.0, ndim=3, rng=0, shuffle=True):
    """Simulated MINFLUX traces around known centres; returns (table, centres, counts)."""
    rng = np.random.default_rng(rng)
    counts = rng.integers(per_trace[0], per_trace[1] + 1, n_traces)
    centres = rng.uniform(-2000, 2000, (n_traces, ndim))
    tid = np.repeat(np.arange(n_traces) * 3 + 10, counts)
    pos = np.repeat(centres, counts, axis=0) + rng.normal(0, sigma_nm, (counts.sum(), ndim))
    time = np.concatenate([t0 + np.arange(c) * 0.01 for t0, c in
                           zip(np.arange(n_traces) * 1.0, counts)])
    cols = {"x": pos[:, 0], "y": pos[:, 1], "time_s": time, "track_id": tid,
            "efo": rng.uniform(5e3, 2e5, tid.size), "cfr": rng.uniform(0, 1.2, tid.size),
            "eco": rng.integers(50, 500, tid.size).astype(float)}
    if ndim == 3:
        cols["z"] = pos[:, 2]
    order = rng.permutation(tid.size) if shuffle else np.arange(tid.size)
    return make_table({k: np.asarray(v)[order] for k, v in cols.items()}), centres, counts


# --------------------------------------------------------------------------- filters

def test_filter_quality_closed_ranges_and_nan():
    t = make_table({"x": np.arange(6.0), "y": np.zeros(6),
                    "efo": [5e3, 2e4, 3e4, np.nan, 4e4, 1e4],
                    "cfr": [0.1, 0.8, 0.9, 0.2, 0.5, 0.3]})
    out = filter_quality(t, efo_range=(1e4, None), cfr_range=(None, 0.8))
    assert out.column("x").to_pylist() == [1.0, 4.0, 5.0]  # bounds inclusive, NaN dropped
    assert history(out)[-1]["params"]["ranges"] == {"efo": [1e4, None], "cfr": [None, 0.8]}
    assert t.num_rows == 6  # input untouched
    with pytest.raises(ParameterError, match="unknown column 'dcr'"):
        filter_quality(t, dcr_range=(0, 0.5))
    with pytest.raises(ParameterError, match="min <= max"):
        filter_quality(t, cfr_range=(0.9, 0.1))
    with pytest.raises(ParameterError, match="pair"):
        filter_quality(t, cfr_range=0.5)
    assert filter_quality(t, ranges={"x": (2, 3)}).column("x").to_pylist() == [2.0, 3.0]


def test_filter_trace_length_unsorted_and_negative_ids():
    t = make_table({"x": np.arange(8.0), "y": np.zeros(8),
                    "track_id": [4, 1, 4, -1, 4, 1, -1, 9]})
    assert trace_lengths(t).tolist() == [3, 2, 3, 1, 3, 2, 1, 1]
    assert filter_trace_length(t, min_localizations=2).column("x").to_pylist() == \
        [0.0, 1.0, 2.0, 4.0, 5.0]
    assert filter_trace_length(t, min_localizations=2, max_localizations=2).column(
        "track_id").to_pylist() == [1, 1]
    with pytest.raises(ParameterError, match="min_localizations"):
        filter_trace_length(t, min_localizations=0)
    with pytest.raises(ParameterError, match="track_id"):
        filter_trace_length(make_table({"x": [0.0], "y": [0.0]}))


# --------------------------------------------------------------------------- averaging

def test_average_traces_matches_groupby_and_recovers_centres():
    sigma = 4.0
    t, centres, counts = _traces(sigma_nm=sigma)
    a = average_traces(t)
    validate(a)
    df = t.to_pandas()
    g = df.groupby("track_id")
    np.testing.assert_array_equal(a.column("track_id").to_numpy(), np.array(sorted(g.groups)))
    for c in ("x", "y", "z", "time_s", "efo", "cfr"):
        np.testing.assert_allclose(a.column(c).to_numpy(), g[c].mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(a.column("eco").to_numpy(), g["eco"].sum().to_numpy())
    np.testing.assert_array_equal(a.column("n_localizations").to_numpy(), counts)
    np.testing.assert_allclose(a.column("time_start_s").to_numpy(), g["time_s"].min().to_numpy())
    np.testing.assert_allclose(a.column("time_span_s").to_numpy(),
                               (g["time_s"].max() - g["time_s"].min()).to_numpy(), atol=1e-12)
    sem_xy = np.sqrt((g["x"].var() + g["y"].var()) / 2 / g.size()).to_numpy()
    np.testing.assert_allclose(a.column("precision_xy").to_numpy(), sem_xy, rtol=1e-9)
    np.testing.assert_allclose(a.column("precision_z").to_numpy(),
                               (g["z"].std() / np.sqrt(g.size())).to_numpy(), rtol=1e-9)
    single = counts == 1
    assert np.all(np.isnan(a.column("precision_xy").to_numpy()[single]))
    # truth: mean error and standard error against the simulator's centres
    err = np.column_stack([a.column(c).to_numpy() for c in "xyz"]) - centres
    multi = counts >= 10
    z = err[multi] / (sigma / np.sqrt(counts[multi]))[:, None]
    assert abs(z.std() - 1.0) < 0.1
    ratio = a.column("precision_xy").to_numpy()[multi] / (sigma / np.sqrt(counts[multi]))
    assert abs(np.mean(ratio) - 1.0) < 0.05
    assert history(a)[-1]["step"] == "minflux.average_traces"
    assert t.column_names[0] == "x" and t.num_rows == counts.sum()  # input unchanged


def test_average_traces_propagated_precision_and_frames():
    t = make_table({"x": [0.0, 4.0, 10.0, 7.0], "y": [0.0, 0.0, 0.0, 1.0],
                    "precision_xy": [1.0, 2.0, 3.0, 5.0], "frame": [5, 9, 2, 40],
                    "photons": [100.0, 300.0, 50.0, 70.0], "channel": [1, 1, 0, 2],
                    "track_id": [2, 2, 7, -1]})
    a = average_traces(t, precision="propagated")
    assert a.column("track_id").to_pylist() == [-1, 2, 7]
    # weights 1 and 1/4: (0 * 1 + 4 * 0.25) / 1.25
    np.testing.assert_allclose(a.column("x").to_numpy(), [7.0, 0.8, 10.0])
    np.testing.assert_allclose(a.column("precision_xy").to_numpy(),
                               [5.0, 1 / np.sqrt(1.25), 3.0])
    assert a.column("frame").to_pylist() == [40, 5, 2]
    assert a.column("frame_span").to_pylist() == [0, 4, 0]
    assert a.column("photons").to_pylist() == [70.0, 400.0, 50.0]
    assert a.column("channel").to_pylist() == [2, 1, 0]
    # sem with a single localization keeps the input precision
    s = average_traces(t)
    assert s.column("precision_xy").to_pylist()[0] == 5.0
    with pytest.raises(ParameterError, match="precision_xy"):
        average_traces(t.drop_columns(["precision_xy"]), precision="propagated")
    with pytest.raises(ParameterError, match="'sem' or 'propagated'"):
        average_traces(t, precision="median")


def test_average_traces_sorted_fast_path_equals_shuffled():
    shuffled, _, _ = _traces(rng=3, shuffle=True)
    ordered, _, _ = _traces(rng=3, shuffle=False)
    a, b = average_traces(shuffled), average_traces(ordered)
    for c in ("x", "y", "z", "precision_xy", "n_localizations"):
        np.testing.assert_allclose(a.column(c).to_numpy(), b.column(c).to_numpy(), rtol=1e-12)


@pytest.mark.shared_data
def test_average_traces_on_real_3d_export(real_minflux, tmp_path):
    t = smlmspine.read(real_minflux["3D"])
    a = average_traces(t, min_localizations=4)
    df = t.to_pandas()
    g = df.groupby("track_id")
    keep = g.size()[g.size() >= 4]
    assert a.num_rows == len(keep)
    np.testing.assert_allclose(a.column("z").to_numpy(), g["z"].mean()[keep.index].to_numpy(),
                               rtol=1e-12)
    back = smlmspine.read(smlmspine.write(a, tmp_path / "avg.parquet"))
    assert back.to_pandas().equals(a.to_pandas())


# --------------------------------------------------------------------------- colour

def test_split_channels_by_dcr_recovers_two_populations():
    rng = np.random.default_rng(1)
    n_traces, per = 300, 8
    truth = rng.integers(0, 2, n_traces)
    dcr = np.repeat(np.where(truth == 1, 0.7, 0.3), per) + rng.normal(0, 0.08, n_traces * per)
    tid = np.repeat(np.arange(n_traces), per)
    perm = rng.permutation(tid.size)
    t = make_table({"x": np.zeros(tid.size), "y": np.zeros(tid.size), "dcr": dcr[perm],
                    "track_id": tid[perm]})
    per_trace = split_channels_by_dcr(t, thresholds=[0.5]).column("channel").to_numpy()
    assert np.array_equal(per_trace, np.repeat(truth, per)[perm])
    single = split_channels_by_dcr(t, thresholds=[0.5], per_trace=False).column("channel").to_numpy()
    acc = np.mean(single == np.repeat(truth, per)[perm])
    assert 0.97 < acc < 1.0  # single localizations misclassify in the tails (~0.6 %)
    with pytest.raises(ParameterError, match="increasing"):
        split_channels_by_dcr(t, thresholds=[0.6, 0.4])
    nan = make_table({"x": [0.0, 0.0], "y": [0.0, 0.0], "dcr": [np.nan, 0.9]})
    assert split_channels_by_dcr(nan, per_trace=False).column("channel").to_pylist() == [-1, 1]
    with pytest.raises(ParameterError, match="per_trace=False"):
        split_channels_by_dcr(nan)


# --------------------------------------------------------------------------- --where

def test_where_grammar_and_storm_columns():
    t = make_table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0] * 4, "frame": [0, 10, 20, 30],
                    "photons": [400.0, 600.0, np.nan, 900.0]})
    assert filter_where(t, "photons>500").column("x").to_pylist() == [1.0, 3.0]
    assert filter_where(t, ["photons > 500", "frame<=10"]).column("x").to_pylist() == [1.0]
    assert filter_where(t, "frame>=10 & frame != 30 and 1e1 <= frame").num_rows == 2
    assert filter_where(t, "photons!=600").column("x").to_pylist() == [0.0, 3.0]  # NaN never passes
    assert where_mask(t, [Condition("x", "==", 2.0)]).tolist() == [False, False, True, False]
    assert parse_where("x>-1.5e3") == (Condition("x", ">", -1500.0),)
    for bad, msg in [("photons>", "malformed"), ("photons >> 5", "malformed"),
                     ("photons>5 or x<1", "'and' or '&'"), ("__import__('os')", "unexpected"),
                     ("", "empty"), ("photons>nan", "malformed")]:
        with pytest.raises(ParameterError, match=msg):
            filter_where(t, bad)
    with pytest.raises(ParameterError, match="unknown column 'cfr'"):
        filter_where(t, "cfr<0.8")


# --------------------------------------------------------------------------- CLI

def _mfx_file(tmp_path):
    t, _, _ = _traces(n_traces=40, per_trace=(1, 12), rng=5, shuffle=False)
    cols = {c: t.column(c).to_numpy() for c in t.column_names}
    cols["dcr"] = np.where(cols["track_id"] % 2 == 0, 0.3, 0.7)
    cols["vld"] = np.arange(t.num_rows) % 10 != 0
    return write_abberior_npy(cols, tmp_path / "in.npy", n_iterations=4), cols


def test_cli_filter_average_split(tmp_path, capsys):
    path, cols = _mfx_file(tmp_path)
    out = tmp_path / "f.parquet"
    assert main(["filter", str(path), "-o", str(out), "--where", "cfr<0.8",
                 "--where", "efo>1e4", "--min-trace-length", "4"]) == 0
    f = smlmspine.read(out)
    v = cols["vld"] & (cols["cfr"] < 0.8) & (cols["efo"] > 1e4)
    tid = cols["track_id"][v]
    u, c = np.unique(tid, return_counts=True)
    assert f.num_rows == int(np.isin(tid, u[c >= 4]).sum())
    assert [h["step"] for h in history(f)][-3:] == ["filter.where", "minflux.filter_trace_length",
                                                    "io.write"]
    assert "kept" in capsys.readouterr().out

    assert main(["filter", str(path), "-o", str(out), "--where", "x>0", "--keep-invalid"]) == 0
    assert smlmspine.read(out).num_rows == int((cols["x"] > 0).sum())

    avg = tmp_path / "a.parquet"
    assert main(["average-traces", str(path), "-o", str(avg), "--min-trace-length", "2"]) == 0
    a = smlmspine.read(avg)
    assert np.all(a.column("n_localizations").to_numpy() >= 2)

    split = tmp_path / "s.parquet"
    assert main(["split-channels", str(path), "-o", str(split), "--dcr-threshold", "0.5"]) == 0
    s = smlmspine.read(split)
    np.testing.assert_array_equal(s.column("channel").to_numpy(),
                                  (s.column("track_id").to_numpy() % 2 == 1).astype(int))


def test_cli_errors_are_one_line(tmp_path, capsys):
    path, _ = _mfx_file(tmp_path)
    out = tmp_path / "o.parquet"
    assert main(["filter", str(path), "-o", str(out), "--where", "cfr<<1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed filter expression" in err
    assert main(["filter", str(path), "-o", str(out), "--where", "nope<1"]) == 2
    assert "unknown column 'nope'" in capsys.readouterr().err
    assert main(["filter", str(path), "-o", str(out)]) == 2
    assert "nothing to filter" in capsys.readouterr().err
    storm = smlmspine.write(make_table({"x": [0.0, 1.0], "y": [0.0, 0.0],
                                        "photons": [100.0, 900.0]}), tmp_path / "storm.parquet")
    assert main(["filter", str(storm), "-o", str(out), "--keep-invalid", "--where", "x>0"]) == 2
    assert "--keep-invalid does not apply to" in capsys.readouterr().err
    assert main(["filter", str(storm), "-o", str(out), "--where", "photons>500"]) == 0
    assert smlmspine.read(out).column("photons").to_pylist() == [900.0]
    assert not (tmp_path / "never.parquet").exists()
