"""Spine stages by region: tiles along the dendrite vs the untiled run, against the truth."""

import numpy as np
import pyarrow as pa
import pytest

from smlmspine._tiles import DEFAULT_MARGIN_NM, mesh_spine_tiles
from smlmspine.errors import ParameterError
from smlmspine.schema import make_table


def _truth_index(spines: pa.Table, truth: pa.Table):
    def base(t):
        return np.c_[t.column("base_x_nm").to_numpy(), t.column("base_y_nm").to_numpy(),
                     t.column("base_z_nm").to_numpy()]

    d = np.linalg.norm(base(spines)[:, None] - base(truth)[None], axis=2)
    return d.argmin(axis=1), d.min(axis=1)


@pytest.mark.slow
def test_three_tiles_find_the_spines_of_the_untiled_run_once_and_whole():
    from smlmspine import envelope
    from smlmspine.morphology import spine_features
    from smlmspine.simulate import Geometry, dendrite

    # 6 spines on 16 um of shaft (membrane label, ~9e4 localizations); 3 tiles of ~5 um
    # cores + 3 um margins: spines near the cuts are seen by two tiles
    sim = dendrite(geometry=Geometry(n_spines=6, shaft_length_nm=16000.0), rng=21)
    table = sim.localizations
    meshes = envelope.mesh_spines(table, label="membrane", dendrite=False)
    whole = spine_features(meshes, label="membrane",
                           precision_nm=meshes.parameters.get("precision_nm"))
    tiled = mesh_spine_tiles(table, n_tiles=3)
    found = [t["n_spines_found"] for t in tiled.tiles]
    kept = [t["n_spines_kept"] for t in tiled.tiles]
    assert sum(found) > sum(kept)                 # the overlaps saw some spines twice
    assert sum(kept) == tiled.spines.num_rows == whole.num_rows == 6
    # every truth spine found once (none counted twice, none lost)
    j_tiled, d_tiled = _truth_index(tiled.spines, sim.spines)
    j_whole, _ = _truth_index(whole, sim.spines)
    assert sorted(j_tiled) == sorted(j_whole) == list(range(6))
    assert d_tiled.max() < 300
    # none cut: each spine about as whole as in the untiled run (a cut loses a head or a
    # neck: far more than the differences the shaft context of a tile makes), and no
    # farther from the truth
    order_t, order_w = np.argsort(j_tiled), np.argsort(j_whole)

    def col(t, order, name):
        return t.column(name).to_numpy()[order].astype(float)

    v_t, v_w = col(tiled.spines, order_t, "volume_um3"), col(whole, order_w, "volume_um3")
    v_true = sim.spines.column("volume_um3").to_numpy()
    msg = f"tiled {v_t}, untiled {v_w}, truth {v_true}"
    assert np.all(np.abs(v_t - v_w) <= 0.15 * v_w), msg
    assert np.all(np.abs(v_t - v_true) <= np.abs(v_w - v_true) + 0.10 * v_true), msg
    for name, tol in (("n_localizations", 0.15), ("length_nm", 0.10)):
        a, b = col(tiled.spines, order_t, name), col(whole, order_w, name)
        assert np.all(np.abs(a - b) <= tol * b), f"{name}: tiled {a}, untiled {b}"
    # unique ids, carried to the localizations
    ids = tiled.spines.column("spine_id").to_pylist()
    assert len(set(ids)) == len(ids) == 6
    loc_ids = set(tiled.localizations.column("spine_id").to_pylist()) - {-1}
    assert loc_ids == set(ids)
    assert sorted(tiled.envelopes) == sorted(ids)
    assert tiled.parameters["margin_nm"] == DEFAULT_MARGIN_NM


def test_tiles_refuse_bad_options():
    t = make_table({"x": [0.0, 1.0], "y": [0.0, 1.0], "z": [0.0, 0.0]})
    with pytest.raises(ParameterError, match="n_tiles"):
        mesh_spine_tiles(t, n_tiles=0)
    with pytest.raises(ParameterError, match="margin_nm"):
        mesh_spine_tiles(t, n_tiles=2, margin_nm=-1.0)
    with pytest.raises(ParameterError, match="3D"):
        mesh_spine_tiles(make_table({"x": [0.0], "y": [0.0]}), n_tiles=1)
