"""Peak memory and wall time of read -> drift -> merge on one large Parquet file.

Makes the test file by streaming: one simulated dendrite (membrane label, 4 spines on 4 um
of shaft, 100 nm drift, ``--base`` localizations over 20 000 frames) is written again
and again, row group by row group, with its frames shifted by 20 000 per copy (every
other copy played backwards in time, so that the drift is continuous), until the file
holds ``--rows`` localizations. At no point are more than one copy's rows in memory.

Then each path runs in its own process under ``/usr/bin/time -v`` (peak resident set
size, wall time; the load average is printed with every figure):

- ``memory``: what ``smlmspine run`` did before the large-file path: read the whole
  file, :func:`smlmspine.drift.correct`, :func:`smlmspine.merge.merge_blinks`;
- ``chunked``: :func:`smlmspine.pipeline.reduce_large` (read -> drift -> merge in frame windows,
  written to Parquet).

Examples::

    python benchmarks/bench_large.py --rows 1e7 --paths memory,chunked
    python benchmarks/bench_large.py --rows 1e8 --paths chunked --dir /tmp/h1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

_FRAMES = 20_000


def make_file(path: Path, rows: int, *, base: int = 1_000_000, seed: int = 100,
              row_group_rows: int = 1_000_000) -> dict:
    """Write ``rows`` localizations to ``path`` (Parquet) by repeating one simulation.

    Returns a dict with the file's row count, row groups, size and the base simulation's
    row count.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smlmspine import simulate

    geometry = simulate.Geometry(n_spines=4, shaft_length_nm=4000.0)
    default = simulate.Labeling().labeling_density_per_um2
    # the default density gives ~2.8e4 localizations with this geometry (a volume label
    # this dense fills the dendrite evenly: AIM then finds no structure to match)
    labeling = simulate.Labeling(label="membrane",
                                 labeling_density_per_um2=default * base / 2.8e4)
    sim = simulate.dendrite(geometry=geometry, labeling=labeling,
                            acquisition=simulate.Acquisition(n_frames=_FRAMES),
                            drift=simulate.SimulatedDrift(drift_nm=100.0), rng=seed)
    t = sim.localizations
    frame = t.column("frame").to_numpy()
    n_base = t.num_rows
    backwards = t.take(pa.array(np.argsort(-frame, kind="stable")))
    tmp = path.with_name("." + path.name + ".partial")
    written = 0
    copy = 0
    with pq.ParquetWriter(tmp, t.schema, compression="zstd") as writer:
        while written < rows:
            src = t if copy % 2 == 0 else backwards
            f = src.column("frame").to_numpy()
            f = (f if copy % 2 == 0 else _FRAMES - 1 - f) + copy * _FRAMES
            part = src.set_column(src.schema.get_field_index("frame"),
                                  src.schema.field("frame"), pa.array(f))
            part = part.slice(0, min(part.num_rows, rows - written))
            writer.write_table(part, row_group_size=row_group_rows)
            written += part.num_rows
            copy += 1
    os.replace(tmp, path)
    meta = pq.ParquetFile(path).metadata
    return {"rows": meta.num_rows, "row_groups": meta.num_row_groups,
            "bytes": path.stat().st_size, "base_rows": n_base, "copies": copy}


_MEMORY = """
import sys, time
from smlmspine.io import read
from smlmspine.drift import correct
from smlmspine.merge import merge_blinks
t0 = time.perf_counter()
t = read(sys.argv[1])
t1 = time.perf_counter()
t = correct(t, method="aim").table
t2 = time.perf_counter()
m = merge_blinks(t)
t3 = time.perf_counter()
print("RESULT", t.num_rows, m.num_rows, round(t1 - t0, 1), round(t2 - t1, 1), round(t3 - t2, 1))
"""

_CHUNKED = """
import sys, time
from smlmspine.pipeline import reduce_large
t0 = time.perf_counter()
r = reduce_large(sys.argv[1], sys.argv[2], drift="aim", chunk_rows=int(sys.argv[3]))
s = r.stages
print("RESULT", s["read"]["n_localizations"], s["merge"]["n_after"],
      round(s["drift"]["seconds"], 1), round(s["merge"]["seconds"], 1),
      round(time.perf_counter() - t0, 1))
"""


def measure(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter under ``/usr/bin/time -v``."""
    load0 = os.getloadavg()
    t = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code, *args],
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    load1 = os.getloadavg()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    return {"ok": proc.returncode == 0, "returncode": proc.returncode,
            "peak_rss_gb": int(m.group(1)) / 1e6 if m else None, "wall_s": round(wall, 1),
            "result": result[0].split()[1:] if result else None,
            "load_before": [round(v, 2) for v in load0], "load_after": [round(v, 2) for v in load1],
            "stderr_tail": proc.stderr.strip().splitlines()[-25:] if proc.returncode else []}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e7, help="localizations in the file")
    ap.add_argument("--base", type=float, default=1e6, help="localizations of the repeated simulation")
    ap.add_argument("--chunk-rows", type=float, default=2e6, help="rows per frame window")
    ap.add_argument("--paths", default="memory,chunked", help="memory, chunked (comma-separated)")
    ap.add_argument("--dir", default="/tmp/bench_large", help="folder for the file and outputs")
    ap.add_argument("--keep", action="store_true", help="keep the file and outputs")
    ap.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = int(args.rows)
    path = folder / f"large_{rows:.0e}.parquet".replace("+", "")
    figures: dict = {"rows": rows}
    t = time.perf_counter()
    if not path.exists():
        figures["file"] = make_file(path, rows, base=int(args.base))
    else:
        import pyarrow.parquet as pq

        figures["file"] = {"rows": pq.ParquetFile(path).metadata.num_rows,
                           "bytes": path.stat().st_size, "reused": True}
    print(f"file {path}: {figures['file']} ({time.perf_counter() - t:.0f} s)", flush=True)
    out = folder / "merged.parquet"
    for name in args.paths.split(","):
        if name == "memory":
            r = measure(_MEMORY, str(path))
            what = "read, drift, merge (whole table in memory)"
        elif name == "chunked":
            r = measure(_CHUNKED, str(path), str(out), str(int(args.chunk_rows)))
            what = f"smlmspine.pipeline.reduce_large (chunk_rows {int(args.chunk_rows)})"
        else:
            ap.error(f"unknown path {name!r}")
        figures[name] = r
        print(f"{name:8s} {what}: peak RSS {r['peak_rss_gb']} GB, wall {r['wall_s']} s, "
              f"result {r['result']}, load {r['load_before']} -> {r['load_after']}"
              + ("" if r["ok"] else f"  FAILED rc={r['returncode']}: {r['stderr_tail']}"),
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if not args.keep:
        for p in (path, out):
            if p.exists():
                p.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
