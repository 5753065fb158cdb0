"""The row aggregator (smlmspine._aggregate.Groups) and its users, merge_blinks and
average_traces, against per-group brute force on random data with fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

from smlmspine._aggregate import Groups


def _brute(keys, values, fn, singletons=None):
    """Per-group reduction by looping over the groups in increasing key order."""
    out = []
    for k in np.unique(keys):
        rows = np.flatnonzero(keys == k)
        if singletons is not None and singletons[rows].any():
            out.extend(fn(values[[r]]) for r in rows)
        else:
            out.append(fn(values[rows]))
    return np.array(out)


@pytest.mark.parametrize("presorted_keys", [False, True])
def test_groups_reductions_brute_force(presorted_keys):
    rng = np.random.default_rng(0)
    n = 3000
    keys = rng.integers(-5, 400, n)
    if presorted_keys:
        keys = np.sort(keys)
    v = rng.normal(0, 1e6, n)
    w = rng.uniform(0.1, 10, n)
    b = rng.random(n) < 0.9
    g = Groups(keys)
    assert (g.order is None) == presorted_keys
    np.testing.assert_array_equal(g.keys, np.unique(keys))
    np.testing.assert_array_equal(g.counts, np.unique(keys, return_counts=True)[1])
    np.testing.assert_allclose(g.sum(v), _brute(keys, v, np.sum), rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(g.mean(v), _brute(keys, v, np.mean), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(g.weighted_mean(v, w),
                               [np.average(v[keys == k], weights=w[keys == k])
                                for k in np.unique(keys)], rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(g.min(v), _brute(keys, v, np.min))
    np.testing.assert_array_equal(g.max(v), _brute(keys, v, np.max))
    np.testing.assert_array_equal(g.all(b), _brute(keys, b, np.all))
    np.testing.assert_array_equal(g.first(v), _brute(keys, v, lambda a: a[0]))
    np.testing.assert_array_equal(g.first_rows,
                                  [np.flatnonzero(keys == k)[0] for k in np.unique(keys)])
    np.testing.assert_array_equal(g.per_row(g.counts),
                                  [np.sum(keys == k) for k in keys])
    # presorted values give the same as values in input order
    np.testing.assert_array_equal(g.sum(g.sort(v), presorted=True), g.sum(v))


def test_groups_singletons_nanmean_and_edge_cases():
    rng = np.random.default_rng(1)
    keys = np.array([3, -1, 3, -1, 7, -1, 7, 7])
    v = np.array([1.0, 2.0, np.nan, 4.0, np.nan, 6.0, np.nan, np.nan])
    g = Groups(keys, singletons=keys < 0)
    assert g.counts.tolist() == [1, 1, 1, 2, 3]
    got = g.nanmean(v)
    np.testing.assert_array_equal(got[:4], [2.0, 4.0, 6.0, 1.0])
    assert np.isnan(got[4])
    empty = Groups(np.zeros(0, np.int64))
    assert empty.n_groups == 0 and empty.sum(np.zeros(0)).shape == (0,)
    assert empty.per_row(empty.counts).shape == (0,)
    one = Groups(np.array([42]))
    assert one.sum(np.array([1e308])).tolist() == [1e308]
    big = rng.uniform(1e15, 2e15, 50)
    assert Groups(np.zeros(50, np.int64)).max(big)[0] == big.max()


def test_merge_blinks_aggregates_brute_force():
    from smlmspine.merge import merge_blinks
    from smlmspine.schema import make_table

    rng = np.random.default_rng(2)
    # well separated emitters, one burst each (consecutive frames): the bursts are known
    n_em, per = 60, 6
    em = np.column_stack([np.arange(n_em) * 1000.0, np.zeros(n_em)])
    burst = np.repeat(np.arange(n_em), per)
    frame = np.tile(np.arange(per), n_em) + burst * 10
    perm = rng.permutation(burst.size)  # rows in no particular order
    burst, frame = burst[perm], frame[perm]
    n = burst.size
    ph = rng.uniform(100, 2000, n)
    px = rng.uniform(3, 12, n)
    t = make_table({"x": em[burst, 0] + rng.normal(0, 3, n), "y": rng.normal(0, 3, n),
                    "frame": frame, "photons": ph, "precision_xy": px,
                    "background": rng.uniform(0, 5, n), "quality": rng.random(n)})
    m = merge_blinks(t, radius_nm=40.0, max_gap_frames=0)
    assert m.num_rows == n_em
    x = t.column("x").to_numpy()
    np.testing.assert_allclose(m.column("x").to_numpy(),
                               _brute(burst, np.column_stack([x, ph]),
                                      lambda a: np.average(a[:, 0], weights=a[:, 1])),
                               rtol=1e-12)
    np.testing.assert_allclose(m.column("photons").to_numpy(), _brute(burst, ph, np.sum),
                               rtol=1e-12)
    np.testing.assert_allclose(m.column("precision_xy").to_numpy(),
                               _brute(burst, px, lambda a: 1 / np.sqrt(np.sum(a ** -2.0))),
                               rtol=1e-12)
    np.testing.assert_allclose(m.column("quality").to_numpy(),
                               _brute(burst, t.column("quality").to_numpy(), np.mean),
                               rtol=1e-12)
    np.testing.assert_array_equal(m.column("first_frame").to_numpy(),
                                  _brute(burst, frame, np.min))
    np.testing.assert_array_equal(m.column("last_frame").to_numpy(),
                                  _brute(burst, frame, np.max))
    np.testing.assert_array_equal(m.column("n_merged").to_numpy(), np.full(n_em, per))


def test_average_traces_brute_force():
    from smlmspine.minflux import average_traces, split_channels_by_dcr, trace_lengths
    from smlmspine.schema import make_table

    rng = np.random.default_rng(3)
    n = 2000
    tid = rng.integers(-2, 300, n)
    x, y, z = rng.normal(0, 10, (3, n))
    ts = rng.uniform(0, 50, n)
    efo = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 1e5, n))
    dcr = rng.random(n)
    t = make_table({"x": x, "y": y, "z": z, "track_id": tid, "time_s": ts, "efo": efo,
                    "dcr": dcr, "eco": rng.uniform(0, 100, n)})
    a = average_traces(t)
    single = tid < 0
    np.testing.assert_allclose(a.column("x").to_numpy(), _brute(tid, x, np.mean, single),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(a.column("n_localizations").to_numpy(),
                                  _brute(tid, tid, len, single))
    np.testing.assert_array_equal(a.column("track_id").to_numpy(),
                                  _brute(tid, tid, lambda r: r[0], single))
    sem = _brute(tid, np.column_stack([x, y]),
                 lambda r: np.sqrt((r[:, 0].var(ddof=1) + r[:, 1].var(ddof=1)) / 2 / len(r))
                 if len(r) > 1 else np.nan, single)
    np.testing.assert_allclose(a.column("precision_xy").to_numpy(), sem, rtol=1e-10)
    np.testing.assert_array_equal(a.column("time_span_s").to_numpy(),
                                  _brute(tid, ts, np.ptp, single))
    np.testing.assert_allclose(a.column("efo").to_numpy(),
                               _brute(tid, efo, lambda r: np.nanmean(r) if np.isfinite(r).any()
                                      else np.nan, single), rtol=1e-12)
    np.testing.assert_allclose(a.column("eco").to_numpy(),
                               _brute(tid, t.column("eco").to_numpy(), np.sum, single),
                               rtol=1e-12)
    lengths = trace_lengths(t)
    np.testing.assert_array_equal(lengths, np.where(single, 1, [np.sum(tid == k) for k in tid]))
    ch = split_channels_by_dcr(t, thresholds=[0.5]).column("channel").to_numpy()
    mean_dcr = np.array([dcr[i] if single[i] else dcr[tid == tid[i]].mean() for i in range(n)])
    np.testing.assert_array_equal(ch, (mean_dcr >= 0.5).astype(int))
