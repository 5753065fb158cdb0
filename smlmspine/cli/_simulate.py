"""``smlmspine simulate dendrite|minflux|synapses OUT``: ground-truth data sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .._labels import LABELS
from .._validate import check_count, cli_type, in_range, integer
from ..errors import FormatError, ParameterError
from ._common import NON_NEGATIVE_INT, POSITIVE_INT, Outputs, print_json, table_output

#: Largest length a simulator option takes, nm (1 m, the readers' coordinate limit).
MAX_NM = 1e9
#: ``type=`` of the simulator's options (the checks of smlmspine._validate).
POSITIVE_NM = cli_type(in_range, low=0, high=MAX_NM, low_open=True, unit="nm")
NON_NEGATIVE_NM = cli_type(in_range, low=0, high=MAX_NM, unit="nm")
#: densities, rates, mean counts (what they imply is checked against the memory budget)
RATE = cli_type(in_range, low=0, high=1e9)
AT_LEAST_ONE = cli_type(in_range, low=1, high=1e9)
FRACTION = cli_type(in_range, low=0, high=1)
HALF_OPEN_FRACTION = cli_type(in_range, low=0, high=1, high_open=True)
FACTOR = cli_type(in_range, low=0, high=1e3, low_open=True)
CURVATURE = cli_type(in_range, low=-1e3, high=1e3, unit="1/um")
TIME_S = cli_type(in_range, low=0, high=1e9, low_open=True, unit="s")
#: a decimation target: at least a tetrahedron's 4 faces
MAX_FACES = cli_type(integer, minimum=4)
#: Abberior export layouts of ``simulate minflux`` (the extension picks them).
_MINFLUX_EXPORTS = (".npy", ".mat", ".json")

_TRUTH_HELP = ("The truth goes to OUT_stem.truth/ (Parquet tables, PLY meshes, parameters.json); "
               "the same --seed gives identical files.")


def register(sub) -> None:
    p = sub.add_parser("simulate", help="simulate localizations with ground truth",
                       description="Simulate SMLM data with ground truth. " + _TRUTH_HELP)
    ss = p.add_subparsers(dest="simulate_command", metavar="KIND")

    d = ss.add_parser("dendrite", help="3D STORM of a dendrite with spines (or of a mesh)",
                      description="3D STORM localizations of a dendrite fragment with spines "
                                  "(or of the surface in --mesh): labeling, blinking, precision "
                                  "from photons, background, drift. OUT's extension picks the "
                                  "format (.parquet, .csv, ...). " + _TRUTH_HELP)
    _common(d)
    d.add_argument("--n-spines", type=NON_NEGATIVE_INT, default=None, help="number of spines (default: density x length)")
    d.add_argument("--spine-density-per-um", type=RATE, default=1.5, help="spines per um (default 1.5)")
    d.add_argument("--shaft-length-nm", type=POSITIVE_NM, default=10000.0, help="default 10000")
    d.add_argument("--shaft-radius-nm", type=POSITIVE_NM, default=400.0, help="default 400")
    d.add_argument("--curvature-per-um", type=CURVATURE, default=0.0, help="shaft curvature 1/um (default 0)")
    d.add_argument("--classes", default="thin,mushroom,stubby,filopodium",
                   help="comma-separated spine classes to draw from")
    d.add_argument("--label", choices=LABELS, default="membrane")
    d.add_argument("--labeling-density-per-um2", type=RATE, default=500.0,
                   help="membrane label: fluorophores per um^2 (default 500)")
    d.add_argument("--labeling-density-per-um3", type=RATE, default=3000.0,
                   help="volume label: fluorophores per um^3 (default 3000)")
    d.add_argument("--labeling-efficiency", type=FRACTION, default=0.8, help="default 0.8")
    d.add_argument("--blinks-per-fluorophore", type=AT_LEAST_ONE, default=3.0, help="default 3")
    d.add_argument("--precision-nm", type=POSITIVE_NM, default=None,
                   help="median lateral precision, nm (default: from photons, ~12 nm)")
    d.add_argument("--axial-factor", type=FACTOR, default=2.5, help="axial / lateral precision (default 2.5)")
    d.add_argument("--drift-nm", type=NON_NEGATIVE_NM, default=150.0, help="largest lateral drift, nm (default 150; 0 = none)")
    d.add_argument("--drift-table", default=None, metavar="FILE",
                   help="drift to add: Parquet/CSV with frame, dx_nm, dy_nm[, dz_nm]")
    d.add_argument("--n-frames", type=POSITIVE_INT, default=20000, help="default 20000")
    d.add_argument("--background-rate-per-frame", type=RATE, default=0.1, help="default 0.1")
    d.add_argument("--n-fiducials", type=NON_NEGATIVE_INT, default=0, help="fiducial beads (default 0)")
    d.add_argument("--mesh", default=None, metavar="FILE",
                   help="label this surface (PLY/OBJ/OFF/STL, nm) instead of a generated dendrite")
    d.add_argument("--spine-mesh", action="append", default=[], metavar="FILE",
                   help="with --mesh: a segmented spine mesh (repeat for several); its id is the "
                        "number in the file name (spine_3.ply -> 3), else its position")
    d.add_argument("--mesh-step-nm", type=POSITIVE_NM, default=25.0, help="fragment mesh lattice step (default 25)")
    d.add_argument("--mesh-max-faces", type=MAX_FACES, default=None,
                   help="decimate the fragment mesh to at most this many triangles")
    d.add_argument("--spine-mesh-max-faces", type=MAX_FACES, default=None,
                   help="decimate each spine mesh to at most this many triangles")
    e = d.add_argument_group("EM-like spines (irregular shapes, low-poly truth, spine-only sets)")
    e.add_argument("--layout", choices=("shaft", "spines"), default="shaft",
                   help="spines on a shaft (default), or spine-only: each spine cut flat at its "
                        "base, no shaft, spaced --spine-gap-nm apart, every point labelled")
    e.add_argument("--spine-gap-nm", type=NON_NEGATIVE_NM, default=50.0,
                   help="smallest gap between spines, nm (default 50)")
    e.add_argument("--em-like", action="store_true",
                   help="preset: --irregularity-nm 12 --irregularity-wavelength-nm 400 "
                        "--neck-aspect-max 1.8 --neck-curvature 0.25 --neck-kink-deg 20 "
                        "--neck-minima 2 --head-lobes 1 --decimate-vertices 1000 (options "
                        "given explicitly override it)")
    e.add_argument("--irregularity-nm", type=NON_NEGATIVE_NM, default=None,
                   help="RMS surface irregularity, nm (default 0)")
    e.add_argument("--irregularity-wavelength-nm", type=POSITIVE_NM, default=None,
                   help="wavelength of the irregularity, nm (default 400)")
    e.add_argument("--neck-aspect-max", type=cli_type(in_range, low=1, high=4), default=None,
                   help="largest aspect ratio of the elliptic neck sections (default 1)")
    e.add_argument("--neck-curvature", type=cli_type(in_range, low=0, high=0.5), default=None,
                   help="largest sideways bend of the neck end / neck length (default 0)")
    e.add_argument("--neck-kink-deg", type=cli_type(in_range, low=0, high=60), default=None,
                   help="largest kink of the neck, degrees (default 0)")
    e.add_argument("--neck-minima", type=cli_type(integer, minimum=0, maximum=5), default=None,
                   help="local minima of the neck diameter along it (default 0)")
    e.add_argument("--head-lobes", type=cli_type(integer, minimum=0, maximum=4), default=None,
                   help="extra lobes on each head (default 0)")
    e.add_argument("--decimate-vertices", type=cli_type(integer, minimum=50), default=None,
                   help="decimate each spine truth mesh to about this many vertices")
    d.set_defaults(func=_dendrite)

    m = ss.add_parser("minflux", help="MINFLUX traces with quality fields",
                      description="MINFLUX traces (track_id, time_s, efo, cfr, dcr, vld). OUT.npy, "
                                  ".mat or .json is written in the Abberior export layout; other "
                                  "extensions use the table writers. " + _TRUTH_HELP)
    _common(m)
    m.add_argument("--n-emitters", type=NON_NEGATIVE_INT, default=100, help="default 100")
    m.add_argument("--ndim", type=int, choices=(2, 3), default=3)
    m.add_argument("--precision-nm", type=POSITIVE_NM, default=3.0, help="median lateral precision (default 3)")
    m.add_argument("--localizations-per-trace", type=AT_LEAST_ONE, default=20.0, help="mean (default 20)")
    m.add_argument("--time-s", type=TIME_S, default=600.0, help="acquisition length (default 600)")
    m.add_argument("--invalid-fraction", type=HALF_OPEN_FRACTION, default=0.1,
                   help="rows with vld=False (default 0.1)")
    m.add_argument("--drift-nm", type=NON_NEGATIVE_NM, default=0.0, help="largest lateral drift (default 0)")
    m.set_defaults(func=_minflux)

    s = ss.add_parser("synapses", help="pre/post synaptic populations with a coupled fraction",
                      description="Pre- and postsynaptic objects (channel 0/1) with a known coupled "
                                  "fraction and coupling distance, with localizations per object. "
                                  + _TRUTH_HELP)
    _common(s)
    s.add_argument("--n-pre", type=NON_NEGATIVE_INT, default=500)
    s.add_argument("--n-post", type=NON_NEGATIVE_INT, default=500)
    s.add_argument("--coupled-fraction", type=FRACTION, default=0.5)
    s.add_argument("--distance-mean-nm", type=NON_NEGATIVE_NM, default=100.0)
    s.add_argument("--distance-sd-nm", type=NON_NEGATIVE_NM, default=30.0)
    s.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    s.add_argument("--locs-per-object", type=RATE, default=10.0,
                   help="mean fluorophores per object (default 10; 0 = write the object centres)")
    s.add_argument("--precision-nm", type=POSITIVE_NM, default=10.0)
    s.set_defaults(func=_synapses)
    p.set_defaults(func=_no_kind)
    p.set_defaults(_parser=p)


def _common(p) -> None:
    p.add_argument("out", metavar="OUT", help="output localization file")
    p.add_argument("--seed", type=NON_NEGATIVE_INT, default=None, help="random seed (same seed, same files)")
    p.add_argument("--format", dest="out_format", default=None, help="output format name")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _no_kind(args) -> int:
    args._parser.print_help()
    return 2


def _done(args, sim, written) -> int:
    summary = {**{k: v for k, v in sim.to_dict().items() if k != "parameters"},
               "out": str(written["localizations"]), "truth": str(written["truth"])}
    if args.json:
        print_json(summary)
    else:
        n = summary.get("n_localizations", "")
        print(f"wrote {n} localizations to {written['localizations']} and the truth to "
              f"{written['truth']}/")
    return 0


def _simulate_and_write(args, simulate, *, exports: tuple[str, ...] = ()):
    """Declare OUT and OUT_stem.truth/ in one output transaction (checked before any work),
    run ``simulate()`` and write; on any failure nothing the command created is left and
    a replaced file or truth folder is restored (smlmspine/_outputs.py)."""
    from ..simulate._output import truth_folder, write_simulation

    out = Path(args.out)
    with Outputs() as outputs:
        if args.out_format is None and out.suffix.lower() in exports:
            outputs.file(out, option="OUT")
        else:
            table_output(outputs, out, option="OUT", format=args.out_format)
        outputs.folder(truth_folder(out), option="OUT's truth folder")
        sim = simulate()
        written = write_simulation(sim, out, format=args.out_format)
    return sim, written


def _option(field: str) -> str:
    """The CLI option of a parameter-group field (for the budget messages)."""
    return "--" + field.replace("_", "-")


def _dendrite(args) -> int:
    from ..simulate import (Acquisition, Geometry, Labeling, Meshing, PhotophysicsModel,
                            SimulatedDrift, dendrite, sample_mesh)
    from ..simulate._settings import check_dendrite_budget

    if args.spine_mesh and not args.mesh:
        raise ParameterError("--spine-mesh needs --mesh (the whole surface to label)")
    drift = _read_drift(args.drift_table) if args.drift_table else None
    groups = dict(
        labeling=Labeling(label=args.label, labeling_density_per_um2=args.labeling_density_per_um2,
                          labeling_density_per_um3=args.labeling_density_per_um3),
        photophysics=PhotophysicsModel(labeling_efficiency=args.labeling_efficiency,
                                       blinks_per_fluorophore=args.blinks_per_fluorophore,
                                       precision_xy_nm=args.precision_nm,
                                       axial_factor=args.axial_factor),
        acquisition=Acquisition(n_frames=args.n_frames,
                                background_rate_per_frame=args.background_rate_per_frame,
                                n_fiducials=args.n_fiducials),
        drift=SimulatedDrift(drift_nm=args.drift_nm, table=drift), rng=args.seed)
    budget = {k: groups[k] for k in ("labeling", "photophysics", "acquisition")}
    if args.mesh:
        spines = {}
        for i, f in enumerate(args.spine_mesh):
            digits = re.findall(r"\d+", Path(f).stem)
            sid = int(digits[-1]) if digits else i
            if sid in spines:
                raise ParameterError(f"two --spine-mesh files give spine id {sid}")
            spines[sid] = Path(f)
        area, volume = _mesh_size(Path(args.mesh))
        check_dendrite_budget(mesh_area_nm2=area, mesh_volume_nm3=volume, name=_option, **budget)
        run = lambda: sample_mesh(Path(args.mesh), spine_meshes=spines or None,  # noqa: E731
                                  **groups)
    else:
        classes = [c.strip() for c in args.classes.split(",") if c.strip()]
        geometry = Geometry(n_spines=args.n_spines, spine_density_per_um=args.spine_density_per_um,
                            shaft_length_nm=args.shaft_length_nm,
                            shaft_radius_nm=args.shaft_radius_nm,
                            curvature_per_um=args.curvature_per_um, classes=classes,
                            layout=args.layout, spine_gap_nm=args.spine_gap_nm,
                            shape_noise=_shape_noise(args))
        meshing = Meshing(mesh_step_nm=args.mesh_step_nm, mesh_max_faces=args.mesh_max_faces,
                          spine_mesh_max_faces=args.spine_mesh_max_faces)
        check_dendrite_budget(geometry, meshing, name=_option, **budget)
        run = lambda: dendrite(geometry=geometry, meshing=meshing, **groups)  # noqa: E731
    sim, written = _simulate_and_write(args, run)
    return _done(args, sim, written)


def _mesh_size(path: Path) -> tuple[float, float]:
    """Surface area and volume (nm^2, nm^3) of the --mesh file, for the budget check."""
    import trimesh

    if not path.is_file():
        raise FormatError("no such mesh file (--mesh)", path=path)
    try:
        mesh = trimesh.load(path, force="mesh")
        area = float(mesh.area)
        volume = abs(float(mesh.volume)) if mesh.is_watertight else 0.0
    except Exception as exc:  # the simulator reports the details when it loads it
        raise FormatError(f"--mesh cannot be read as a triangle mesh: {type(exc).__name__}: "
                          f"{exc}", path=path) from exc
    return area, volume


_SHAPE_OPTIONS = {"irregularity_nm": "amplitude_nm", "irregularity_wavelength_nm": "wavelength_nm",
                  "neck_aspect_max": "neck_aspect_max", "neck_curvature": "neck_curvature",
                  "neck_kink_deg": "neck_kink_deg", "neck_minima": "n_neck_minima",
                  "head_lobes": "head_lobes", "decimate_vertices": "decimate_vertices"}


def _shape_noise(args):
    """The SpineShapeNoise of the EM-like options (None when none is given)."""
    from dataclasses import replace

    from ..simulate import SpineShapeNoise

    given = {field: getattr(args, opt) for opt, field in _SHAPE_OPTIONS.items()
             if getattr(args, opt) is not None}
    if not given and not args.em_like:
        return None
    base = SpineShapeNoise.em_like() if args.em_like else SpineShapeNoise()
    return replace(base, **given)


def _minflux(args) -> int:
    from ..simulate import (MinfluxQuality, MinfluxSample, MinfluxTiming, SimulatedDrift,
                            minflux_traces)

    # localizations ~ emitters x 1.5 traces x localizations per trace; ~200 B each with
    # their truth row and temporaries
    check_count(args.n_emitters * 1.5 * args.localizations_per_trace, 200.0,
                what=f"--n-emitters {args.n_emitters} x --localizations-per-trace "
                     f"{args.localizations_per_trace:g}: "
                     f"{args.n_emitters * 1.5 * args.localizations_per_trace:.3g} localizations")
    sim, written = _simulate_and_write(args, lambda: minflux_traces(
        sample=MinfluxSample(n_emitters=args.n_emitters), ndim=args.ndim,
        timing=MinfluxTiming(localizations_per_trace=args.localizations_per_trace,
                             time_s=args.time_s),
        quality=MinfluxQuality(precision_nm=args.precision_nm,
                               invalid_fraction=args.invalid_fraction),
        drift=SimulatedDrift(drift_nm=args.drift_nm), rng=args.seed),
        exports=_MINFLUX_EXPORTS)
    return _done(args, sim, written)


def _synapses(args) -> int:
    try:
        from ..simulate.synapses import SynapsePopulations, SynapseRendering, synapses
    except ModuleNotFoundError as exc:  # pragma: no cover - while the module is missing
        raise ParameterError("the synapse simulator is not available in this version") from exc
    n_objects = args.n_pre + args.n_post
    check_count(n_objects * max(args.locs_per_object, 1.0), 200.0,
                what=f"--n-pre {args.n_pre} + --n-post {args.n_post} objects x "
                     f"--locs-per-object {args.locs_per_object:g}")
    sim, written = _simulate_and_write(args, lambda: synapses(
        populations=SynapsePopulations(
            n_pre=args.n_pre, n_post=args.n_post, coupled_fraction=args.coupled_fraction,
            distance_mean_nm=args.distance_mean_nm, distance_sd_nm=args.distance_sd_nm),
        ndim=args.ndim,
        rendering=SynapseRendering(locs_per_object=args.locs_per_object,
                                   precision_nm=args.precision_nm), rng=args.seed))
    summary = {**{k: v for k, v in sim.to_dict().items() if k not in ("parameters", "region")},
               "out": str(written["localizations"]), "truth": str(written["truth"])}
    if args.json:
        print_json(json.loads(json.dumps(summary, default=str)))
    else:
        print(f"wrote {sim.n_coupled} coupled pairs of {args.n_pre} pre / {args.n_post} post objects "
              f"to {written['localizations']} and the truth to {written['truth']}/")
    return 0


def _read_drift(path):
    import pyarrow as pa

    path = Path(path)
    if not path.exists():
        raise FormatError("no such drift table", path=path)
    try:
        if path.suffix.lower() in (".csv", ".tsv", ".txt"):
            import pyarrow.csv as pcsv

            opts = pcsv.ParseOptions(delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            table = pcsv.read_csv(path, parse_options=opts)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise FormatError(f"cannot be read as a drift table (Parquet or CSV with frame, dx_nm, "
                          f"dy_nm[, dz_nm]): {exc}", path=path) from exc
    missing = [c for c in ("frame", "dx_nm", "dy_nm") if c not in table.column_names]
    if missing:
        raise FormatError(f"drift table needs columns frame, dx_nm, dy_nm[, dz_nm]; missing "
                          f"{missing}, found {table.column_names}", path=path)
    return table
