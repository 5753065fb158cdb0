"""``smlmspine voxelize``, ``label-points`` and ``spine-grids``: meshes to label volumes,
image labels back onto localizations, spine grids for classifiers."""

from __future__ import annotations

import sys
from pathlib import Path

from .._validate import cli_type, finite, integer
from ..errors import ParameterError
from ._common import POSITIVE, POSITIVE_INT, Outputs, add_input_options, read_input, table_output

_INT = cli_type(integer)


def register(sub) -> None:
    p = sub.add_parser(
        "voxelize", help="spine and dendrite meshes as a label volume (OME-TIFF/OME-Zarr)",
        description="Label volume of the meshes of MESH_DIR (spine_<id>.ply, dendrite.ply as "
                    "written by `smlmspine mesh`): 0 background, spine k -> k + 1, the "
                    "dendrite max spine_id + 2; spines win over the dendrite. Inside/outside "
                    "is decided exactly at each voxel centre (docs/voxel_meshes.md).")
    p.add_argument("meshes", metavar="MESH_DIR")
    p.add_argument("-o", "--output", required=True, metavar="LABELS",
                   help="label image: LABELS.ome.tif / .ome.tiff or LABELS.ome.zarr")
    p.add_argument("--voxel-nm", type=POSITIVE, default=None,
                   help="voxel size in nm (required unless --like is given)")
    p.add_argument("--like", default=None, metavar="IMAGE",
                   help="take the grid (shape, origin, voxel size) of this image, e.g. the "
                        "output of `smlmspine render --dims 3`, so that the two line up")
    p.add_argument("--roi-nm", default=None, metavar="X0,Y0,X1,Y1,Z0,Z1",
                   help="region in nm (first and last voxel edges, as for render); default: "
                        "the meshes' bounds plus two voxels")
    p.add_argument("--units", choices=("nm", "um"), default=None,
                   help="units of mesh files that do not declare theirs (smlmspine's do)")
    p.add_argument("--fraction", default=None, metavar="IMAGE",
                   help="also write the partial-volume fraction of each voxel (float32, "
                        ".ome.tif or .ome.zarr)")
    p.add_argument("--supersample", type=cli_type(integer, minimum=1, maximum=16), default=4,
                   help="--fraction: sub-voxels per axis (default 4)")
    p.add_argument("--ome-zarr-version", choices=("0.5", "0.4"), default="0.5",
                   help="OME-Zarr output: NGFF 0.5 on Zarr v3 (default) or 0.4 on Zarr v2")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_voxelize)

    p = sub.add_parser(
        "label-points", help="look a label image up at every localization",
        description="Add a label column to the localizations of IN from LABELS_IMAGE (a "
                    "`smlmspine voxelize` output, a napari Labels layer or a U-Net "
                    "segmentation saved as OME-TIFF/OME-Zarr, or a plain TIFF/.npy with "
                    "--image-voxel-nm), through the image's voxel size and origin. A "
                    "voxelize image gives spine_id directly (label k + 1 -> k); background, "
                    "the dendrite and points outside the image get --outside.")
    add_input_options(p, name="IN")
    p.add_argument("labels", metavar="LABELS_IMAGE")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output localization file (any writable format, by extension)")
    p.add_argument("--column", default="spine_id", help="name of the label column "
                                                        "(default spine_id)")
    p.add_argument("--outside", type=_INT, default=-1,
                   help="value for background and points outside the image (default -1)")
    p.add_argument("--offset", type=_INT, default=None,
                   help="subtracted from every non-zero label (default: 1 for a voxelize "
                        "image, as its metadata says; else 0)")
    p.add_argument("--label", dest="zarr_label", default=None, metavar="NAME",
                   help="OME-Zarr: read labels/NAME instead of the image")
    p.add_argument("--image-voxel-nm", type=POSITIVE, default=None,
                   help="plain TIFF / .npy image: voxel size in nm")
    p.add_argument("--image-origin-nm", default=None, metavar="[Z,]Y,X",
                   help="plain TIFF / .npy image: centre of voxel 0 in nm (default: "
                        "half a voxel)")
    p.add_argument("--quiet", action="store_true", help="no summary line")
    p.set_defaults(func=_label_points)

    p = sub.add_parser(
        "spine-grids", help="each spine as a fixed-size voxel grid and point cloud",
        description="For each spine mesh of MESH_DIR: its canonical frame (base at the "
                    "origin, axis along +z, from MESH_DIR/spines.parquet or the mesh), a "
                    "SIZE^3 grid per channel and a surface point cloud with normals, "
                    "written to OUTDIR/spine_grids.npz or .zarr plus spine_grids.parquet "
                    "(docs/voxel_meshes.md).")
    p.add_argument("meshes", metavar="MESH_DIR")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output folder (created with its parents)")
    p.add_argument("--size", type=cli_type(integer, minimum=4, maximum=512), default=64,
                   help="voxels per axis (default 64)")
    p.add_argument("--points", type=POSITIVE_INT, default=2048,
                   help="surface points per spine (default 2048)")
    p.add_argument("--voxel-nm", type=POSITIVE, default=None,
                   help="fixed pitch in nm (spines that do not fit are cropped and flagged); "
                        "default: each spine's pitch fits its extent")
    p.add_argument("--channels", default="mask", metavar="C[,C...]",
                   help="grid channels from mask, sdf, density (default mask)")
    p.add_argument("--table", dest="in", default=None, metavar="LOCS",
                   help="localization file for the density channel")
    p.add_argument("--units", choices=("nm", "um"), default=None,
                   help="units of mesh files that do not declare theirs")
    p.add_argument("--format", dest="grid_format", choices=("auto", "npz", "zarr"),
                   default="auto", help="array file: npz for small sets (auto, the "
                                        "default: up to 64 MB), else Zarr")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    p.set_defaults(func=_spine_grids)


# -- voxelize ----------------------------------------------------------------------------
def _image_output(outputs: Outputs, path, option: str):
    """Declare an image output (OME-TIFF: a file of the transaction; OME-Zarr: checked,
    written by write_image to a hidden sibling and renamed)."""
    from ..voxel._io import check_image_output, image_format

    if path is None:
        return None
    path = Path(path)
    fmt = image_format(path)
    if fmt not in ("ome-tiff", "ome-zarr"):
        raise ParameterError(f"{option} must end in .ome.tif, .ome.tiff or .ome.zarr, got "
                             f"{path.name!r}")
    if fmt == "ome-tiff":
        return outputs.file(path, option=option)
    return check_image_output(path, option=option)


def _roi(text):
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 6:
        raise ParameterError(f"--roi-nm must be 6 comma-separated numbers in nm "
                             f"(X0,Y0,X1,Y1,Z0,Z1), got {text!r}")
    return [finite(s, "--roi-nm", unit="nm") for s in parts]


def _voxelize(args) -> int:
    if args.voxel_nm is None and args.like is None:
        raise ParameterError("give --voxel-nm or --like IMAGE (the grid to label)")
    roi = _roi(args.roi_nm)
    with Outputs() as outputs:
        out = _image_output(outputs, args.output, "-o")
        frac = _image_output(outputs, args.fraction, "--fraction")
        if frac is not None and Path(frac).resolve() == Path(out).resolve():
            raise ParameterError("--fraction and -o name the same image")
        return _voxelize_in(args, out, frac, roi, outputs)


def _voxelize_in(args, out, frac, roi, outputs) -> int:
    from ..voxel import mesh_fraction, mesh_to_labels, read_image, write_image

    like = None
    if args.like is not None:
        like = read_image(args.like, voxel_nm=args.voxel_nm)
    labels = mesh_to_labels(args.meshes, voxel_nm=None if like is not None else args.voxel_nm,
                            like=like, roi_nm=roi, units=args.units)
    fraction = None
    if frac is not None:
        fraction = mesh_fraction(args.meshes, like=labels, supersample=args.supersample,
                                 units=args.units)
    written = []
    try:
        write_image(labels, out, version=args.ome_zarr_version)
        written.append(Path(out))
        if fraction is not None:
            write_image(fraction, frac, version=args.ome_zarr_version)
    except BaseException:
        # an OME-Zarr store is written beside the transaction: remove it on failure
        import shutil

        for p in written:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
        raise
    if not args.quiet:
        conv = labels.metadata["smlmspine.labels"]
        shape = "x".join(str(n) for n in labels.data.shape)
        dend = (f" and the dendrite (label {conv['dendrite_label']})"
                if "dendrite" in conv["inside_test"] else "")
        vox = ",".join(f"{v:g}" for v in labels.voxel_nm)
        also = f" and {frac}" if frac is not None else ""
        print(f"voxelize: {len(conv['spine_ids'])} spine(s){dend} in a {shape} label volume "
              f"(z, y, x; {vox} nm voxels); wrote {out}{also}")
    return 0


# -- label-points --------------------------------------------------------------------------
def _origin(text):
    if text is None:
        return None
    vals = [finite(s, "--image-origin-nm", unit="nm") for s in text.split(",")]
    if len(vals) not in (2, 3):
        raise ParameterError(f"--image-origin-nm must be Y,X or Z,Y,X in nm, got {text!r}")
    return vals


def _label_points(args) -> int:
    origin = _origin(args.image_origin_nm)
    if not args.column or not args.column.strip():
        raise ParameterError("--column must be a non-empty name")
    with Outputs() as outputs:
        out = table_output(outputs, args.output, option="-o")
        return _label_points_in(args, out, origin)


def _label_points_in(args, out, origin) -> int:
    import numpy as np

    from ..io import write
    from ..voxel import labels_to_points, read_image

    labels = read_image(args.labels, voxel_nm=args.image_voxel_nm, origin_nm=origin,
                        label=args.zarr_label)
    table = read_input(args, attr="in")
    result = labels_to_points(table, labels, column=args.column, outside=args.outside,
                              offset=args.offset)
    write(result, out)
    if not args.quiet:
        vals = result.column(args.column).to_numpy()
        hit = vals != args.outside
        n_lab = len(np.unique(vals[hit]))
        print(f"label-points: {int(hit.sum())} of {len(vals)} localizations in {n_lab} "
              f"label(s) of {args.labels}; wrote {out}")
    return 0


# -- spine-grids -----------------------------------------------------------------------------
def _spine_grids(args) -> int:
    channels = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    if "density" in channels and getattr(args, "in") is None:
        raise ParameterError("--channels density needs --table LOCS (a localization file)")
    with Outputs() as outputs:
        outdir = outputs.folder(args.output, option="-o", parents=True)
        return _spine_grids_in(args, outdir, channels)


def _spine_grids_in(args, outdir, channels) -> int:
    import pyarrow.parquet as pq

    from .._validate import memory_budget_bytes
    from ..voxel import spine_grids, write_spine_grids
    from ..voxel._grids import _folder_spines
    from ..voxel._labels import load_meshes

    table = read_input(args, attr="in") if getattr(args, "in") is not None else None
    common = dict(size=args.size, voxel_nm=args.voxel_nm, points=args.points,
                  channels=channels, table=table, units=args.units,
                  progress=not args.quiet)
    meshes, _ = load_meshes(args.meshes, units=args.units)
    # spines at a time within half the memory budget (the rest: temporaries)
    per_spine = len(channels) * args.size ** 3 * 4.0 + args.points * 24.0
    batch = max(1, int((memory_budget_bytes() / 2 - args.size ** 3 * 40.0) // per_spine))
    if len(meshes) <= batch:
        path = write_spine_grids(spine_grids(args.meshes, **common), outdir,
                                 format=args.grid_format)
    else:
        spines = _folder_spines(Path(args.meshes))
        ids = sorted(meshes)
        parts = (spine_grids({k: meshes[k] for k in ids[i:i + batch]}, spines=spines,
                             **common) for i in range(0, len(ids), batch))
        fmt = "zarr" if args.grid_format == "auto" else args.grid_format
        path = write_spine_grids(parts, outdir, format=fmt)
    index = pq.read_table(outdir / "spine_grids.parquet")
    if not args.quiet:
        n_crop = sum(index.column("cropped").to_pylist())
        print(f"spine-grids: {index.num_rows} spine(s), {args.size}^3 voxels x "
              f"{len(channels)} channel(s) ({', '.join(channels)}), {args.points} points; "
              f"{n_crop} cropped; wrote {path} and {outdir / 'spine_grids.parquet'}",
              file=sys.stdout)
    return 0
