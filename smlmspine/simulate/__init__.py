"""Ground-truth simulations: dendrites with spines, blinking, drift, MINFLUX, synapses.

Every generator takes keyword-only parameters with units in their names and an
``rng`` seed (the STORM simulators take them in frozen parameter groups:
:class:`Geometry`, :class:`Meshing`, :class:`Labeling`, :class:`PhotophysicsModel`,
:class:`Acquisition`, :class:`SimulatedDrift`), and returns a frozen result holding the
localization table (canonical columns only), the ground-truth tables (described in
``data_schemas/truth_*.json``) and, for geometry, the true meshes.

- :func:`dendrite`: 3D STORM of a dendrite fragment with spines (membrane or volume
  label), blinking, precision from photons, background, drift, beads.
- :func:`sample_mesh`: the same acquisition model on any user mesh.
- :func:`minflux_traces`: MINFLUX traces with quality fields (groups
  :class:`MinfluxSample`, :class:`MinfluxTiming`, :class:`MinfluxQuality` and
  :class:`SimulatedDrift`).
- :mod:`synapses` (the module; its function :func:`synapses.synapses`): pre/post
  populations with a coupled fraction (groups :class:`SynapsePopulations`,
  :class:`SynapseRendering` and a :mod:`smlmspine.coupling` region).
  ``simulate.synapses`` is always the module, so ``import smlmspine.simulate.synapses``
  and ``from smlmspine.simulate import synapses`` agree.
- :func:`write_simulation`: write a result and its truth folder.

Submodules load lazily, so importing this package is cheap.

Examples
--------
>>> from smlmspine import simulate
>>> "dendrite" in simulate.__all__
True
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "dendrite": "._dendrite:dendrite",
    "sample_mesh": "._dendrite:sample_mesh",
    "DendriteSimulation": "._dendrite:DendriteSimulation",
    "SpineParameters": "._geometry:SpineParameters",
    "SPINE_CLASSES": ".._columns:SPINE_CLASSES",
    "DEFAULT_CLASSES": "._geometry:DEFAULT_CLASSES",
    "CLASS_DEFAULTS": "._geometry:CLASS_DEFAULTS",
    "draw_spine_parameters": "._geometry:draw_spine_parameters",
    "TruthSpineMeasurement": "._measure:TruthSpineMeasurement",
    "measure_truth_spine": "._measure:measure_truth_spine",
    "cross_section_areas": "._measure:cross_section_areas",
    "PhotophysicsModel": "._blinking:PhotophysicsModel",
    "Geometry": "._settings:Geometry",
    "Meshing": "._settings:Meshing",
    "Labeling": "._settings:Labeling",
    "Acquisition": "._settings:Acquisition",
    "SimulatedDrift": "._settings:SimulatedDrift",
    "SpineShapeNoise": "._settings:SpineShapeNoise",
    "mortensen_precision": "._blinking:mortensen_precision",
    "smooth_drift": "._drift:smooth_drift",
    "minflux_traces": "._minflux:minflux_traces",
    "MinfluxSimulation": "._minflux:MinfluxSimulation",
    "MinfluxSample": "._minflux:MinfluxSample",
    "MinfluxTiming": "._minflux:MinfluxTiming",
    "MinfluxQuality": "._minflux:MinfluxQuality",
    "SynapsePopulations": ".synapses:SynapsePopulations",
    "SynapseRendering": ".synapses:SynapseRendering",
    "write_simulation": "._output:write_simulation",
    "mesh_implicit": "._implicit:mesh_implicit",
    "synapses": ".synapses",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
