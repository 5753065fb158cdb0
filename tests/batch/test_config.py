"""smlmspine.config and `run --config` / `run --print-config`: round trip, precedence,
one-line refusals, and a run reproduced from the configuration a batch recorded."""

from __future__ import annotations

import json
import tomllib

import pyarrow.parquet as pq
import pytest

from smlmspine import ParameterError
from smlmspine.cli import main
from smlmspine.config import (check_config, config_from_run, default_config, load_config,
                              parameters_hash, run_arguments, to_toml)


def test_print_config_prints_the_defaults_and_loads_back(tmp_path, capsys):
    assert main(["run", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert text == to_toml(default_config())
    assert check_config(tomllib.loads(text)) == default_config()
    path = tmp_path / "run.toml"
    path.write_text(text)
    assert load_config(path) == default_config()
    # every key of [run] is a keyword of smlmspine.pipeline.run, with the CLI's defaults
    import inspect

    from smlmspine.pipeline import run

    params = inspect.signature(run).parameters
    assert set(default_config()["run"]) <= set(params)
    cli_defaults = {"workers": -1}  # the CLI uses every core, the function one
    for key, value in default_config()["run"].items():
        assert cli_defaults.get(key, params[key].default) == value, key


def test_options_given_override_the_file(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('[read]\nmap = { x = "X", y = "Y", z = "Z" }\n'
                    '[run]\nlabel = "volume"\ndrift = "rcc"\nalpha_nm = 90\n')
    assert main(["run", "--config", str(path), "--drift", "none", "--no-merge",
                 "--print-config"]) == 0
    cfg = check_config(tomllib.loads(capsys.readouterr().out))
    assert cfg["run"]["label"] == "volume" and cfg["run"]["alpha_nm"] == 90.0  # from the file
    assert cfg["run"]["drift"] == "none" and cfg["run"]["merge"] is False      # given
    assert cfg["read"]["map"] == {"x": "X", "y": "Y", "z": "Z"}
    assert run_arguments(cfg)["mapping"] == {"x": "X", "y": "Y", "z": "Z"}
    args = run_arguments(cfg)
    args["read_options"] = {"mapping": args.pop("mapping")}
    assert config_from_run(args) == {**cfg, "batch": default_config()["batch"]}


@pytest.mark.parametrize("text, message", [
    ("[run]\nalfa_nm = 80\n", "unknown key 'run.alfa_nm'"),
    ("[stages]\nlabel = 'volume'\n", "unknown section [stages]"),
    ("[run]\ndrift = 'magic'\n", "run.drift must be one of 'aim', 'rcc', 'fiducial', 'none'"),
    ("[run]\nmerge = 'yes'\n", "run.merge must be true or false"),
    ("[run]\nsegment_frames = 0\n", "run.segment_frames must be an integer >= 1"),
    ("[run]\nalpha_nm = -5\n", "run.alpha_nm must be a positive number in nm or \"auto\""),
    ("[batch]\nscheduler = 'localhost'\n", "batch.scheduler must be a scheduler address"),
    ("run = 3\n", "run must be a section [run]"),
    ("[run\nlabel = 1\n", "not a TOML file"),
])
def test_bad_config_is_one_line_naming_key_and_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(Exception, match="bad.toml"):
        load_config(path)
    assert main(["run", "in.csv", "-o", str(tmp_path / "o"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.toml" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_run_needs_input_and_output_without_print_config(tmp_path, capsys):
    assert main(["run", "-o", str(tmp_path / "o")]) == 2
    assert "IN required" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "missing.toml"), "--print-config"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_parameters_hash_ignores_only_what_cannot_change_results():
    base = parameters_hash({})
    assert parameters_hash({"run": {"workers": 4}}) == base
    assert parameters_hash({"batch": {"retries": 5, "workers": 3}}) == base
    assert parameters_hash({"run": {"step_nm": 10.0}}) == base  # the default, spelled out
    for change in ({"run": {"step_nm": 11.0}}, {"run": {"merge": False}},
                   {"read": {"pixel_size_nm": 100.0}}, {"read": {"map": {"x": "X"}}}):
        assert parameters_hash(change) != base, change
    with pytest.raises(ParameterError, match="unknown key 'run.speed'"):
        parameters_hash({"run": {"speed": 1}})


def test_run_from_recorded_configuration_reproduces_the_batch(first_batch, batch_data,
                                                               tmp_path, capsys):
    """The configuration batch recorded in run.json, given to `run --config`, gives the
    same parameters, configuration and spines."""
    out, _ = first_batch
    root, _ = batch_data
    recorded = json.loads((out / "cell_a" / "run.json").read_text())
    path = tmp_path / "run.toml"
    path.write_text(to_toml(recorded["config"]))
    assert main(["run", str(root / "ctrl" / "cell_a.parquet"), "-o", str(tmp_path / "o"),
                 "--config", str(path), "--quiet"]) == 0
    capsys.readouterr()
    again = json.loads((tmp_path / "o" / "run.json").read_text())
    assert again["parameters"] == recorded["parameters"]
    assert again["config"] == recorded["config"]
    assert again["parameters_hash"] == recorded["parameters_hash"]
    a = pq.read_table(out / "cell_a" / "spines.parquet")
    b = pq.read_table(tmp_path / "o" / "spines.parquet")
    assert a.num_rows == b.num_rows == 1
    assert a.column("spine_class").to_pylist() == b.column("spine_class").to_pylist()
    for name in ("head_diameter_nm", "neck_min_diameter_nm", "volume_um3"):
        assert a.column(name).to_pylist() == pytest.approx(b.column(name).to_pylist()), name


def test_read_section_reaches_the_reader(batch_data, dask_client, tmp_path, capsys):
    """[read] of the file is applied by run (CLI) and by batch (in each task)."""
    from smlmspine import batch

    root, _ = batch_data
    path = tmp_path / "read.toml"
    path.write_text('[read]\nformat = "thunderstorm"\n[run]\nlabel = "volume"\n')
    src = root / "ctrl" / "cell_a.parquet"
    assert main(["run", str(src), "-o", str(tmp_path / "o"), "--config", str(path)]) == 2
    assert "thunderstorm" in capsys.readouterr().err.lower()
    assert not (tmp_path / "o").exists()
    res = batch([src], tmp_path / "b", config=path, client=dask_client, progress=False,
                report=False)
    (failure,) = res.failures.to_pylist()
    assert failure["run_folder"] == "cell_a" and "thunderstorm" in failure["error"].lower()
    assert res.record["config"]["read"]["format"] == "thunderstorm"


def test_chunk_rows_is_a_read_key_from_file_cli_and_run_parameters(tmp_path, capsys):
    from smlmspine.cli._pipeline import effective_config
    from smlmspine.cli import build_parser

    assert default_config()["read"]["chunk_rows"] is None
    cfg = check_config({"read": {"chunk_rows": 500000}})
    assert run_arguments(cfg)["chunk_rows"] == 500000
    assert "chunk_rows" not in run_arguments(default_config())
    # run.json's parameters carry it at the top level; it comes back under [read]
    assert config_from_run({"drift": "none", "chunk_rows": 7})["read"]["chunk_rows"] == 7
    assert parameters_hash(cfg) == parameters_hash(default_config())   # how it is read
    with pytest.raises(ParameterError, match="chunk_rows"):
        check_config({"read": {"chunk_rows": 0}})
    toml = tmp_path / "run.toml"
    toml.write_text("[read]\nchunk_rows = 300000\n")
    args = build_parser().parse_args(["run", "in.parquet", "-o", str(tmp_path / "o"),
                                      "--config", str(toml)])
    assert effective_config(args)["read"]["chunk_rows"] == 300000
    args = build_parser().parse_args(["run", "in.parquet", "-o", str(tmp_path / "o"),
                                      "--config", str(toml), "--chunk-rows", "1000"])
    assert effective_config(args)["read"]["chunk_rows"] == 1000
