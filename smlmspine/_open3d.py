"""Open3D imported without its browser viewer, for the envelope stage's worker processes.

``import open3d`` also imports ``open3d.visualization.draw_plotly``, which imports plotly
and dash: 0.32 s of the 0.67 s the import takes (Open3D 0.19, this machine), paid by the
fork server of the worker pool before any spine can start. The workers use Open3D's
geometry (distances, self-intersections), never its plotly viewer, so the fork server
imports this module instead (:data:`smlmspine.envelope._export.WORKER_MODULES`): it
puts a placeholder for ``draw_plotly`` in ``sys.modules`` before importing Open3D. Any
name taken from the placeholder is a function that raises ImportError saying why. Only
the fork server and the workers forked from it import this module; everywhere else
Open3D is imported as it comes.
"""

from __future__ import annotations

import sys
import types

__all__ = ["open3d", "VIEWER"]

#: The Open3D module replaced by a placeholder.
VIEWER = "open3d.visualization.draw_plotly"


def _absent(*args, **kwargs):
    raise ImportError(f"{VIEWER} (plotly/dash) is not loaded in smlmspine's worker "
                      "processes; use Open3D's viewer in a process of your own")


def _placeholder(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return _absent


def _import():
    if "open3d" not in sys.modules and VIEWER not in sys.modules:
        stub = types.ModuleType(VIEWER, "placeholder: smlmspine._open3d")
        stub.__getattr__ = _placeholder
        sys.modules[VIEWER] = stub
    import open3d

    return open3d


open3d = _import()
