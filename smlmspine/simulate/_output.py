"""Writing a simulation: the localizations plus a ``<stem>.truth/`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..io import atomic_output
from ..schema import jsonable

__all__ = ["write_simulation", "truth_folder", "write_ply"]


def truth_folder(path) -> Path:
    """``OUT_stem.truth`` next to the output file ``OUT``.

    Examples
    --------
    >>> truth_folder("data/run1.parquet").as_posix()
    'data/run1.truth'
    """
    path = Path(path)
    return path.with_name(path.stem + ".truth")


def write_simulation(sim, path, *, format: str | None = None) -> dict:
    """Write a simulation result: localizations to ``path``, truth to ``<stem>.truth/``.

    The localization file's format comes from ``format`` or the extension (any
    :func:`smlmspine.io.write` writer); a MINFLUX simulation written to ``.npy``,
    ``.mat`` or ``.json`` uses the Abberior export layout. The truth folder holds
    Parquet tables (see ``data_schemas/truth_*.json``), PLY meshes (``mesh.ply`` for
    the whole fragment, ``spine_<id>.ply`` with ``comment spine_id <id>`` in the
    header) and ``parameters.json``. The same simulation gives byte-identical files.

    Returns
    -------
    dict
        ``{"localizations": Path, "truth": Path, "files": [Path, ...]}``.
    """
    from ..io import write
    from ._dendrite import DendriteSimulation
    from ._minflux import MinfluxSimulation

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FormatError(f"output folder {str(parent)!r} does not exist", path=path)
    folder = truth_folder(path)
    folder.mkdir(exist_ok=True)
    files = []
    if isinstance(sim, DendriteSimulation):
        write(sim.localizations, path, format=format)
        tables = {"localizations": sim.truth, "emitters": sim.emitters, "spines": sim.spines,
                  "drift": sim.drift}
        for name, table in tables.items():
            files.append(_parquet(table, folder / f"{name}.parquet"))
        files.append(write_ply(sim.mesh, folder / "mesh.ply",
                               comments=["smlmspine simulate: whole fragment", "spine_id -1"]))
        for sid, mesh in sorted(sim.spine_meshes.items()):
            files.append(write_ply(mesh, folder / f"spine_{sid}.ply",
                                   comments=["smlmspine simulate: spine cut at its base plane",
                                             f"spine_id {sid}"]))
        summary = sim.to_dict()
    elif isinstance(sim, MinfluxSimulation):
        if format is None and path.suffix.lower() in (".npy", ".mat", ".json"):
            from ..io.minflux import write_abberior_npy

            write_abberior_npy(sim.localizations, path, ndim=sim.ndim,
                               n_iterations=sim.n_iterations)
        else:
            write(sim.localizations, path, format=format)
        for name, table in {"localizations": sim.truth, "emitters": sim.emitters,
                            "drift": sim.drift}.items():
            files.append(_parquet(table, folder / f"{name}.parquet"))
        summary = sim.to_dict()
    elif type(sim).__name__ == "SynapseSimulation":
        locs = sim.localizations()
        write(locs if locs.num_rows else sim.objects(), path, format=format)
        for name in ("pre_objects", "post_objects", "pre_truth", "post_truth", "pairs"):
            files.append(_parquet(getattr(sim, name), folder / f"{name}.parquet"))
        summary = sim.to_dict()
    else:
        raise ParameterError(f"cannot write a {type(sim).__name__}; expected a simulation result")
    files.append(_text(json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n",
                       folder / "parameters.json"))
    return {"localizations": path, "truth": folder, "files": files}


def _parquet(table: pa.Table, path: Path) -> Path:
    import pyarrow.parquet as pq

    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _text(text: str, path: Path) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_ply(mesh, path, *, comments=()) -> Path:
    """Binary little-endian PLY (double vertices, int faces) with header comments.

    Examples
    --------
    >>> import tempfile, pathlib, trimesh
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "box.ply"
    >>> _ = write_ply(trimesh.creation.box(), p, comments=["spine_id 3"])
    >>> b"comment spine_id 3" in p.read_bytes()[:200], trimesh.load(p).is_watertight
    (True, True)
    """
    path = Path(path)
    v = np.ascontiguousarray(mesh.vertices, dtype="<f8")
    f = np.asarray(mesh.faces, dtype="<i4")
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header += [f"element vertex {len(v)}", "property double x", "property double y",
               "property double z", f"element face {len(f)}",
               "property list uchar int vertex_indices", "end_header"]
    faces = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"] = 3
    faces["i"] = f
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            fh.write(v.tobytes())
            fh.write(faces.tobytes())
    return path
