"""The envelope stage's process pool: same result for any worker count, biggest jobs
first, no cap below one worker per job, workers importing only what they need."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from smlmspine.envelope import _export


def _sim():
    from smlmspine import simulate

    sim = simulate.dendrite(geometry=simulate.Geometry(n_spines=3, shaft_length_nm=3000.0),
                            labeling=simulate.Labeling(label="membrane"), rng=7)
    return sim.localizations


def test_task_order_biggest_first():
    tasks = _export._task_order([500, 40, 9000, 40], 3000)
    assert [t[:2] for t in tasks] == [("spine", 2), ("dendrite", -1), ("spine", 0),
                                      ("spine", 1), ("spine", 3)]
    assert _export._task_order([], None) == []


@pytest.mark.parametrize(("workers", "n_jobs", "expected"),
                         [(2, 2, 2), (2, 1, 1), (8, 3, 3), (1, 50, 1), (0, 5, 1)])
def test_n_workers_one_per_job_at_most(workers, n_jobs, expected):
    # no cap at n_jobs // 4 any more: 2 jobs get 2 workers
    assert _export._n_workers(workers, n_jobs) == expected


def test_n_workers_all_cores(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert _export._n_workers(-1, 100) == 6
    assert _export._n_workers(-2, 100) == 5
    assert _export._n_workers(-1, 3) == 3


def test_worker_modules_exist():
    # the fork server skips a preload module it cannot import without a word: a typo
    # would silently bring the imports back into every worker
    for name in _export.WORKER_MODULES:
        assert importlib.util.find_spec(name) is not None, name
    # the workers never need the readers, plots or the features
    assert not any(m.startswith(("smlmspine.io", "smlmspine.report", "matplotlib.pyplot",
                                 "smlmspine.morphology._features"))
                   for m in _export.WORKER_MODULES)


@pytest.mark.slow
def test_same_result_for_any_worker_count():
    table = _sim()
    one = _export.mesh_spines(table, workers=1, dendrite_max_points=3000)
    two = _export.mesh_spines(table, workers=2, dendrite_max_points=3000)
    assert one.spines.num_rows >= 2
    assert one.spines.to_pandas().equals(two.spines.to_pandas())
    for k, env in one.envelopes.items():
        np.testing.assert_array_equal(np.asarray(env.mesh.vertices),
                                      np.asarray(two.envelopes[k].mesh.vertices))
        np.testing.assert_array_equal(np.asarray(env.mesh.faces),
                                      np.asarray(two.envelopes[k].mesh.faces))
    np.testing.assert_array_equal(np.asarray(one.dendrite.mesh.vertices),
                                  np.asarray(two.dendrite.mesh.vertices))
    # the profile: every spine timed once, in the worker that made it
    for res, n in ((one, 1), (two, 2)):
        prof = res.parameters["profile"]
        assert prof["workers"] == n
        steps = prof["steps"]
        assert steps["spine"]["calls"] == res.spines.num_rows
        assert steps["dendrite"]["calls"] == 1
        assert steps["isolation"]["calls"] == 1
        assert sorted(prof["spine_seconds"]) == sorted(res.spines.column("spine_id").to_pylist())
        assert sum(prof["spine_seconds"].values()) == pytest.approx(
            steps["spine"]["seconds"], rel=1e-3, abs=1e-3)
        assert steps["spine/reconstruct"]["seconds"] <= steps["spine"]["seconds"]
        assert prof["peak_rss_mb"]["jobs"] > 50.0


def test_isolation_same_for_any_thread_count():
    # the centreline's slice fits run on threads: same curve, same spines
    from smlmspine.envelope import isolate_spines

    table = _sim()
    one = isolate_spines(table, workers=1)
    two = isolate_spines(table, workers=2)
    assert one.spines.num_rows >= 2
    np.testing.assert_array_equal(one.centreline.points_nm, two.centreline.points_nm)
    np.testing.assert_array_equal(one.centreline.radius_nm, two.centreline.radius_nm)
    np.testing.assert_array_equal(one.table.column("spine_id").to_numpy(),
                                  two.table.column("spine_id").to_numpy())
    assert one.spines.equals(two.spines)
