"""smlmspine._profile: step timers, their sums and the --profile tables."""

from __future__ import annotations

import time

import numpy as np
import pytest

from smlmspine._profile import (StepTimes, format_profile, format_run_profile, peak_rss_mb,
                                step)


def test_step_records_nested_names_and_time():
    times = StepTimes()
    with times.recording():
        with step("outer"):
            time.sleep(0.02)
            with step("inner"):
                time.sleep(0.03)
        with step("outer"):
            pass
    assert times.calls == {"outer/inner": 1, "outer": 2}
    assert times.seconds["outer/inner"] >= 0.03
    assert times.seconds["outer"] >= times.seconds["outer/inner"] + 0.02
    assert times.max_seconds["outer"] <= times.seconds["outer"]
    assert times.total() == pytest.approx(times.seconds["outer"])


def test_step_without_recording_records_nothing():
    times = StepTimes()
    with step("free"):
        pass
    with times.recording():
        pass
    assert times.calls == {}


def test_step_records_when_the_block_raises():
    times = StepTimes()
    with times.recording(), pytest.raises(ValueError, match="boom"):
        with step("fails"):
            raise ValueError("boom")
    assert times.calls == {"fails": 1}
    with times.recording(), step("next"):   # the stack of open steps was unwound
        pass
    assert "next" in times.calls


def test_merge_and_round_trip():
    a, b = StepTimes(), StepTimes()
    a.add("x", 1.0)
    a.add("x/y", 0.5)
    b.add("x", 3.0)
    m = StepTimes.merged([a, b])
    assert m.seconds == {"x": 4.0, "x/y": 0.5}
    assert m.calls == {"x": 2, "x/y": 1}
    assert m.max_seconds["x"] == 3.0
    back = StepTimes.from_dict(m.to_dict())
    assert back.seconds == m.seconds and back.calls == m.calls


def test_format_profile_shares_of_top_level_steps():
    steps = {"a": {"seconds": 6.0, "calls": 3}, "a/b": {"seconds": 2.0, "calls": 3},
             "c": {"seconds": 2.0, "calls": 1}}
    lines = format_profile(steps, wall_seconds=5.0).splitlines()
    assert lines[1].split()[:3] == ["a", "6.000", "75.0"]
    assert lines[2].startswith("  b") and "25.0 %" in lines[2]
    assert lines[-2].split()[-2:] == ["100.0", "%"]
    assert lines[-1].split() == ["wall", "5.000"]


def test_format_run_profile_lists_steps_and_slowest_spines():
    prof = {"wall_seconds": 3.0, "jobs_wall_seconds": 2.0, "workers": 2,
            "steps": {"spine": {"seconds": 4.0, "calls": 2}},
            "spine_seconds": {1: 1.0, 2: 3.0}, "spine_points": {1: 10, 2: 30},
            "peak_rss_mb": {"main": 100.0, "jobs": 80.0}}
    text = format_run_profile({"mesh": {"seconds": 3.0}}, prof, slowest=1)
    assert "2 worker process(es)" in text
    assert "slowest spines: 2 (3.00 s, 30 pts)" in text
    assert "1 (1.00 s" not in text


def test_peak_rss_sees_an_allocation():
    before = peak_rss_mb(children=False)
    big = np.ones(40_000_000)    # 320 MB, touched
    after = peak_rss_mb(children=False)
    assert big[-1] == 1.0
    assert after >= before and after > 300.0


@pytest.mark.parametrize("command", ["run", "mesh"])
def test_profile_option(command, capsys):
    from smlmspine.cli import main

    assert main([command, "--help"]) == 0
    assert "--profile" in capsys.readouterr().out


def test_format_run_profile_untimed_and_skipped_stages():
    text = format_run_profile({"read": {"n_localizations": 5},
                               "drift": {"skipped": "no frame column"},
                               "morphology": {"seconds": None, "note": "with the mesh stage"},
                               "mesh": {"seconds": 2.0, "peak_rss_mb": 50.0}})
    rows = {ln.split()[0]: ln.split()[1:] for ln in text.splitlines()[1:]}
    assert rows["read"] == ["-"]
    assert rows["drift"] == ["skipped"]
    assert rows["morphology"] == ["-"]
    assert rows["mesh"][:2] == ["2.000", "100.0"]


def test_merge_profiles_sums_steps_and_keeps_peaks():
    from smlmspine._profile import merge_profiles

    def part(k, s, rss):
        return {"wall_seconds": s, "jobs_wall_seconds": s / 2, "workers": 2,
                "steps": {"spine": {"seconds": s, "calls": 1, "max_seconds": s}},
                "spine_seconds": {k: s}, "spine_points": {k: 10 * k},
                "peak_rss_mb": {"main": rss, "jobs": None}}

    m = merge_profiles([part(1, 2.0, 300.0), part(2, 5.0, 200.0)])
    assert m["steps"]["spine"] == {"seconds": 7.0, "calls": 2, "max_seconds": 5.0}
    assert m["spine_seconds"] == {1: 2.0, 2: 5.0}
    assert m["peak_rss_mb"] == {"main": 300.0}
    assert m["wall_seconds"] == 7.0 and m["parts"] == 2
    assert merge_profiles([None]) is None
