"""``smlmspine batch``: many files through the pipeline on Dask."""

from __future__ import annotations

from .._labels import LABELS
from .._validate import cli_type, integer
from ._common import POSITIVE, POSITIVE_INT, add_input_options
from ._pipeline import effective_config


def register(sub) -> None:
    p = sub.add_parser(
        "batch", help="many files through `run` on Dask: resumable, failure-isolated",
        description="Run the pipeline of `smlmspine run` on every file of a glob or a "
                    "manifest table (CSV/TSV/Parquet with a 'path' column and metadata "
                    "columns), one Dask task per file, into OUTDIR/<file stem>/. Writes "
                    "OUTDIR/spines.parquet (every spine, with the manifest's columns and "
                    "source), localizations_summary.parquet (one row per file), failures.csv, "
                    "batch.json and report.html. A file already done with the same input "
                    "checksum and parameters is skipped (--force re-runs it); a failing file "
                    "never stops the others.",
        epilog="Exit status: 0 all files done, 1 some failed (count on stderr, details in "
               "OUTDIR/failures.csv), 2 a user error before anything ran. Parameters: "
               "--config FILE (TOML; `smlmspine run --print-config` prints every key), "
               "overridden by the options given. See docs/batch.md.")
    add_input_options(p, name="INPUTS")
    for action in p._actions:
        if action.dest == "inputs":
            action.help = ("a glob ('data/**/*.csv'; quote it) or a manifest table "
                           "(.csv/.tsv/.parquet) with a 'path' column")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="batch output folder")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML configuration file")
    p.add_argument("--scheduler", dest="batch_scheduler", default=None, metavar="ADDRESS",
                   help="an existing Dask scheduler (tcp://host:8786); default: a local "
                        "cluster of processes")
    p.add_argument("--workers", dest="batch_workers", type=POSITIVE_INT, default=None,
                   metavar="N", help="worker processes of the local cluster (default: one "
                                     "per core); ignored with --scheduler")
    p.add_argument("--retries", dest="batch_retries",
                   type=cli_type(integer, minimum=0), default=None, metavar="K",
                   help="times a file is re-run when its worker dies (default 2)")
    p.add_argument("--force", action="store_true", help="re-run files already done")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--label", choices=LABELS, default=None,
                   help="membrane probe (noisy shell) or filling label (default membrane)")
    p.add_argument("--drift", choices=["aim", "rcc", "fiducial", "none"], default=None,
                   help="drift estimation method (default aim; none skips it)")
    p.add_argument("--segment-frames", type=POSITIVE_INT, default=None,
                   help="drift segment length in frames")
    p.add_argument("--no-merge", action="store_true", default=None,
                   help="do not merge blinks / average traces")
    p.add_argument("--method", choices=["auto", "alpha", "shell", "poisson"], default=None,
                   help="envelope reconstruction (default auto)")
    p.add_argument("--alpha-nm", default=None, help="alpha radius in nm, or auto (default auto)")
    p.add_argument("--mesh-format", choices=["ply", "obj", "stl", "glb"], default=None,
                   help="mesh file format (default ply)")
    p.add_argument("--step-nm", type=POSITIVE, default=None,
                   help="cross-section spacing (nm; default 10)")
    p.add_argument("--no-neck-surface", action="store_true", default=None,
                   help="keep the shell surface of membrane necks")
    from ._pipeline import add_chunk_option

    add_chunk_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_run, workers=None, keep_invalid=None)


def _run(args) -> int:
    import sys

    from .._batch import batch
    from .._outputs import check_output_folder

    config = effective_config(args, sections=("read", "run", "batch"))
    check_output_folder(args.output, option="-o", parents=True)
    res = batch(args.inputs, args.output, config=config, force=args.force,
                progress=not args.quiet, report=not args.no_report,
                chunk_rows=args.chunk_rows)
    counts = res.record["counts"]
    print(f"{res.record['n_files']} files: {counts['done']} done, {counts['skipped']} skipped "
          f"(already done), {counts['failed']} failed; {res.spines.num_rows} spines in "
          f"{args.output}/spines.parquet")
    if res.n_failed:
        print(f"smlmspine batch: {res.n_failed} of {res.record['n_files']} files failed; see "
              f"{args.output}/failures.csv", file=sys.stderr)
        return 1
    return 0
