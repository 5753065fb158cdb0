"""Spine morphology: neck constriction, head and length measurements, classes.

From a closed spine mesh (ours from :mod:`smlmspine.envelope`, or anyone's: EM
reconstructions, confocal/SIM tools) to a feature table with units in the column
names, a cross-section profile per spine, rule-based or trained classes, and a
point-based neck diameter fitted to the localizations (free of envelope bias).
Definitions are in ``docs/morphology.md``.

Examples
--------
>>> import trimesh
>>> from smlmspine.morphology import measure_spine
>>> m = measure_spine(trimesh.creation.cylinder(radius=100.0, height=600.0, sections=64),
...                   base_point_nm=[0, 0, -300])
>>> round(m.head_diameter_nm), round(m.volume_um3, 4)
(200, 0.0188)
"""

from .._lazy import lazy_exports as _lazy_exports

_LAZY = {
    "ML_FEATURES": "._classify:ML_FEATURES",
    "ClassifierModel": "._classify:ClassifierModel",
    "ClassRules": "._classify:ClassRules",
    "TrainingReport": "._classify:TrainingReport",
    "classify_rules": "._classify:classify_rules",
    "classify_table": "._classify:classify_table",
    "has_head": "._classify:has_head",
    "load_model": "._classify:load_model",
    "save_model": "._classify:save_model",
    "train_classifier": "._classify:train_classifier",
    "FEATURE_NAMES": "._measure:FEATURE_NAMES",
    "BasePlane": "._measure:BasePlane",
    "SpineMeasurement": "._measure:SpineMeasurement",
    "base_plane": "._measure:base_plane",
    "find_base": "._measure:find_base",
    "measure_spine": "._measure:measure_spine",
    "NeckFit": "._neckfit:NeckFit",
    "fit_neck_diameter": "._neckfit:fit_neck_diameter",
    "radial_distances": "._neckfit:radial_distances",
    "NeckSurfaceFit": "._necksurface:NeckSurfaceFit",
    "fit_neck_surface": "._necksurface:fit_neck_surface",
    "EM_RANGES": "._quality:EM_RANGES",
    "PLAUSIBILITY_RULES": "._quality:PLAUSIBILITY_RULES",
    "check_plausibility": "._quality:check_plausibility",
    "quality_columns": "._quality:quality_columns",
    "centreline": "._sections:centreline",
    "cross_section": "._sections:cross_section",
    "section_profile": "._sections:section_profile",
    "PROFILE_COLUMNS": "._tables:PROFILE_COLUMNS",
    "SPINE_COLUMNS": "._tables:SPINE_COLUMNS",
    "SPINE_MESH_FEATURE_COLUMNS": "._tables:SPINE_MESH_FEATURE_COLUMNS",
    "features_table": "._tables:features_table",
    "load_mesh": "._tables:load_mesh",
    "plot_profile": "._tables:plot_profile",
    "profile_table": "._tables:profile_table",
    "neck_fit_for_spine": "._spines:neck_fit_for_spine",
    "measure_meshes": "._spines:measure_meshes",
    "spine_features": "._features:spine_features",
    "SPINE_CLASSES": ".._columns:SPINE_CLASSES",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = _lazy_exports(__name__, globals(), _LAZY)
