"""The shared validation layer (smlmspine._validate) and the API entry points using it."""

import math

import numpy as np
import pytest

from smlmspine._validate import (check_count, check_memory, finite, in_range, integer,
                                 memory_budget_bytes, non_negative, positive, workers)
from smlmspine.errors import ParameterError
from smlmspine.schema import make_table


@pytest.mark.parametrize("value", [-1, 0, 0.0, float("nan"), float("inf"), -float("inf"),
                                   1e-320, "x", None, True, [1.0]])
def test_positive_refuses_and_names_the_parameter(value):
    with pytest.raises(ParameterError, match=r"^radius_nm must be a positive finite number"):
        positive(value, "radius_nm")


@pytest.mark.parametrize("value,expected", [(2, 2.0), ("2.5", 2.5), (np.float32(3), 3.0),
                                            (1e-300, 1e-300), (1e300, 1e300)])
def test_positive_accepts(value, expected):
    assert positive(value, "x") == expected


def test_non_negative_finite_and_range():
    assert non_negative(0, "m") == 0.0
    with pytest.raises(ParameterError, match="m must be a finite number >= 0, got nan"):
        non_negative(float("nan"), "m")
    assert finite("-3", "shift") == -3.0
    with pytest.raises(ParameterError, match="shift must be a finite number"):
        finite(float("inf"), "shift")
    assert in_range(1, "f", 0, 1) == 1.0
    with pytest.raises(ParameterError, match=r"f must be a number in \(0, 1\]"):
        in_range(0, "f", 0, 1, low_open=True)
    assert in_range(math.inf, "ratio", 0, math.inf, low_open=True) == math.inf
    with pytest.raises(ParameterError, match="ratio"):
        in_range(float("nan"), "ratio", 0, math.inf, low_open=True)
    assert positive(None, "x", allow_none=True) is None


@pytest.mark.parametrize("value", [0, 1, -5, 2.5, float("nan"), "3.0", True, None])
def test_integer_minimum(value):
    with pytest.raises(ParameterError, match=r"^folds must be an integer >= 2, got"):
        integer(value, "folds", minimum=2)


def test_integer_accepts_integral_values():
    assert integer(np.int64(4), "n", minimum=1) == 4
    assert integer(4.0, "n") == 4
    assert integer("7", "n", maximum=9) == 7
    with pytest.raises(ParameterError, match=r"n must be an integer in \[1, 3\], got 4"):
        integer(4, "n", minimum=1, maximum=3)


def test_integer_must_fit_in_64_bits():
    """merge --max-gap-frames 99999999999999999999 crashed in the numba kernel."""
    assert integer(2 ** 63 - 1, "g", minimum=0) == 2 ** 63 - 1
    with pytest.raises(ParameterError, match="g must be an integer >= 0 that fits in 64 bits"):
        integer("99999999999999999999", "g", minimum=0)


def test_workers():
    assert workers(-1) == -1 and workers(3) == 3
    assert workers(1024) == 1024
    for bad in (0, -2, 1.5, "many", 1025, 10 ** 9):
        with pytest.raises(ParameterError, match=r"workers must be -1 .all cores. or an integer "
                                                 r"in \[1, 1024\]"):
            workers(bad)


def test_memory_budget_default_is_a_quarter_of_the_machine(monkeypatch):
    import smlmspine._validate as v
    monkeypatch.delenv("SMLMSPINE_MEMORY_BUDGET_GB", raising=False)
    for total, budget in ((24e9, 6e9), (2e9, 1e9), (None, 1e9)):
        monkeypatch.setattr(v, "physical_memory_bytes", lambda total=total: total)
        assert memory_budget_bytes() == budget
    monkeypatch.undo()
    monkeypatch.delenv("SMLMSPINE_MEMORY_BUDGET_GB", raising=False)
    total = v.physical_memory_bytes()
    assert total is not None and total > 1e8          # this machine says how much it has
    assert memory_budget_bytes() == max(1e9, total / 4)


def test_memory_budget_env(monkeypatch):
    import smlmspine._validate as v
    monkeypatch.delenv("SMLMSPINE_MEMORY_BUDGET_GB", raising=False)
    monkeypatch.setattr(v, "physical_memory_bytes", lambda: 2e9)
    assert memory_budget_bytes() == 1e9
    check_memory(0.9e9, what="x")
    with pytest.raises(ParameterError, match=r"about 1\.1 GB, over the memory budget of 1 GB"):
        check_memory(1.1e9, what="x")
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "2")
    check_memory(1.1e9, what="x")
    for bad in ("0", "-1", "nan", "lots"):
        monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", bad)
        with pytest.raises(ParameterError, match="SMLMSPINE_MEMORY_BUDGET_GB must be"):
            memory_budget_bytes()
    monkeypatch.delenv("SMLMSPINE_MEMORY_BUDGET_GB")
    for n in (float("inf"), float("nan")):
        with pytest.raises(ParameterError, match="not a finite count"):
            check_count(n, 8, what="rings")


# ------------------------------------------------------------- API entry points
def _locs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return make_table({"x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n),
                       "frame": rng.integers(0, 100, n).astype(np.int64),
                       "precision_xy": np.full(n, 5.0)})


@pytest.mark.parametrize("radius", [1e-320, -1.0, float("nan"), float("inf"), 0.0])
def test_merge_blinks_refuses_bad_radius(radius):
    from smlmspine.merge import merge_blinks

    with pytest.raises(ParameterError, match="radius_nm must be"):
        merge_blinks(_locs(), radius_nm=radius)


def test_merge_blinks_tiny_radius_keeps_every_localization():
    """1e-100 nm is valid (its square does not underflow): nothing merges, no crash
    (the linking grid no longer follows the radius into overflow)."""
    from smlmspine.merge import merge_blinks

    t = _locs()
    out = merge_blinks(t, radius_nm=1e-100)
    assert out.num_rows == t.num_rows
    with pytest.raises(ParameterError, match="radius_nm must be >= 1e-150"):
        merge_blinks(t, radius_nm=1e-200)


def test_soda_refuses_a_ring_count_beyond_the_budget_before_allocating():
    from smlmspine.coupling import soda

    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 5000, (50, 2)), rng.uniform(0, 5000, (50, 2))
    box = (np.zeros(2), np.full(2, 5000.0))
    with pytest.raises(ParameterError, match=r"ring_nm=1e-06 .*5e\+08 rings would need about"):
        soda(a, b, region=box, r_max_nm=500, ring_nm=1e-6)
    for thr in (-1.0, float("nan"), 0.0):
        with pytest.raises(ParameterError, match="threshold must be a positive finite"):
            soda(a, b, region=box, r_max_nm=200, ring_nm=20, threshold=thr)
    with pytest.raises(ParameterError, match="n_simulations must be an integer >= 1"):
        soda(a, b, region=box, r_max_nm=200, ring_nm=20, null="csr", n_simulations=0)


def test_section_profile_budget_and_step():
    from smlmspine.morphology import measure_spine
    from smlmspine.testing import analytic_spine

    mesh = analytic_spine(100.0, 700.0, 350.0, sections=32)
    for step in (float("nan"), 0.0, -1.0, float("inf")):
        with pytest.raises(ParameterError, match="step_nm must be a positive finite number"):
            measure_spine(mesh, base_point_nm=[0, 0, 0], step_nm=step)
    with pytest.raises(ParameterError, match=r"step_nm=1e-06: .* cross-sections .* over the "
                                             r"memory budget"):
        measure_spine(mesh, base_point_nm=[0, 0, 0], step_nm=1e-6)


@pytest.mark.parametrize("field,value", [("head_margin_nm", float("nan")),
                                         ("head_margin_nm", -1.0),
                                         ("head_neck_ratio", 0.0),
                                         ("mushroom_head_nm", float("inf")),
                                         ("unconfirmed_head_neck_ratio", float("nan"))])
def test_class_rules_refuse_bad_thresholds(field, value):
    from smlmspine.morphology import ClassRules

    with pytest.raises(ParameterError, match=field):
        ClassRules(**{field: value})
    assert ClassRules(unconfirmed_head_neck_ratio=math.inf).unconfirmed_head_neck_ratio == math.inf


def test_train_classifier_refuses_too_few_folds():
    import pyarrow as pa

    from smlmspine.morphology import train_classifier

    feats = pa.table({"length_nm": [1.0, 2.0, 3.0, 4.0]})
    for folds in (0, 1, -3, 2.5):
        with pytest.raises(ParameterError, match="n_folds must be an integer >= 2"):
            train_classifier(feats, ["a", "a", "b", "b"], n_folds=folds)


def test_average_traces_min_length():
    from smlmspine.minflux import average_traces

    t = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "track_id": [1, 1]})
    for bad in (-5, 0, 1.5):
        with pytest.raises(ParameterError, match="min_localizations must be an integer >= 1"):
            average_traces(t, min_localizations=bad)


def test_mesh_spines_refuses_bad_workers_smooth_alpha():
    from smlmspine.envelope import mesh_spines

    t = make_table({"x": [0.0], "y": [0.0], "z": [0.0]})
    with pytest.raises(ParameterError, match="workers must be -1"):
        mesh_spines(t, workers=0)
    for smooth in (-1, 1001):
        with pytest.raises(ParameterError, match=r"smooth must be an integer in \[0, 1000\]"):
            mesh_spines(t, smooth=smooth)
    for alpha in (-1.0, 0.0, float("nan")):
        with pytest.raises(ParameterError, match="alpha_nm must be a positive finite number"):
            mesh_spines(t, alpha_nm=alpha)


def test_drift_segments_budget_and_values():
    from smlmspine.drift import correct

    rng = np.random.default_rng(3)
    n = 2000
    t = make_table({"x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n),
                    "frame": np.sort(rng.integers(0, 10**9, n)).astype(np.int64)})
    with pytest.raises(ParameterError, match="drift segments would need about"):
        correct(t, method="aim", segment_frames=1)
    for bad in (0, -1, 1.5):
        with pytest.raises(ParameterError, match="segment_frames must be an integer >= 1"):
            correct(t, method="aim", segment_frames=bad)


def test_soda_pair_budget_counts_pairs_before_enumerating(monkeypatch):
    """With a 1 MB budget: 200 x 200 points all within r_max (40 000 pairs, ~5 MB) are
    refused with the exact count; the same points with a short r_max (few pairs) pass."""
    from smlmspine.coupling import soda

    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 1000, (200, 2)), rng.uniform(0, 1000, (200, 2))
    box = (np.zeros(2), np.full(2, 1000.0))
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "0.001")
    with pytest.raises(ParameterError, match=r"r_max_nm=1500: 40000 pre-post pairs within "
                                             r"r_max would need about 5\.12 MB"):
        soda(a, b, region=box, r_max_nm=1500, ring_nm=500)
    res = soda(a, b, region=box, r_max_nm=20, ring_nm=10)
    assert res.n_pre == 200 and res.n_post == 200


def test_section_step_longer_than_the_spine_is_named():
    from smlmspine.morphology import measure_spine
    from smlmspine.testing import analytic_spine

    mesh = analytic_spine(100.0, 700.0, 350.0, sections=32)
    with pytest.raises(ParameterError, match=r"step_nm=1e\+300 is longer than the spine's "
                                             r"centreline"):
        measure_spine(mesh, base_point_nm=[0, 0, 0], step_nm=1e300)


def test_merge_blinks_gap_beyond_int64_is_refused():
    from smlmspine.merge import merge_blinks

    with pytest.raises(ParameterError, match="max_gap_frames must be an integer >= 0 that fits"):
        merge_blinks(_locs(), radius_nm=10.0, max_gap_frames=10 ** 20)
    assert merge_blinks(_locs(), radius_nm=10.0, max_gap_frames=2 ** 62).num_rows <= 200
