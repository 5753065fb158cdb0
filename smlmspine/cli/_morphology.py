"""``smlmspine measure``, ``classify`` and ``train``."""

from __future__ import annotations

import json
from pathlib import Path

from .._validate import cli_type, finite, integer
from ..errors import ParameterError
from ._common import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, Outputs, results_output, write_results


def register(sub) -> None:
    p = sub.add_parser("measure", help="morphometrics of spine meshes (neck, head, length, ...)",
                       description="Measure closed spine meshes (PLY/OBJ/OFF/STL/GLB files or folders): "
                                   "one row per mesh with a 'source' column. Mesh units must be given "
                                   "(--units) unless the mesh was written by smlmspine (nm).")
    p.add_argument("meshes", nargs="+", metavar="MESH_OR_DIR")
    p.add_argument("-o", "--output", required=True, metavar="FEATURES",
                   help="features table (.parquet or .csv)")
    p.add_argument("--units", choices=["nm", "um"], default=None, help="units of the mesh coordinates")
    p.add_argument("--base", default=None, metavar="X,Y,Z",
                   help="base point (in the mesh units) where the spine meets the shaft")
    p.add_argument("--step-nm", type=POSITIVE, default=10.0, help="cross-section spacing (nm)")
    p.add_argument("--profiles", default=None, metavar="DIR",
                   help="write each spine's cross-section profile (Parquet) here")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write each spine's diameter profile plot (PNG) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_measure)

    p = sub.add_parser("classify", help="spine classes from a features table (rules or a model)",
                       description="Add a spine_class column: NeuronStudio-style rules by default, "
                                   "or a model trained with `smlmspine train`.")
    p.add_argument("features", metavar="FEATURES")
    p.add_argument("-o", "--output", required=True, metavar="OUT")
    p.add_argument("--model", default=None,
                   help="classifier saved by `smlmspine train` (a JSON model file; pickles are refused)")
    p.add_argument("--head-neck-ratio", type=POSITIVE, default=1.1)
    p.add_argument("--thin-aspect-ratio", type=POSITIVE, default=2.5)
    p.add_argument("--mushroom-head-nm", type=POSITIVE, default=350.0)
    p.add_argument("--head-margin-nm", type=NON_NEGATIVE, default=50.0,
                   help="a head must exceed the neck by more than this (noise allowance, nm)")
    p.add_argument("--no-neck-fit", action="store_true",
                   help="classify with the mesh neck even where a point-based neck fit exists")
    p.set_defaults(func=_classify)

    p = sub.add_parser("train", help="train a spine classifier on labelled features",
                       description="Train a random-forest spine classifier; prints the cross-validated "
                                   "accuracy and confusion matrix.")
    p.add_argument("features", metavar="FEATURES")
    p.add_argument("--labels", required=True, metavar="LABELS.csv",
                   help="CSV with columns source or spine_id, and label")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.json",
                   help="model file (JSON data: the forest's parameters, never code)")
    p.add_argument("--folds", type=cli_type(integer, minimum=2), default=5,
                   help="cross-validation folds (>= 2; default 5)")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    p.set_defaults(func=_train)


def _read_table(path: str):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ..errors import FormatError

    p = Path(path)
    if not p.is_file():
        raise FormatError("no such file", path=p)
    try:
        if p.suffix.lower() == ".csv":
            return pacsv.read_csv(p)
        return pq.read_table(p)
    except Exception as exc:
        raise FormatError(f"not a readable features table: {exc}", path=p) from exc


def _measure(args) -> int:
    with Outputs() as outputs:
        args.output = results_output(outputs, args.output, option="-o")
        args.profiles = outputs.folder(args.profiles, option="--profiles", parents=True)
        args.plots = outputs.folder(args.plots, option="--plots", parents=True)
        return _measure_in(args)


def _measure_in(args) -> int:
    from .._outputs import atomic_path
    from ..morphology import measure_meshes, plot_profile, profile_table

    base = None
    if args.base:
        try:
            base = [finite(v, "") for v in args.base.split(",")]
        except ParameterError:
            base = []
        if len(base) != 3:
            raise ParameterError(f"--base must be X,Y,Z (finite numbers), got {args.base!r}")
        if args.units == "um":
            base = [v * 1000.0 for v in base]
    table, meas = measure_meshes(args.meshes, units=args.units, base_point_nm=base,
                                 step_nm=args.step_nm, progress=not args.no_progress)
    write_results(table, Path(args.output))
    for src, sid, m in zip(table.column("source").to_pylist(), table.column("spine_id").to_pylist(), meas):
        stem = Path(src).stem
        if args.profiles:
            write_results(profile_table(m, spine_id=sid), Path(args.profiles) / f"{stem}_profile.parquet")
        if args.plots:
            with atomic_path(Path(args.plots) / f"{stem}_profile.png") as tmp:
                plot_profile(m, tmp, title=stem)
    print(f"measured {table.num_rows} spine mesh(es) -> {args.output}")
    return 0


def _classify(args) -> int:
    with Outputs() as outputs:
        args.output = results_output(outputs, args.output, option="-o")
        return _classify_in(args)


def _classify_in(args) -> int:
    from ..morphology import ClassRules, classify_table, load_model

    table = _read_table(args.features)
    model = load_model(args.model) if args.model else None
    rules = ClassRules(head_neck_ratio=args.head_neck_ratio, thin_aspect_ratio=args.thin_aspect_ratio,
                       mushroom_head_nm=args.mushroom_head_nm, head_margin_nm=args.head_margin_nm,
                       use_neck_fit=not args.no_neck_fit)
    out = classify_table(table, rules=rules, model=model)
    write_results(out, Path(args.output))
    counts = {}
    for c in out.column("spine_class").to_pylist():
        counts[c] = counts.get(c, 0) + 1
    print(f"classified {out.num_rows} spines: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def _train(args) -> int:
    with Outputs() as outputs:
        # any name (a model file is JSON whatever its extension); checked before any work
        args.output = outputs.file(args.output, option="-o")
        return _train_in(args)


def _train_in(args) -> int:
    from ..morphology import save_model, train_classifier

    table = _read_table(args.features)
    labels = _read_table(args.labels)
    if "label" not in labels.column_names:
        raise ParameterError(f"{args.labels}: needs a 'label' column; found {labels.column_names}")
    key = next((k for k in ("source", "spine_id") if k in labels.column_names and k in table.column_names), None)
    if key is None:
        raise ParameterError(f"{args.labels}: needs a 'source' or 'spine_id' column matching the features")
    lab = dict(zip([str(v) for v in labels.column(key).to_pylist()], labels.column("label").to_pylist()))
    keys = [str(v) for v in table.column(key).to_pylist()]
    missing = [k for k in keys if k not in lab]
    if missing:
        raise ParameterError(f"{len(missing)} spine(s) have no label (e.g. {missing[0]!r})")
    model, report = train_classifier(table, [lab[k] for k in keys], n_folds=args.folds, rng=args.seed)
    save_model(model, Path(args.output))
    print(json.dumps(report.to_dict(), indent=2))
    return 0
