"""smlmspine._background: figures drawn by low-priority helper processes are the same
figures; without helpers (or when one fails) the caller draws them itself."""

import os
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from smlmspine import _background
from smlmspine.drift import DriftModel
from smlmspine.drift._plot import render_model
from smlmspine.errors import FormatError


def _model():
    t = np.arange(0, 3000, 100)
    rng = np.random.default_rng(3)
    d = [np.cumsum(rng.normal(0, 2, t.size)) for _ in range(3)]
    s = [np.full(t.size, 1.5) for _ in range(3)]
    return DriftModel("frame", t, *d, *s, method="aim", params={"segment_frames": 100},
                      segment_t=t[::3].astype(float), segment_d_nm=np.c_[d[0], d[1], d[2]][::3],
                      segment_sigma_nm=np.c_[s[0], s[1], s[2]][::3])


@pytest.fixture(autouse=True)
def patient(monkeypatch):
    """An idle-class helper gets no time while the machine is busy (another test run,
    a build): these tests wait for its answer instead of drawing in the caller."""
    monkeypatch.setattr(_background, "WAIT_S", 600.0)


def test_helpers_are_other_processes_at_the_lowest_priority():
    assert not _background.active() and _background.submit(os.getpid) is None
    with _background.helpers(2) as on:
        assert on and _background.active()
        pids = {_background.result(_background.submit(os.getpid)) for _ in range(6)}
        policy, nice = _background.result(_background.submit(_priority))
    assert not _background.active()
    assert os.getpid() not in pids and None not in pids and 1 <= len(pids) <= 2
    # Linux: run only where a core is idle; where the system refuses SCHED_IDLE (a
    # restricted container), the lowest nice value instead
    assert policy == os.SCHED_IDLE or nice == 19


def _priority():
    return os.sched_getscheduler(0), os.nice(0)


def test_one_worker_means_no_helpers():
    with _background.helpers(1) as on:
        assert not on and _background.submit(os.getpid) is None


def test_drift_plot_drawn_by_a_helper_is_the_same_image():
    model = _model()
    here = render_model(model)
    with _background.helpers(2):
        there = _background.result(_background.submit(render_model, model))
    assert there is not None and there == here and here[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_late_helper_is_not_waited_for():
    import time

    t = time.perf_counter()
    with _background.helpers(2):
        slow = _background.submit(time.sleep, 60.0)
        t1 = time.perf_counter()
        assert _background.result(slow, timeout_s=0.2) is None   # the caller does it
        assert time.perf_counter() - t1 < 1.0 and slow.cancelled()
    # nor when the block ends: the helper still sleeping is stopped
    assert time.perf_counter() - t < 15.0 and not _background.active()


def test_result_falls_back_on_a_failed_helper_and_reraises_the_works_errors():
    assert _background.result(None) is None
    broken = Future()
    broken.set_exception(BrokenProcessPool("a helper died"))
    assert _background.result(broken) is None      # the caller draws it itself
    refused = Future()
    refused.set_exception(FormatError("not a drift table"))
    with pytest.raises(FormatError, match="not a drift table"):
        _background.result(refused)


def test_the_pools_semaphores_are_released_on_the_calling_thread(monkeypatch):
    """When the block ends, the pool's queues (named semaphores) are let go of by the
    thread that ends it, not by a garbage collection on some other thread later: the
    console script's quick exit once ended the process while another thread was still
    telling the resource tracker, which then reported a "leaked" semaphore."""
    import threading
    from multiprocessing import resource_tracker, synchronize

    made, released = [], {}
    register, cleanup = resource_tracker.register, synchronize.SemLock._cleanup

    def spy_register(name, rtype):
        made.append(name)
        register(name, rtype)

    def spy_cleanup(name):
        released[name] = threading.current_thread() is threading.main_thread()
        cleanup(name)

    monkeypatch.setattr(resource_tracker, "register", spy_register)
    monkeypatch.setattr(synchronize.SemLock, "_cleanup", staticmethod(spy_cleanup))
    for late in (False, True):   # a helper that answered, and one still working
        made.clear()
        released.clear()
        feeders = {t for t in threading.enumerate() if t.name == "QueueFeederThread"}
        with _background.helpers(2) as on:
            assert on
            slow = _background.submit(time.sleep, 60.0 if late else 0.0)
            assert _background.result(slow, timeout_s=0.2 if late else None) is None
        # the pool's call queue (3 semaphores) and result queue (2), all released
        # already, by this thread; its queue's feeder thread ended
        assert len(made) >= 5 and all(released.get(name) for name in made), (made, released)
        assert {t for t in threading.enumerate() if t.name == "QueueFeederThread"} <= feeders
