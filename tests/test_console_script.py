"""The ``smlmspine`` console script (``smlmspine.cli:console_main``) ends quickly with the
exit status of :func:`smlmspine.cli.main`, its output complete and the exit handlers run;
Open3D's worker import leaves its plotly viewer out."""

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "sample_dendrite.csv"

_SCRIPT = textwrap.dedent("""
    import atexit, sys
    atexit.register(lambda: print("exit handler ran", file=sys.stderr, flush=True))
    from smlmspine.cli import console_main
    sys.argv[0] = "smlmspine"
    console_main()
    print("not reached", file=sys.stderr)
""")


def _console(*args):
    return subprocess.run([sys.executable, "-c", _SCRIPT, *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_the_installed_script_is_console_main():
    [ep] = [e for e in entry_points(group="console_scripts") if e.name == "smlmspine"]
    assert ep.value == "smlmspine.cli:console_main"
    text = (ROOT / "pyproject.toml").read_text()
    assert 'smlmspine = "smlmspine.cli:console_main"' in text


def test_success_keeps_its_output_and_runs_the_exit_handlers():
    res = _console("info", SAMPLE)
    assert res.returncode == 0, res.stderr
    assert "localizations:   51346" in res.stdout and "frame_range" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == "exit handler ran"
    assert "not reached" not in res.stderr
    helptext = _console("--help")
    assert helptext.returncode == 0 and "SMLMSPINE_MEMORY_BUDGET_GB" in helptext.stdout


def test_an_error_is_one_line_and_exit_2():
    res = _console("info", ROOT / "no-such-file.csv")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("smlmspine info: error:") and "no-such-file.csv" in lines[0]
    assert lines[1:] == ["exit handler ran"] and "Traceback" not in res.stderr


def test_run_refused_early_is_one_line_without_helper_tracebacks(tmp_path):
    """`run` starts its fork server and figure helpers before it reads the file; a file
    it refuses right away must still give one line, and no helper started afterwards
    may print a traceback on the same stderr (the capture below waits until every
    process holding the pipe has ended)."""
    import pyarrow.csv as pc

    t = pc.read_csv(SAMPLE)
    flat = tmp_path / "flat.csv"
    pc.write_csv(t.drop_columns([c for c in t.column_names if c.startswith("z")]), flat)
    res = _console("run", flat, "-o", tmp_path / "out")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("smlmspine run: error:") and "3D" in lines[0]
    assert lines[1:] == ["exit handler ran"], res.stderr
    assert not (tmp_path / "out").exists()


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path):
    """A job scheduler's SIGTERM in the middle of `run`: one line, exit 143, no output
    folder, and without finishing the queued spines first."""
    import signal
    import time

    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", _SCRIPT, "run", str(SAMPLE), "-o", str(out),
                          "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)                     # reading, drift, isolation or the envelopes
    t = time.perf_counter()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert time.perf_counter() - t < 20.0
    assert err.strip().splitlines() == ["smlmspine: terminated", "exit handler ran"], err
    assert not out.exists()


def test_worker_open3d_import_leaves_out_the_plotly_viewer():
    code = textwrap.dedent("""
        import sys
        import smlmspine._open3d
        import open3d as o3d
        assert "dash" not in sys.modules and "plotly" not in sys.modules
        mesh = o3d.geometry.TriangleMesh.create_sphere(radius=1.0)
        assert len(mesh.triangles) > 0
        scene = o3d.t.geometry.RaycastingScene()
        try:
            o3d.visualization.draw_plotly([mesh])
        except ImportError as exc:
            assert "plotly" in str(exc)
        else:
            raise AssertionError("the placeholder did not refuse")
        print("ok")
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
