"""Each simulation result writes itself; ``write_simulation`` dispatches to it."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smlmspine.errors import FormatError, ParameterError
from smlmspine.io import read
from smlmspine.simulate import MinfluxSample, minflux_traces, write_simulation
from smlmspine.simulate.synapses import SynapsePopulations, SynapseRendering, synapses


def test_synapse_simulation_writes_localizations_and_truth(tmp_path):
    sim = synapses(populations=SynapsePopulations(n_pre=50, n_post=40, coupled_fraction=0.5),
                   rendering=SynapseRendering(locs_per_object=3), ndim=2, rng=3)
    out = write_simulation(sim, tmp_path / "syn.parquet")
    again = sim.write(tmp_path / "again.parquet")
    assert out["truth"] == tmp_path / "syn.truth" and again["truth"] == tmp_path / "again.truth"
    locs = read(tmp_path / "syn.parquet")
    assert locs.num_rows == sim.pre_localizations.num_rows + sim.post_localizations.num_rows
    pairs = pq.read_table(tmp_path / "syn.truth" / "pairs.parquet")
    assert pairs.equals(sim.pairs)
    params = json.loads((tmp_path / "syn.truth" / "parameters.json").read_text())
    assert params["n_coupled"] == sim.n_coupled == 20
    assert [p.name for p in out["files"]] == ["pre_objects.parquet", "post_objects.parquet",
                                              "pre_truth.parquet", "post_truth.parquet",
                                              "pairs.parquet", "parameters.json"]
    # Byte-identical files for the same simulation.
    for name in ("pairs.parquet", "parameters.json"):
        assert ((tmp_path / "syn.truth" / name).read_bytes()
                == (tmp_path / "again.truth" / name).read_bytes())


def test_synapse_simulation_without_localizations_writes_the_objects(tmp_path):
    sim = synapses(populations=SynapsePopulations(n_pre=30, n_post=20, coupled_fraction=0.0),
                   ndim=2, rng=0)
    sim.write(tmp_path / "obj.parquet")
    t = read(tmp_path / "obj.parquet")
    assert t.num_rows == 50
    assert np.bincount(t.column("channel").to_numpy()).tolist() == [30, 20]


def test_minflux_simulation_writes_abberior_npy(tmp_path):
    sim = minflux_traces(sample=MinfluxSample(n_emitters=5), ndim=2, rng=1)
    out = sim.write(tmp_path / "mf.npy")
    assert out["localizations"].suffix == ".npy"
    back = read(tmp_path / "mf.npy")
    vld = sim.localizations.column("vld").to_numpy(zero_copy_only=False)
    assert back.num_rows == int(vld.sum())  # the reader keeps the valid rows
    assert pq.read_table(tmp_path / "mf.truth" / "emitters.parquet").num_rows == 5


def test_write_simulation_refuses_other_objects(tmp_path):
    table = pa.table({"x": [1.0]})
    with pytest.raises(ParameterError, match="cannot write a Table; expected a simulation"):
        write_simulation(table, tmp_path / "t.parquet")
    assert not any(tmp_path.iterdir())


def test_missing_output_folder_is_refused(tmp_path):
    sim = synapses(populations=SynapsePopulations(n_pre=5, n_post=5), ndim=2, rng=0)
    with pytest.raises(FormatError, match="does not exist"):
        sim.write(tmp_path / "nope" / "s.parquet")
    assert not any(tmp_path.iterdir())
