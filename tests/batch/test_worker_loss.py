"""A batch survives the loss of a worker: the task of a killed worker process is re-run."""

from __future__ import annotations

import calendar
import json
import logging
import os
import shutil
import signal
import threading
import time

import pytest

from smlmspine import batch
from smlmspine._batch import DONE_RECORD, PARTIAL

from .conftest import CONFIG


@pytest.mark.slow
def test_batch_completes_after_a_worker_is_killed_mid_run(batch_data, tmp_path):
    import dask
    from dask.distributed import Client, LocalCluster

    root, _ = batch_data
    files = []
    for i, name in enumerate(("cell_a", "cell_b", "cell_c", "cell_d")):
        src = root / ("ctrl/cell_a.parquet" if i % 2 == 0 else "ttx/cell_b.parquet")
        dst = tmp_path / "data" / f"{name}.parquet"
        dst.parent.mkdir(exist_ok=True)
        shutil.copyfile(src, dst)
        files.append(dst)
    out = tmp_path / "out"
    with dask.config.set({"distributed.scheduler.allowed-failures": 2}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = Client(cluster)
    try:
        pids = client.run(os.getpid)  # worker address -> process id
        results, errors = [], []

        def work():
            try:
                results.append(batch(files, out, config=CONFIG, client=client,
                                     progress=False, report=False))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        # wait until a file is being written, then kill the worker that runs it
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and thread.is_alive():
            if (out / PARTIAL).is_dir() and any((out / PARTIAL).iterdir()):
                busy = [(addr, keys) for addr, keys in client.processing().items() if keys]
                if busy:
                    victim, (key, *_) = busy[0]
                    lost = str(key).split("-", 1)[1].rsplit("-", 1)[0]  # smlmspine-<folder>-<hex>
            time.sleep(0.05)
        assert victim is not None, "no task started"
        killed_at = time.time()
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=600)
        assert not thread.is_alive() and not errors, errors
        (res,) = results
        assert {f["run_folder"]: f["status"] for f in res.record["files"]} == {
            name: "done" for name in ("cell_a", "cell_b", "cell_c", "cell_d")}
        assert res.n_failed == 0 and res.spines.num_rows == 4
        assert pids[victim] not in client.run(os.getpid).values()  # the worker was replaced
        # the killed worker's file was re-run and finished after the kill
        finished = json.loads((out / lost / DONE_RECORD).read_text())["finished"]
        assert calendar.timegm(time.strptime(finished, "%Y-%m-%dT%H:%M:%SZ")) >= int(killed_at)
        assert not (out / PARTIAL).exists()
    finally:
        client.close()
        cluster.close()
