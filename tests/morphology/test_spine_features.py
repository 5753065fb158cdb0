"""morphology.spine_features on the edges: a wrong label, no spines, a spine whose
envelope is not watertight (the measured path is covered by
test_base_invariance.test_labelled_cut_spines_through_mesh_spines_and_spine_features and
the pipeline/CLI tests)."""

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from smlmspine._columns import SPINE_MESH_COLUMNS
from smlmspine.errors import ParameterError
from smlmspine.morphology import SPINE_MESH_FEATURE_COLUMNS, spine_features
from smlmspine.schema import make_table, metadata, spec_table


def _meshes(rows, envelopes, points=None, spine_id=None):
    cols = {name: [r[name] for r in rows] for name in SPINE_MESH_COLUMNS}
    if not rows:
        cols = {name: pa.array([], type=s.type) for name, s in SPINE_MESH_COLUMNS.items()}
    p = np.zeros((0, 3)) if points is None else points
    sid = np.zeros(0, np.int64) if spine_id is None else spine_id
    table = make_table({"x": p[:, 0], "y": p[:, 1], "z": p[:, 2], "spine_id": sid})
    return SimpleNamespace(spines=spec_table(SPINE_MESH_COLUMNS, cols), envelopes=envelopes,
                           isolation=SimpleNamespace(table=table), parameters={})


def _row(spine_id, **kw):
    defaults = {pa.string(): "", pa.bool_(): False, pa.int64(): 0, pa.float64(): 0.0}
    row = {name: defaults[s.type] for name, s in SPINE_MESH_COLUMNS.items()}
    row.update(spine_id=spine_id, **kw)
    return row


@pytest.mark.parametrize("label", ["surface", "Membrane", None])
def test_wrong_label_is_refused_before_any_work(label):
    with pytest.raises(ParameterError, match="label must be 'membrane' or 'volume'"):
        spine_features(_meshes([], {}), label=label)


def test_no_spines_gives_an_empty_table_of_the_documented_schema():
    out = spine_features(_meshes([], {}), label="volume", step_nm=5.0)
    assert out.num_rows == 0
    assert out.column_names == list(SPINE_MESH_FEATURE_COLUMNS)
    assert [f.type for f in out.schema] == [s.type for s in SPINE_MESH_FEATURE_COLUMNS.values()]
    md = metadata(out)
    assert md["source_step"] == "morphology.spine_features"
    assert md["label"] == "volume" and md["step_nm"] == 5.0


def test_open_envelope_keeps_its_row_with_nan_features_and_the_reason():
    rows = [_row(7, n_localizations=50, is_watertight=False, reason="holes in the surface",
                 volume_um3=0.5, surface_area_um2=2.0)]
    env = SimpleNamespace(is_watertight=False, mesh=None)
    rng = np.random.default_rng(0)
    out = spine_features(_meshes(rows, {7: env}, rng.normal(size=(50, 3)), np.full(50, 7)))
    (row,) = out.to_pylist()
    assert row["spine_id"] == 7 and row["n_localizations"] == 50
    assert row["reason"] == "holes in the surface"
    assert row["quality"] == "not_measured" and row["quality_reason"] == "holes in the surface"
    assert row["trustworthy"] is False
    assert row["spine_class"] == "" and row["n_tips"] == -1
    # the envelope's closed-mesh volume is not the spine's: not carried over
    for name in ("volume_um3", "surface_area_um2", "neck_min_diameter_nm", "head_diameter_nm",
                 "length_nm", "neck_fit_diameter_nm"):
        assert np.isnan(row[name]), name


def test_pipeline_does_not_carry_a_second_copy():
    import smlmspine.pipeline as pipeline

    assert "spine_features" not in pipeline.__all__
    assert not hasattr(pipeline, "spine_features")


def test_same_features_for_any_worker_count():
    # 8 analytic spines (capsules standing on z = 0): the mesh measurements run in 2
    # worker processes, the table is the same as measured here; one open envelope
    # keeps its row in order
    import trimesh

    rows, envs = [], {}
    for k in range(9):
        cap = trimesh.creation.capsule(height=600.0 + 40 * k, radius=60.0 + 8 * k, count=[24, 24])
        cap.apply_translation([2000.0 * k, 0.0, 300.0 + 20 * k])   # base at z = 0 - radius
        z0 = float(cap.vertices[:, 2].min())
        rows.append(_row(k + 1, n_localizations=100, is_watertight=k != 4,
                         base_x_nm=2000.0 * k, base_y_nm=0.0, base_z_nm=z0 + 30.0,
                         axis_x=0.0, axis_y=0.0, axis_z=1.0))
        envs[k + 1] = SimpleNamespace(is_watertight=k != 4, mesh=cap)
    one = spine_features(_meshes(rows, envs), workers=1)
    two = spine_features(_meshes(rows, envs), workers=2)
    assert one.schema.equals(two.schema, check_metadata=True)
    import pandas as pd

    pd.testing.assert_frame_equal(one.to_pandas(), two.to_pandas(), check_exact=True)
    d = one.column("neck_min_diameter_nm").to_numpy(zero_copy_only=False)
    assert np.isnan(d[4]) and np.isfinite(np.delete(d, 4)).all()
