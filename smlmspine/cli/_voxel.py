"""``smlmspine render``: a localization file as an OME-TIFF or OME-Zarr image."""

from __future__ import annotations

import sys
from pathlib import Path

from .._validate import finite, non_negative
from ..errors import ParameterError
from ._common import NON_NEGATIVE, POSITIVE, Outputs, add_input_options, read_input


def register(sub) -> None:
    p = sub.add_parser(
        "render", help="render localizations as an OME-TIFF or OME-Zarr image",
        description="Render the localizations of IN as a 2D or 3D image (localizations "
                    "per voxel, float32; histogram, or each localization's Gaussian "
                    "integrated over the voxels) and write it as OME-TIFF (.ome.tif) or "
                    "OME-Zarr (.ome.zarr, rendered block by block in bounded memory) with "
                    "its voxel size and origin (docs/voxel.md).")
    add_input_options(p, name="IN")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image: OUT.ome.tif / OUT.ome.tiff or OUT.ome.zarr")
    p.add_argument("--voxel-nm", type=POSITIVE, required=True,
                   help="voxel (pixel) size in nm")
    p.add_argument("--dims", type=int, choices=(2, 3), default=2,
                   help="2: an x-y image (default); 3: a z-y-x volume")
    p.add_argument("--method", choices=("histogram", "gaussian"), default="histogram",
                   help="count per voxel (default) or each localization's Gaussian "
                        "integrated over the voxels")
    p.add_argument("--sigma-nm", default="precision", metavar="S",
                   help="gaussian: 'precision' (each localization's precision_xy/z, the "
                        "default), one sigma in nm, or SXY,SZ")
    p.add_argument("--min-sigma-nm", type=NON_NEGATIVE, default=0.0,
                   help="gaussian: lower bound of every sigma in nm (default 0)")
    p.add_argument("--roi-nm", default=None, metavar="X0,Y0,X1,Y1[,Z0,Z1]",
                   help="image extent in nm (first and last voxel edges; default: the "
                        "data's bounds); in 2D a z range selects a slab")
    p.add_argument("--by", default=None, metavar="COLUMN",
                   help="one image channel per value of this column (e.g. channel)")
    p.add_argument("--color-by", default=None, metavar="COLUMN",
                   help="an RGB image coloured by this column (e.g. z); rendered in memory")
    p.add_argument("--ome-zarr-version", choices=("0.5", "0.4"), default="0.5",
                   help="OME-Zarr output: NGFF 0.5 on Zarr v3 (default) or 0.4 on Zarr v2")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary line")
    p.set_defaults(func=_render)


def _numbers(text: str, option: str, counts: tuple[int, ...], *, unit: str = "nm"):
    parts = [s for s in text.split(",")]
    if len(parts) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise ParameterError(f"{option} must be {want} comma-separated numbers in {unit}, "
                             f"got {text!r}")
    return [finite(s, option, unit=unit) for s in parts]


def _sigma(text: str):
    if text == "precision":
        return text
    try:
        vals = [non_negative(v, "--sigma-nm", unit="nm") for v in text.split(",")]
    except ParameterError:
        vals = []
    if len(vals) not in (1, 2):
        raise ParameterError(f"--sigma-nm must be 'precision', a sigma in nm or SXY,SZ in "
                             f"nm (numbers >= 0), got {text!r}")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _render(args) -> int:
    from ..voxel._io import check_image_output, image_format

    sigma = _sigma(args.sigma_nm)
    roi = None if args.roi_nm is None else _numbers(args.roi_nm, "--roi-nm", (4, 6))
    out_path = Path(args.output)
    fmt = image_format(out_path)
    if fmt not in ("ome-tiff", "ome-zarr"):
        raise ParameterError(f"-o must end in .ome.tif, .ome.tiff or .ome.zarr, got "
                             f"{out_path.name!r}")
    with Outputs() as outputs:
        if fmt == "ome-tiff":
            out_path = outputs.file(out_path, option="-o")
        else:  # a folder, written to a hidden sibling and renamed when complete
            check_image_output(out_path, option="-o")
        return _render_in(args, out_path, fmt, sigma, roi)


def _render_in(args, out_path: Path, fmt: str, sigma, roi) -> int:
    from ..voxel import render, write_image

    table = read_input(args, attr="in")
    common = dict(voxel_nm=args.voxel_nm, dims=args.dims, method=args.method,
                  sigma_nm=sigma, roi_nm=roi, by=args.by, color_by=args.color_by,
                  min_sigma_nm=args.min_sigma_nm)
    if fmt == "ome-zarr" and args.color_by is None:
        image = render(table, **common, out=out_path, version=args.ome_zarr_version,
                       progress=not args.quiet)
    else:
        image = render(table, **common)
        write_image(image, out_path, version=args.ome_zarr_version)
    if not args.quiet:
        shape = "x".join(str(n) for n in image.data.shape)
        print(f"render: {image.metadata['n_rendered']} of {table.num_rows} localizations "
              f"in a {shape} image ({', '.join(image.axes)}; {args.voxel_nm:g} nm voxels, "
              f"{args.method}); wrote {out_path}", file=sys.stdout)
    return 0
