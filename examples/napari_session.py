"""Open a simulated dendrite in napari through the smlmspine plugin.

Simulates a 3D STORM acquisition of a dendrite fragment with spines (seeded), writes the
localizations (Parquet) and the spine meshes (PLY: the simulator's true meshes, or with
``--reconstruct`` the ones ``smlmspine mesh`` reconstructs from the localizations), and
opens both with ``viewer.open(..., plugin="smlmspine")``: a Points layer coloured by z
and one Surface per mesh, in nm.

    python examples/napari_session.py                       # interactive napari window
    python examples/napari_session.py --reconstruct         # meshes by `smlmspine mesh`
    xvfb-run -a python examples/napari_session.py --screenshot out.png   # headless

Needs the napari extra (``pip install smlmspine[napari]`` and a Qt binding, e.g.
``pip install "napari[pyqt5]"``); without napari the script says so and exits (status 0).
docs/figures/napari_dendrite.png was made with
``xvfb-run -a python examples/napari_session.py --reconstruct --screenshot
docs/figures/napari_dendrite.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "smlmspine" / "napari" / "napari.yaml"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None,
                   help="folder for the simulated files (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    p.add_argument("--n-spines", type=int, default=4, help="spines (default 4)")
    p.add_argument("--reconstruct", action="store_true",
                   help="reconstruct the meshes with `smlmspine mesh` (minutes) instead of "
                        "showing the simulator's true meshes")
    p.add_argument("--screenshot", type=Path, default=None,
                   help="save a screenshot of the canvas to this PNG and exit (headless: "
                        "run under xvfb-run)")
    return p.parse_args(argv)


def import_napari():
    """napari and npe2, or None when they are not installed."""
    with warnings.catch_warnings():  # deprecation notices of napari's dependencies
        warnings.simplefilter("ignore")
        try:
            import napari
            import npe2
        except ImportError:
            return None
    pm = npe2.PluginManager.instance()
    try:
        pm.get_manifest("smlmspine")  # installed: found through its entry point
    except KeyError:
        pm.register(npe2.PluginManifest.from_file(MANIFEST))  # running from a checkout
    return napari


def simulate(folder: Path, *, seed: int, n_spines: int, reconstruct: bool) -> tuple[Path, Path]:
    """Write the localizations and a mesh folder; return their paths."""
    from smlmspine.simulate import Geometry, dendrite

    sim = dendrite(geometry=Geometry(n_spines=n_spines, shaft_length_nm=4000), rng=seed)
    locs = folder / "dendrite.parquet"
    written = sim.write(locs)  # + dendrite.truth/ (mesh.ply, spine_<id>.ply, tables)
    print(f"simulated {sim.localizations.num_rows:,} localizations -> {locs}")
    if not reconstruct:
        return locs, written["truth"]
    from smlmspine.cli import main

    meshes = folder / "meshes"
    status = main(["mesh", str(locs), "-o", str(meshes), "--no-progress"])
    if status:
        raise SystemExit(status)
    return locs, meshes


def main(argv=None) -> int:
    args = parse_args(argv)
    napari = import_napari()
    if napari is None:
        print("napari is not installed: pip install 'smlmspine[napari]' \"napari[pyqt5]\" "
              "(nothing to show)", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        locs, meshes = simulate(folder, seed=args.seed, n_spines=args.n_spines,
                                reconstruct=args.reconstruct)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            viewer = napari.Viewer(title="smlmspine: simulated dendrite")
        surfaces = viewer.open(meshes, plugin="smlmspine")
        [points] = viewer.open(locs, plugin="smlmspine")
        for layer in surfaces:
            print(f"  {layer.name}: Surface, {len(layer.vertices):,} vertices, "
                  f"units {layer.units[0]}")
        print(f"  {points.name}: Points, {len(points.data):,} points (z, y, x) in "
              f"{points.units[0]}, features {list(points.features.columns)}")
        points.opacity = 0.8
        viewer.dims.ndisplay = 3
        viewer.reset_view()  # (this also resets the camera's angles)
        viewer.camera.angles = (-10.0, -40.0, 0.0)  # an oblique view onto the shaft
        viewer.camera.zoom *= 1.15
        if args.screenshot is None:
            napari.run()
            return 0
        image = viewer.screenshot(canvas_only=True)
        viewer.close()
    save_png(image, args.screenshot)
    if image[..., :3].max() == 0:
        print("the screenshot is black: OpenGL did not render (run under xvfb-run)",
              file=sys.stderr)
        return 1
    print(f"screenshot -> {args.screenshot} ({args.screenshot.stat().st_size / 1e3:.0f} kB)")
    return 0


def save_png(image, path: Path) -> None:
    """Write an RGBA screenshot as a palette PNG (small enough to commit)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., :3]).quantize(colors=256, dither=Image.Dither.NONE) \
        .save(path, optimize=True)


if __name__ == "__main__":
    sys.exit(main())
