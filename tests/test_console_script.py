"""The ``smlmspine`` console script (``smlmspine.cli:console_main``) ends quickly with the
exit status of :func:`smlmspine.cli.main`, its output complete and the exit handlers run;
SIGTERM and Ctrl-C stop it at once, leaving nothing; Open3D's worker import leaves its
plotly viewer out."""

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "sample_dendrite.csv"

# Ctrl-C as in a terminal: a test runner started in the background (CI) passes SIGINT
# on ignored, which the console script leaves ignored
_SCRIPT = textwrap.dedent("""
    import atexit, signal, sys
    signal.signal(signal.SIGINT, signal.default_int_handler)
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


def _stop_run(tmp_path, after_s, sig, *, group):
    """Start the README job in a session of its own, send ``sig`` after ``after_s``
    (to the whole session with ``group``, as a terminal's Ctrl-C does), and return
    ``(exit status, stderr, seconds to end, output folder, processes left)``."""
    import os
    import time

    out = tmp_path / f"out_{after_s}"
    p = subprocess.Popen([sys.executable, "-c", _SCRIPT, "run", str(SAMPLE), "-o", str(out),
                          "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    time.sleep(after_s)
    t = time.perf_counter()
    if group:
        os.killpg(p.pid, sig)
    else:
        p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=60)
    finally:
        seconds = time.perf_counter() - t
        left = True
        for _ in range(100):   # the resource tracker ends once every holder of its pipe has
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                left = False
                break
            time.sleep(0.1)
        if left:
            os.killpg(p.pid, 9)
    return p.returncode, err, seconds, out, left


# the README job: starting (fork server importing), drift, isolation, spine jobs
@pytest.mark.parametrize("after_s", [0.4, 1.5, 4.0])
def test_sigterm_stops_a_run_at_once_and_leaves_nothing(tmp_path, after_s):
    """A job scheduler's SIGTERM at any point of `run`: one line, exit 143, within
    seconds, no output folder, no process left. (Unwinding from the signal, as Ctrl-C
    does, printed tracebacks, crashed or hung at some of these points.)"""
    import signal

    code, err, seconds, out, left = _stop_run(tmp_path, after_s, signal.SIGTERM, group=False)
    assert code == 143, err
    assert err.strip().splitlines() == ["smlmspine: terminated"], err
    assert seconds < 20.0
    assert not out.exists() and not left


@pytest.mark.parametrize("after_s", [0.4, 3.0])
def test_ctrl_c_in_a_terminal_stops_a_run_at_once_and_leaves_nothing(tmp_path, after_s):
    """Ctrl-C reaches every process of the command (the fork server still importing,
    the workers): one line, exit 130, no traceback of any process."""
    import signal

    code, err, seconds, out, left = _stop_run(tmp_path, after_s, signal.SIGINT, group=True)
    assert code == 130, err
    assert err.strip().splitlines() == ["smlmspine: interrupted"], err
    assert seconds < 20.0
    assert not out.exists() and not left


def test_fork_server_module_does_nothing_elsewhere():
    """Imported by anything but the fork server's start, smlmspine._forkserver leaves
    SIGINT as it was."""
    code = ("import signal; before = signal.getsignal(signal.SIGINT); "
            "import smlmspine._forkserver; print(signal.getsignal(signal.SIGINT) is before)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "True", res


@pytest.mark.parametrize("start", ["default", "ignored"])
def test_a_signal_ignored_at_start_stays_ignored(start):
    """Started with SIGINT ignored (a shell script's background job), the console script
    leaves it ignored; started normally, Ctrl-C and SIGTERM get its handlers."""
    code = textwrap.dedent(f"""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN if "{start}" == "ignored"
                      else signal.default_int_handler)
        import smlmspine.cli._main as m
        def main():
            print(signal.getsignal(signal.SIGINT) is m._on_sigint,
                  signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
                  signal.getsignal(signal.SIGTERM) is m._on_sigterm)
            return 0
        m.main = main
        m.console_main()
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    want = "False True True" if start == "ignored" else "True False True"
    assert res.stdout.strip() == want


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
