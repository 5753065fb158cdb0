"""Shared data of the batch tests: tiny simulated files, one Dask cluster, one batch run.

Each file is a 2 um volume-labelled dendrite with one mushroom spine (~12 000
localizations, a few seconds through the pipeline). The cluster (2 worker processes, one
thread each) and the first batch are made once per session; tests that change a batch
folder work on a copy of it.
"""

from __future__ import annotations

import logging
import shutil

import pytest

from smlmspine.io import write
from smlmspine.simulate import Acquisition, Geometry, Labeling, SimulatedDrift, dendrite

#: Configuration of every test batch: the volume label keeps each file at a few seconds.
CONFIG = {"run": {"label": "volume"}}

MUSHROOM = {"spine_class": "mushroom", "neck_diameter_nm": 200.0, "neck_length_nm": 400.0,
            "head_diameter_nm": 600.0, "head_length_nm": 600.0, "position_nm": 1000.0}


def tiny_dendrite(seed: int):
    """One mushroom spine on a 2 um shaft, volume label, 800 frames, 30 nm drift."""
    return dendrite(geometry=Geometry(spines=[MUSHROOM], shaft_length_nm=2000.0),
                    labeling=Labeling(label="volume"), acquisition=Acquisition(n_frames=800),
                    drift=SimulatedDrift(drift_nm=30.0), rng=seed)


@pytest.fixture(scope="session")
def batch_data(tmp_path_factory):
    """``data/ctrl/cell_a.parquet``, ``data/ttx/cell_b.parquet`` (good), ``data/ttx/
    garbage.parquet`` (not a localization file) and ``data/manifest.csv`` listing the
    three with ``condition`` and ``animal``; returns (folder, {name: simulation})."""
    root = tmp_path_factory.mktemp("batch_data")
    (root / "ctrl").mkdir()
    (root / "ttx").mkdir()
    sims = {"cell_a": tiny_dendrite(11), "cell_b": tiny_dendrite(12)}
    write(sims["cell_a"].localizations, root / "ctrl" / "cell_a.parquet")
    write(sims["cell_b"].localizations, root / "ttx" / "cell_b.parquet")
    (root / "ttx" / "garbage.parquet").write_text("this is not a localization file\n")
    (root / "manifest.csv").write_text(
        "path,condition,animal\n"
        "ctrl/cell_a.parquet,ctrl,1\n"
        "ttx/cell_b.parquet,ttx,2\n"
        "ttx/garbage.parquet,ttx,2\n")
    return root, sims


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of 2 worker processes (one thread each) for the session."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="session")
def first_batch(batch_data, dask_client, tmp_path_factory):
    """The manifest's batch, run once: (outdir, BatchResult)."""
    from smlmspine import batch

    root, _ = batch_data
    out = tmp_path_factory.mktemp("first_batch") / "out"
    res = batch(root / "manifest.csv", out, config=CONFIG, client=dask_client,
                progress=False, report=False)
    return out, res


@pytest.fixture
def batch_copy(first_batch, tmp_path):
    """A copy of the first batch's folder, to change."""
    out, _ = first_batch
    dst = tmp_path / "out"
    shutil.copytree(out, dst)
    return dst
