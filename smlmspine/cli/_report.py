"""``smlmspine report``: the HTML report of a run or batch output folder."""

from __future__ import annotations

from ._common import POSITIVE_INT, Outputs


def register(sub) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML report of a run or batch output folder",
        description="Write OUTDIR/report.html from what `smlmspine run` or `smlmspine batch` "
                    "wrote into OUTDIR: drift trace, rendered overview, spine thumbnails with "
                    "their neck/head numbers, feature distributions by class and condition, "
                    "coupling curves (when a `smlmspine couple` output is in OUTDIR or "
                    "OUTDIR/coupling), failures and parameters. One file: images embedded, "
                    "no network.")
    p.add_argument("outdir", metavar="OUTDIR", help="output folder of smlmspine run or batch")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="report file (default OUTDIR/report.html)")
    p.add_argument("--kind", choices=("auto", "run", "batch"), default="auto",
                   help="what OUTDIR is (default auto: batch.json -> batch, run.json -> run)")
    p.add_argument("--title", default=None, help="page title (default from the folder name)")
    p.add_argument("--max-thumbnails", type=POSITIVE_INT, default=48, metavar="N",
                   help="spines drawn in the gallery (default 48)")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from pathlib import Path

    from ..report import build_report
    from ..report._collect import detect_kind

    outdir = Path(args.outdir)
    detect_kind(outdir, args.kind)  # a folder that is not a run/batch output: before any work
    with Outputs() as outputs:
        path = outputs.file(Path(args.output) if args.output else outdir / "report.html",
                            option="-o")
        text = build_report(outdir, kind=args.kind, title=args.title,
                            max_thumbnails=args.max_thumbnails)
        from .._outputs import atomic_write

        with atomic_write(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
