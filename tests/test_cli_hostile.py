"""Hostile use of the commands: bad option values, unwritable outputs, late failures.

Every refusal must be exit status 2 with exactly one line on stderr and no traceback,
and must leave the file system as it was (no partial output, no clobbered file).
Tests run as root, where permissions do not stop writes: unwritable outputs are made
with a missing folder or a path under a regular file, and a full disk is simulated by
monkeypatching a writer to raise ENOSPC part-way.
"""

import errno
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import build_parser, main
from smlmspine.io import write
from smlmspine.schema import make_table


# ---------------------------------------------------------------------------- fixtures
def _emitters(rng, n_emitters=300, n_frames=2000, blinks=12, spread_nm=3000.0):
    pos = rng.uniform(0, spread_nm, (n_emitters, 3))
    pos[:, 2] *= 0.2
    idx = np.repeat(np.arange(n_emitters), blinks)
    frame = rng.integers(0, n_frames, idx.size)
    xyz = pos[idx] + rng.normal(0, 8.0, (idx.size, 3))
    return make_table({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                       "frame": frame.astype(np.int64),
                       "photons": rng.uniform(500, 3000, idx.size),
                       "precision_xy": np.full(idx.size, 8.0),
                       "precision_z": np.full(idx.size, 20.0)})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small inputs written once: localizations, spine meshes, a features table,
    two synapse populations."""
    from smlmspine.coupling import BoxRegion
    from smlmspine.simulate.synapses import SynapsePopulations, synapses
    from smlmspine.testing import analytic_spine

    d = tmp_path_factory.mktemp("hostile_inputs")
    rng = np.random.default_rng(7)
    write(_emitters(rng), d / "locs.parquet")
    (d / "meshes").mkdir()
    analytic_spine(100.0, 700.0, 350.0, sections=32).export(d / "meshes" / "spine_1.ply")
    sim = synapses(populations=SynapsePopulations(n_pre=60, n_post=60, coupled_fraction=0.5,
                                                  distance_mean_nm=80, distance_sd_nm=10),
                   region=BoxRegion((0, 0), (6000, 6000)), rng=0)
    for name, obj in (("pre", sim.pre_objects), ("post", sim.post_objects)):
        xy = np.asarray(obj)[:, :2]
        write(make_table({"x": xy[:, 0], "y": xy[:, 1]}), d / f"{name}.parquet")
    feats = {"source": ["a", "b"], "spine_id": [1, 2], "length_nm": [900.0, 500.0],
             "neck_min_diameter_nm": [150.0, 300.0], "head_diameter_nm": [500.0, 320.0],
             "n_tips": [1, 1]}
    pq.write_table(pa.table(feats), d / "features.parquet")
    return d


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_refused(rc, out, err, *, match=None):
    assert rc == 2, (rc, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    if match is not None:
        assert match in lines[0], lines[0]


def tree(root: Path) -> dict:
    """Every path under ``root`` with its content digest (files) or None (folders)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = None
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


# ------------------------------------------------------------- bad option values
#: (command argv with {d} = input folder, {o} = output folder, option, bad values, match)
BAD_VALUES = [
    ("mesh {d}/locs.parquet -o {o}/m", "--alpha-nm", ["-1", "0", "nan"], "--alpha-nm"),
    ("mesh {d}/locs.parquet -o {o}/m", "--smooth", ["-1", "1.5", "100000000"], "--smooth"),
    ("mesh {d}/locs.parquet -o {o}/m", "--workers", ["0", "-2", "1000000000"], "--workers"),
    ("mesh {d}/locs.parquet -o {o}/m", "--step-nm", ["nan", "-1", "inf"], "--step-nm"),
    ("run {d}/locs.parquet -o {o}/r", "--alpha-nm", ["-1", "nan"], "--alpha-nm"),
    ("run {d}/locs.parquet -o {o}/r", "--workers", ["0"], "--workers"),
    ("measure {d}/meshes -o {o}/f.parquet --units nm", "--step-nm", ["nan", "0", "-3"],
     "--step-nm"),
    ("classify {d}/features.parquet -o {o}/c.parquet", "--head-margin-nm", ["nan", "-1"],
     "--head-margin-nm"),
    ("classify {d}/features.parquet -o {o}/c.parquet", "--head-neck-ratio", ["0", "inf"],
     "--head-neck-ratio"),
    ("couple {d}/pre.parquet {d}/post.parquet -o {o}/cp", "--threshold", ["-1", "nan"],
     "--threshold"),
    ("couple {d}/pre.parquet {d}/post.parquet -o {o}/cp", "--ring-nm", ["0", "nan"], "--ring-nm"),
    ("couple {d}/pre.parquet {d}/post.parquet -o {o}/cp", "--n-simulations", ["0"],
     "--n-simulations"),
    ("average-traces {d}/locs.parquet -o {o}/a.parquet", "--min-trace-length", ["-5", "0"],
     "--min-trace-length"),
    ("filter {d}/locs.parquet -o {o}/a.parquet", "--min-trace-length", ["-5"],
     "--min-trace-length"),
    ("train {d}/features.parquet --labels {d}/l.csv -o {o}/m.json", "--folds", ["0", "1"],
     "--folds"),
    ("merge {d}/locs.parquet -o {o}/m.parquet", "--radius-nm", ["1e-320", "-1", "nan", "0"],
     "--radius-nm"),
    ("merge {d}/locs.parquet -o {o}/m.parquet", "--max-gap-frames", ["-1"], "--max-gap-frames"),
    ("drift {d}/locs.parquet -o {o}/d.parquet", "--segment-frames", ["0"], "--segment-frames"),
    ("drift {d}/locs.parquet -o {o}/d.parquet", "--segment-seconds", ["nan", "-1"],
     "--segment-seconds"),
    ("cluster {d}/locs.parquet -o {o}/c.parquet", "--eps-nm", ["nan", "0", "-4"], "--eps-nm"),
    ("cluster {d}/locs.parquet -o {o}/c.parquet", "--min-samples", ["0"], "--min-samples"),
    ("convert {d}/locs.parquet {o}/c.csv", "--pixel-size-nm", ["nan", "0", "-1"],
     "--pixel-size-nm"),
]


@pytest.mark.parametrize("argv,option,values,match", BAD_VALUES,
                         ids=[f"{a.split()[0]}{o}" for a, o, _, _ in BAD_VALUES])
def test_bad_option_values_are_refused_before_any_work(capsys, tmp_path, data, argv, option,
                                                       values, match):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for value in values:
        before = tree(tmp_path)
        args = argv.format(d=data, o=out_dir).split() + [option, value]
        rc, out, err = run(capsys, *args)
        assert_refused(rc, out, err, match=match)
        assert "must be" in err
        assert tree(tmp_path) == before


def _subparsers(parser):
    """``{name: subparser}`` of a parser's sub-commands, nested ones (``simulate dendrite``)
    by their full name."""
    actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    out = {}
    for action in actions:
        for name, sp in action.choices.items():
            inner = _subparsers(sp)
            if inner:
                out.update({f"{name} {k}": v for k, v in inner.items()})
            else:
                out[name] = sp
    return out


def _numeric_options(prefix=""):
    """Every option of every command (``simulate`` and ``train`` included) whose value is
    a number."""
    cases = []
    for name, sp in sorted(_subparsers(build_parser()).items()):
        if not name.startswith(prefix):
            continue
        for action in sp._actions:
            if not action.option_strings or action.choices is not None:
                continue
            if action.type is None or action.type is str:
                continue
            cases.append((name, action.option_strings[-1]))
    return cases


@pytest.mark.parametrize("command,option", _numeric_options())
def test_no_numeric_option_takes_nan(capsys, command, option):
    """A NaN (or an infinity) never gets past the parser: each numeric option is validated."""
    for value in ("nan", "inf", "-inf"):
        rc, out, err = run(capsys, *command.split(), option, value)
        assert_refused(rc, out, err, match=option)


def test_every_numeric_option_is_covered():
    """The parametrization above is not empty and sees the options the brief names."""
    seen = set(_numeric_options())
    for case in [("mesh", "--smooth"), ("mesh", "--workers"), ("measure", "--step-nm"),
                 ("couple", "--ring-nm"), ("merge", "--radius-nm"), ("train", "--folds"),
                 ("train", "--seed"), ("classify", "--head-margin-nm"),
                 ("average-traces", "--min-trace-length"), ("simulate dendrite", "--seed"),
                 ("simulate dendrite", "--n-spines"), ("simulate dendrite", "--n-frames"),
                 ("simulate minflux", "--seed"), ("simulate minflux", "--n-emitters"),
                 ("simulate synapses", "--seed"), ("simulate synapses", "--coupled-fraction")]:
        assert case in seen, case


#: simulate options that take a negative value (all others refuse one)
NEGATIVE_OK = {("simulate dendrite", "--curvature-per-um")}
SIM_OUT = {"simulate dendrite": "d.parquet", "simulate minflux": "m.npy",
           "simulate synapses": "s.parquet"}


@pytest.mark.parametrize("command,option", _numeric_options("simulate"))
def test_simulate_options_refuse_negative_and_huge_values(capsys, tmp_path, command, option):
    """``--seed -1`` used to be a ValueError traceback; huge values ran away or gave a
    MemoryError. Each is one line naming the option, before any work, nothing written."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    values = ["-1e300", "1e300", "1e30"] + ([] if (command, option) in NEGATIVE_OK else ["-1"])
    for value in values:
        before = tree(tmp_path)
        rc, out, err = run(capsys, *command.split(), out_dir / SIM_OUT[command], f"{option}={value}")
        assert_refused(rc, out, err, match=option)
        assert "must be" in err or "over the memory budget" in err
        assert tree(tmp_path) == before


def test_simulate_seed_minus_one_is_one_line(capsys, tmp_path):
    for kind, name in (("dendrite", "d.parquet"), ("minflux", "m.npy"), ("synapses", "s.csv")):
        rc, out, err = run(capsys, "simulate", kind, tmp_path / name, "--seed", "-1")
        assert_refused(rc, out, err, match=f"smlmspine simulate {kind}: error: --seed must be an "
                                           "integer >= 0, got '-1'")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------- resource budgets
def test_measure_tiny_step_is_refused_with_the_estimate(capsys, tmp_path, data):
    out = tmp_path / "f.parquet"
    rc, o, err = run(capsys, "measure", data / "meshes", "-o", out, "--units", "nm", "--no-progress",
                     "--step-nm", "1e-6")
    assert_refused(rc, o, err, match="over the memory budget")
    assert "SMLMSPINE_MEMORY_BUDGET_GB" in err and "GB" in err
    assert not out.exists()


def test_couple_tiny_ring_is_refused_with_the_estimate(capsys, tmp_path, data):
    out = tmp_path / "cp"
    rc, o, err = run(capsys, "couple", data / "pre.parquet", data / "post.parquet", "-o", out,
                     "--ring-nm", "1e-6", "--region", "0,0,6000,6000")
    assert_refused(rc, o, err, match="rings would need about")
    assert not out.exists()


def test_budget_can_be_lowered_and_raised(capsys, tmp_path, data, monkeypatch):
    """The budget is the environment variable's: a tiny one refuses the default step."""
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "1e-9")
    rc, o, err = run(capsys, "measure", data / "meshes", "-o", tmp_path / "f.parquet",
                     "--units", "nm", "--no-progress")
    assert_refused(rc, o, err, match="over the memory budget of")
    monkeypatch.setenv("SMLMSPINE_MEMORY_BUDGET_GB", "lots")
    rc, o, err = run(capsys, "measure", data / "meshes", "-o", tmp_path / "f.parquet",
                     "--units", "nm", "--no-progress")
    assert_refused(rc, o, err, match="SMLMSPINE_MEMORY_BUDGET_GB")


# ------------------------------------------------------- unwritable output paths
#: Each writing command with each of its outputs: (argv, {option: default value}).
WRITERS = {
    "convert": ("convert {d}/locs.parquet {OUT}", {"OUT": "{o}/c.csv"}),
    "filter": ("filter {d}/locs.parquet --where photons>1000 -o {-o}", {"-o": "{o}/f.parquet"}),
    "merge": ("merge {d}/locs.parquet -o {-o}", {"-o": "{o}/m.parquet"}),
    "drift": ("drift {d}/locs.parquet -o {-o} --drift-table {--drift-table} --plot {--plot}",
              {"-o": "{o}/d.parquet", "--drift-table": "{o}/drift.csv",
               "--plot": "{o}/drift.png"}),
    "cluster": ("cluster {d}/locs.parquet -o {-o} --stats {--stats}",
                {"-o": "{o}/c.parquet", "--stats": "{o}/stats.csv"}),
    "mesh": ("mesh {d}/locs.parquet -o {-o}", {"-o": "{o}/meshes"}),
    "run": ("run {d}/locs.parquet -o {-o}", {"-o": "{o}/run"}),
    "measure": ("measure {d}/meshes --units nm --no-progress -o {-o} --profiles {--profiles} --plots {--plots}",
                {"-o": "{o}/f.parquet", "--profiles": "{o}/prof", "--plots": "{o}/plots"}),
    "classify": ("classify {d}/features.parquet -o {-o}", {"-o": "{o}/c.parquet"}),
    "couple": ("couple {d}/pre.parquet {d}/post.parquet --region 0,0,6000,6000 -o {-o}",
               {"-o": "{o}/cp"}),
}
FOLDER_OUTPUTS = {("mesh", "-o"), ("run", "-o"), ("couple", "-o"), ("measure", "--profiles"),
                  ("measure", "--plots")}
BREAKAGES = ("missing_folder", "under_a_file", "wrong_kind")

# output folders are created with their missing parents (`-o out/sample` in a fresh
# clone, as the README's main job does): "missing_folder" is no breakage for them
# (tests/test_pipeline.py::test_run_cli_creates_missing_parent_folders_and_removes_them_on_failure,
# test_folder_outputs_create_missing_parents below)
CASES = [(cmd, opt, how) for cmd, (_, outs) in WRITERS.items() for opt in outs for how in BREAKAGES
         if not (how == "missing_folder" and (cmd, opt) in FOLDER_OUTPUTS)]


def _argv(data, out_dir, command, override=None):
    template, outs = WRITERS[command]
    values = {k: v.format(o=out_dir) for k, v in outs.items()}
    if override:
        values.update(override)
    text = template.replace("{d}", str(data))
    for key, val in values.items():
        text = text.replace("{" + key + "}", val)
    return text.split()


@pytest.mark.parametrize("command,option,how", CASES, ids=[f"{c}{o}-{h}" for c, o, h in CASES])
def test_unwritable_output_is_refused_before_any_work(capsys, tmp_path, data, command, option, how):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a_file").write_text("not a folder\n")
    folder = (command, option) in FOLDER_OUTPUTS
    name = Path(WRITERS[command][1][option]).name
    if how == "missing_folder":
        bad = out_dir / "missing" / name
    elif how == "under_a_file":
        bad = out_dir / "a_file" / name
    else:  # a file where a folder is expected, or a folder where a file is expected
        bad = out_dir / ("a_file" if folder else "")
        if not folder:
            bad = out_dir / "a_dir"
            bad.mkdir()
    before = tree(tmp_path)
    rc, out, err = run(capsys, *_argv(data, out_dir, command, {option: str(bad)}))
    assert_refused(rc, out, err, match=f"smlmspine {command}: error:")
    assert option in err or str(bad) in err
    assert tree(tmp_path) == before


# (run and mesh take ~25 s each here: `slow`; run's case is also
# tests/test_pipeline.py::test_run_cli_creates_missing_parent_folders_and_removes_them_on_failure)
@pytest.mark.parametrize("command,option", [
    pytest.param(c, o, marks=pytest.mark.slow) if c in ("run", "mesh") else (c, o)
    for c, o in sorted(FOLDER_OUTPUTS)])
def test_folder_outputs_create_missing_parents(capsys, tmp_path, data, command, option):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "missing" / "deeper" / Path(WRITERS[command][1][option]).name
    rc, out, err = run(capsys, *_argv(data, out_dir, command, {option: str(target)}))
    assert rc == 0, err
    assert target.is_dir()


# ------------------------------------------------- late failures (full disk, ...)
def _enospc(path="<disk>"):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_drift_full_disk_at_the_plot_leaves_nothing_and_restores_the_old_output(
        capsys, tmp_path, data, monkeypatch):
    import smlmspine.drift._plot as plot_mod

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "d.parquet").write_bytes(b"OLD RESULT")   # an earlier result, to keep

    def full_disk(model, path, title=None):
        Path(path).write_bytes(b"half a png")  # as a writer would, then the disk fills
        raise _enospc(path)

    monkeypatch.setattr(plot_mod, "plot_model", full_disk)
    before = tree(tmp_path)
    rc, out, err = run(capsys, *_argv(data, out_dir, "drift"))
    assert_refused(rc, out, err, match="No space left on device")
    assert "drift.png" in err
    assert tree(tmp_path) == before
    assert (out_dir / "d.parquet").read_bytes() == b"OLD RESULT"


def test_drift_without_failure_writes_all_three(capsys, tmp_path, data):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rc, out, err = run(capsys, *_argv(data, out_dir, "drift"))
    assert rc == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["d.parquet", "drift.csv", "drift.png"]


def test_cluster_failing_stats_removes_the_clustered_table(capsys, tmp_path, data, monkeypatch):
    import smlmspine.cluster as cluster_mod

    def broken(*a, **k):
        raise _enospc(tmp_path / "out" / "stats.csv")

    monkeypatch.setattr(cluster_mod, "cluster_statistics", broken)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = tree(tmp_path)
    rc, out, err = run(capsys, *_argv(data, out_dir, "cluster"))
    assert_refused(rc, out, err, match="stats.csv")
    assert tree(tmp_path) == before


def _fake_mesh_result(n=3):
    import trimesh
    from types import SimpleNamespace

    envs = {k: SimpleNamespace(mesh=trimesh.creation.icosphere(subdivisions=1, radius=100.0),
                               is_watertight=True, reason="") for k in range(n)}
    spines = pa.table({"spine_id": pa.array(range(n), pa.int64()),
                       "mesh_file": pa.array([""] * n, pa.string()),
                       "is_watertight": pa.array([True] * n)})
    from smlmspine.envelope import SpineMeshes

    return SpineMeshes(envelopes=envs, dendrite=None, isolation=None, spines=spines,
                       parameters={})


@pytest.mark.parametrize("existing", [False, True])
def test_mesh_full_disk_leaves_no_half_folder(capsys, tmp_path, data, monkeypatch, existing):
    """ENOSPC on the second mesh file: a new folder is removed; an existing one gets back
    exactly its old files (the new ones removed, a replaced one restored)."""
    import smlmspine.envelope as env_mod
    import smlmspine.envelope._export as export_mod

    real_export = export_mod.export_mesh
    calls = []

    def export_then_full(mesh, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"half a mesh")
            raise _enospc(path)
        return real_export(mesh, path, **kw)

    monkeypatch.setattr(env_mod, "mesh_spines", lambda *a, **k: _fake_mesh_result())
    monkeypatch.setattr(export_mod, "export_mesh", export_then_full)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "meshes"
    if existing:
        target.mkdir()
        (target / "notes.txt").write_text("mine\n")
        (target / "spine_0.ply").write_bytes(b"an older mesh")
    before = tree(tmp_path)
    rc, out, err = run(capsys, "mesh", data / "locs.parquet", "-o", target, "--no-features",
                       "--no-progress")
    assert_refused(rc, out, err, match="No space left on device")
    assert len(calls) == 2
    assert tree(tmp_path) == before


def test_mesh_writes_when_nothing_fails(capsys, tmp_path, data, monkeypatch):
    import smlmspine.envelope as env_mod

    monkeypatch.setattr(env_mod, "mesh_spines", lambda *a, **k: _fake_mesh_result())
    rc, out, err = run(capsys, "mesh", data / "locs.parquet", "-o", tmp_path / "m",
                       "--no-features", "--no-progress")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "spine_0.ply", "spine_1.ply", "spine_2.ply", "spines.parquet"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no backups left


def test_couple_full_disk_at_the_summary_removes_the_folder(capsys, tmp_path, data, monkeypatch):
    import smlmspine.coupling._soda as soda_mod

    real = soda_mod.SodaResult.to_dict

    def to_dict_then_full(self):
        real(self)
        raise _enospc(tmp_path / "cp" / "summary.json")

    monkeypatch.setattr(soda_mod.SodaResult, "to_dict", to_dict_then_full)
    before = tree(tmp_path)
    rc, out, err = run(capsys, "couple", data / "pre.parquet", data / "post.parquet",
                       "--region", "0,0,6000,6000", "--no-plot", "-o", tmp_path / "cp")
    assert_refused(rc, out, err, match="summary.json")
    assert tree(tmp_path) == before


def test_couple_into_an_existing_file_is_refused(capsys, tmp_path, data):
    f = tmp_path / "results.txt"
    f.write_text("keep me\n")
    rc, out, err = run(capsys, "couple", data / "pre.parquet", data / "post.parquet",
                       "--region", "0,0,6000,6000", "-o", f)
    assert_refused(rc, out, err, match="is an existing file; expected a folder")
    assert f.read_text() == "keep me\n"


def test_measure_failing_plot_removes_features_profiles_and_plots(capsys, tmp_path, data,
                                                                  monkeypatch):
    import smlmspine.morphology as morph

    def broken(m, path, title=""):
        Path(path).write_bytes(b"half")
        raise _enospc(path)

    monkeypatch.setattr(morph, "plot_profile", broken)
    before = tree(tmp_path)
    rc, out, err = run(capsys, "measure", data / "meshes", "--units", "nm", "--no-progress", "-o",
                       tmp_path / "f.parquet", "--profiles", tmp_path / "prof", "--plots",
                       tmp_path / "plots")
    assert_refused(rc, out, err, match="No space left on device")
    assert tree(tmp_path) == before


def test_interrupt_also_rolls_back(capsys, tmp_path, data, monkeypatch):
    """Ctrl-C after the table was written: exit 130 and nothing left behind."""
    import smlmspine.cluster as cluster_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster_mod, "cluster_statistics", interrupted)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = tree(tmp_path)
    rc = main(_argv(data, out_dir, "cluster"))
    capsys.readouterr()
    assert rc == 130
    assert tree(tmp_path) == before


def test_same_file_for_two_outputs_is_refused(capsys, tmp_path, data):
    p = tmp_path / "x.parquet"
    rc, out, err = run(capsys, "cluster", data / "locs.parquet", "-o", p, "--stats", p)
    assert_refused(rc, out, err, match="two outputs")
    assert not p.exists()


def test_oserror_anywhere_is_one_line(capsys, tmp_path, data, monkeypatch):
    """An OSError outside any declared output (here: reading) is one line, exit 2."""
    import smlmspine.cli._cluster as cluster_cli

    def unreadable(args, attr="in"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(data / "locs.parquet"))

    monkeypatch.setattr(cluster_cli, "read_input", unreadable)
    rc, out, err = run(capsys, "cluster", data / "locs.parquet", "-o", tmp_path / "c.parquet")
    assert_refused(rc, out, err, match="Permission denied")
    assert not (tmp_path / "c.parquet").exists()


def _drift_with_failing_plot(monkeypatch):
    import smlmspine.drift._plot as plot_mod

    def full_disk(model, path, title=None):
        raise _enospc(path)

    monkeypatch.setattr(plot_mod, "plot_model", full_disk)


def test_existing_output_is_never_deleted_without_a_backup(capsys, tmp_path, data, monkeypatch):
    """Where no hard link can be made, a replaced file cannot be restored, but a file that
    existed before the command is never removed by the rollback."""
    import smlmspine._outputs as outputs_mod

    real_link = os.link

    def no_links(src, dst, **kw):  # only the transaction's backups fail
        if "smlmspine-backup" in str(dst):
            raise OSError(errno.EPERM, "hard links not supported", str(dst))
        return real_link(src, dst, **kw)

    monkeypatch.setattr(outputs_mod.os, "link", no_links)
    _drift_with_failing_plot(monkeypatch)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "d.parquet").write_bytes(b"OLD RESULT")
    rc, out, err = run(capsys, *_argv(data, out_dir, "drift"))
    assert_refused(rc, out, err, match="No space left on device")
    assert (out_dir / "d.parquet").exists()
    assert sorted(p.name for p in out_dir.iterdir()) == ["d.parquet"]


def test_symlinked_output_is_restored(capsys, tmp_path, data, monkeypatch):
    _drift_with_failing_plot(monkeypatch)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "real.parquet").write_bytes(b"OLD RESULT")
    (out_dir / "d.parquet").symlink_to(tmp_path / "real.parquet")
    rc, out, err = run(capsys, *_argv(data, out_dir, "drift"))
    assert_refused(rc, out, err, match="No space left on device")
    assert (out_dir / "d.parquet").is_symlink()
    assert os.readlink(out_dir / "d.parquet") == str(tmp_path / "real.parquet")
    assert (tmp_path / "real.parquet").read_bytes() == b"OLD RESULT"
    assert sorted(p.name for p in out_dir.iterdir()) == ["d.parquet"]


@pytest.mark.parametrize("command,option", [("drift", "--plot"), ("cluster", "--stats"),
                                            ("mesh", "-o"), ("measure", "--plots")])
def test_read_only_folder_is_refused_before_any_work(capsys, tmp_path, data, monkeypatch,
                                                     command, option):
    """A folder the user cannot write to (simulated: tests run as root, where chmod 0o500
    does not stop writes) is named before anything is written."""
    import smlmspine._outputs as outputs_mod

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    locked = out_dir / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode):
        return False if Path(path) == locked else real_access(path, mode)

    monkeypatch.setattr(outputs_mod.os, "access", access)
    name = Path(WRITERS[command][1][option]).name
    before = tree(tmp_path)
    rc, out, err = run(capsys, *_argv(data, out_dir, command, {option: str(locked / name)}))
    assert_refused(rc, out, err, match="is not writable")
    assert option in err
    assert tree(tmp_path) == before


def test_write_meshes_api_is_all_or_nothing(tmp_path, monkeypatch):
    """The API function itself (not only the command) leaves nothing on ENOSPC."""
    import smlmspine.envelope._export as export_mod
    from smlmspine.errors import FormatError

    real_export = export_mod.export_mesh
    calls = []

    def export_then_full(mesh, path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise _enospc(path)
        return real_export(mesh, path, **kw)

    monkeypatch.setattr(export_mod, "export_mesh", export_then_full)
    with pytest.raises(FormatError, match="No space left on device"):
        export_mod.write_meshes(_fake_mesh_result(), tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FormatError, match="is an existing file; expected a folder"):
        (tmp_path / "f").write_text("x")
        export_mod.write_meshes(_fake_mesh_result(), tmp_path / "f")


# ------------------------------------------------------- simulate and train outputs
def test_simulate_budget_refuses_runaway_work_before_anything(capsys, tmp_path):
    """--n-spines 1e9 ran for minutes, --n-frames 1e12 was a MemoryError traceback."""
    for argv, option in ((["dendrite", "d.parquet", "--n-spines", "1e9"], "--n-spines"),
                         (["dendrite", "d.parquet", "--n-frames", "1e12"], "--n-frames"),
                         (["dendrite", "d.parquet", "--mesh-step-nm", "0.001"], "--mesh-step-nm"),
                         (["dendrite", "d.parquet", "--labeling-density-per-um2", "1e8"],
                          "--labeling-density-per-um2"),
                         (["minflux", "m.npy", "--n-emitters", "1e10"], "--n-emitters"),
                         (["synapses", "s.parquet", "--n-pre", "1e12"], "--n-pre")):
        argv[1] = str(tmp_path / argv[1])
        rc, out, err = run(capsys, "simulate", *argv)
        assert_refused(rc, out, err, match="over the memory budget")
        assert option in err and "SMLMSPINE_MEMORY_BUDGET_GB" in err
    assert list(tmp_path.iterdir()) == []


def test_simulate_unknown_extension_leaves_no_truth_folder(capsys, tmp_path):
    """It used to leave an empty OUT.truth/ behind."""
    rc, out, err = run(capsys, "simulate", "minflux", tmp_path / "o.xyz", "--n-emitters", "3")
    assert_refused(rc, out, err, match="cannot tell the output format from extension '.xyz'")
    assert list(tmp_path.iterdir()) == []


def _sim_minflux(capsys, out, *extra):
    return run(capsys, "simulate", "minflux", out, "--n-emitters", "4", "--seed", "3", *extra)


@pytest.mark.parametrize("existing", [False, True])
def test_simulate_full_disk_mid_write_leaves_nothing_behind(capsys, tmp_path, monkeypatch,
                                                            existing):
    """A failure after the localizations and some truth tables are written: every file and
    folder the command created is removed, and an earlier result is restored exactly."""
    import smlmspine.simulate._output as output

    out = tmp_path / "m.parquet"
    if existing:
        out.write_bytes(b"OLD LOCALIZATIONS")
        (tmp_path / "m.truth").mkdir()
        (tmp_path / "m.truth" / "emitters.parquet").write_bytes(b"OLD EMITTERS")
        (tmp_path / "m.truth" / "notes.txt").write_text("mine\n")
    real = output._parquet
    calls = []

    def fills_the_disk(table, path):
        calls.append(path)
        if len(calls) == 2:            # the second truth table: half written, then ENOSPC
            from smlmspine.io import atomic_output

            with atomic_output(path) as tmp:   # as the package's writers write
                tmp.write_bytes(b"half a table")
                raise _enospc(path)
        return real(table, path)

    monkeypatch.setattr(output, "_parquet", fills_the_disk)
    before = tree(tmp_path)
    rc, o, err = _sim_minflux(capsys, out)
    assert_refused(rc, o, err, match="No space left on device")
    assert len(calls) == 2
    assert tree(tmp_path) == before


def test_simulate_interrupt_leaves_nothing_behind(capsys, tmp_path, monkeypatch):
    """Ctrl-C at the meshes, after the localizations and the truth tables are written."""
    import smlmspine.simulate._dendrite as dendrite_mod

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dendrite_mod, "write_ply", interrupted)
    rc, o, err = run(capsys, "simulate", "dendrite", tmp_path / "d.parquet", "--n-spines", "1",
                     "--shaft-length-nm", "3000", "--n-frames", "200", "--seed", "1")
    assert rc == 130
    assert list(tmp_path.iterdir()) == []


def test_simulate_writes_output_and_truth_when_nothing_fails(capsys, tmp_path):
    rc, o, err = _sim_minflux(capsys, tmp_path / "m.npy")
    assert rc == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "m.truth"]
    assert sorted(p.name for p in (tmp_path / "m.truth").iterdir()) == [
        "drift.parquet", "emitters.parquet", "localizations.parquet", "parameters.json"]


@pytest.mark.parametrize("how", BREAKAGES)
def test_simulate_unwritable_output_is_refused_before_any_work(capsys, tmp_path, how):
    (tmp_path / "a_file").write_text("not a folder\n")
    bad = {"missing_folder": tmp_path / "missing" / "m.npy",
           "under_a_file": tmp_path / "a_file" / "m.npy",
           "wrong_kind": tmp_path / "a_dir"}[how]
    if how == "wrong_kind":
        bad.mkdir()
        bad = tmp_path / "a_dir"
    before = tree(tmp_path)
    rc, o, err = _sim_minflux(capsys, bad)
    assert_refused(rc, o, err, match="smlmspine simulate minflux: error:")
    assert tree(tmp_path) == before


def test_simulate_truth_folder_that_is_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "m.truth").write_text("a file where the truth folder goes\n")
    before = tree(tmp_path)
    rc, o, err = _sim_minflux(capsys, tmp_path / "m.npy")
    assert_refused(rc, o, err, match="truth folder")
    assert tree(tmp_path) == before


def _train_inputs(d):
    from smlmspine.morphology._classify import ML_FEATURES

    rng = np.random.default_rng(2)
    n = 24
    labels = np.array(["thin", "stubby"] * (n // 2))
    cols = {"spine_id": np.arange(n)}
    for name in ML_FEATURES:
        cols[name] = rng.uniform(1.0, 2.0, n)
    cols["length_nm"] = np.where(labels == "thin", 1200.0, 500.0) + rng.normal(0, 60, n)
    pq.write_table(pa.table(cols), d / "f.parquet")
    (d / "l.csv").write_text("spine_id,label\n" + "".join(f"{i},{c}\n" for i, c in
                                                          enumerate(labels)))


def test_train_output_is_checked_first_and_undone_on_failure(capsys, tmp_path, monkeypatch):
    import smlmspine.morphology as model_mod   # what the CLI imports save_model from

    _train_inputs(tmp_path)
    argv = ["train", tmp_path / "f.parquet", "--labels", tmp_path / "l.csv", "--folds", "3"]
    before = tree(tmp_path)
    rc, o, err = run(capsys, *argv, "-o", tmp_path / "missing" / "m.json")
    assert_refused(rc, o, err, match="-o: output folder")
    rc, o, err = run(capsys, *argv, "-o", tmp_path)
    assert_refused(rc, o, err, match="is an existing folder")
    assert tree(tmp_path) == before
    (tmp_path / "m.json").write_text("OLD MODEL")
    before = tree(tmp_path)

    def full_disk(model, path):
        from smlmspine.io import atomic_output

        with atomic_output(path) as tmp:      # as save_model writes
            tmp.write_text("half a model")
            raise _enospc(path)

    monkeypatch.setattr(model_mod, "save_model", full_disk)
    rc, o, err = run(capsys, *argv, "-o", tmp_path / "m.json")
    assert_refused(rc, o, err, match="No space left on device")
    assert tree(tmp_path) == before

    def in_place(model, path):                # a writer that does not write atomically
        Path(path).write_text("half a model")
        raise _enospc(path)

    monkeypatch.setattr(model_mod, "save_model", in_place)
    rc, o, err = run(capsys, *argv, "-o", tmp_path / "m.json")
    assert_refused(rc, o, err, match="No space left on device")
    # the hard-link backup cannot undo an in-place write, but no backup name is left over
    # (rename between two links of one file is a no-op: it used to stay behind)
    assert sorted(tree(tmp_path)) == sorted(before)


def test_train_writes_the_model_when_nothing_fails(capsys, tmp_path):
    _train_inputs(tmp_path)
    rc, o, err = run(capsys, "train", tmp_path / "f.parquet", "--labels", tmp_path / "l.csv",
                     "--folds", "3", "-o", tmp_path / "m.json")
    assert rc == 0, err
    from smlmspine.morphology import load_model

    assert load_model(tmp_path / "m.json").classes == ("stubby", "thin")
