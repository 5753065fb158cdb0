"""Writing a simulation: the localizations plus a ``<stem>.truth/`` folder.

Each result class writes itself (its ``write`` method, built from the helpers here);
this module knows none of them, so the simulators import it and never the reverse.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError
from ..io import atomic_output
from ..schema import jsonable

__all__ = ["write_simulation", "simulation_writer", "truth_folder", "open_truth_folder",
           "write_truth_tables", "close_truth_folder", "write_ply"]


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

    Calls the result's own ``write`` (:meth:`DendriteSimulation.write`,
    :meth:`MinfluxSimulation.write`, :meth:`SynapseSimulation.write`). The
    localization file's format comes from ``format`` or the extension (any
    :func:`smlmspine.io.write` writer); a MINFLUX simulation written to ``.npy``,
    ``.mat`` or ``.json`` uses the Abberior export layout. The truth folder holds
    Parquet tables (see ``data_schemas/truth_*.json``), PLY meshes (``mesh.ply`` for
    the whole fragment, ``spine_<id>.ply`` with ``comment spine_id <id>`` in the
    header) and ``parameters.json``. The same simulation gives byte-identical files.

    Parameters
    ----------
    sim : DendriteSimulation, MinfluxSimulation or SynapseSimulation
        The result to write.
    path : str or pathlib.Path
        Localization file; its folder must exist.
    format : str, optional
        Writer name (default: from the extension).

    Returns
    -------
    dict
        ``{"localizations": Path, "truth": Path, "files": [Path, ...]}``.

    Raises
    ------
    ParameterError
        ``sim`` is not a simulation result.
    FormatError
        The output folder does not exist.
    """
    write = getattr(type(sim), "write", None)
    if not callable(write) or not getattr(write, "_simulation_writer", False):
        raise ParameterError(f"cannot write a {type(sim).__name__}; expected a simulation result")
    return sim.write(path, format=format)


def simulation_writer(method):
    """Mark a result class's ``write`` method as one :func:`write_simulation` may call."""
    method._simulation_writer = True
    return method


def open_truth_folder(path) -> tuple[Path, Path]:
    """``(path, truth folder)``: refuses a missing output folder, creates the truth folder."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FormatError(f"output folder {str(parent)!r} does not exist", path=path)
    folder = truth_folder(path)
    folder.mkdir(exist_ok=True)
    return path, folder


def write_truth_tables(tables: dict[str, pa.Table], folder: Path) -> list[Path]:
    """Each table to ``folder/<name>.parquet``, in the order given."""
    return [_parquet(table, folder / f"{name}.parquet") for name, table in tables.items()]


def close_truth_folder(summary: dict, path: Path, folder: Path, files: list[Path]) -> dict:
    """Write ``parameters.json`` (the JSON-able ``summary``) and return the file listing."""
    files = [*files, _text(json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n",
                           folder / "parameters.json")]
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
