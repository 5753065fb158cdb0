"""Spine classes: NeuronStudio-style rules, and trainable scikit-learn classifiers."""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import FormatError, ParameterError

__all__ = ["ClassRules", "classify_rules", "classify_table", "train_classifier",
           "TrainingReport", "load_model", "SPINE_CLASSES", "ML_FEATURES"]

SPINE_CLASSES = ("thin", "mushroom", "stubby", "filopodium", "branched")

#: Features used by trained classifiers (all numeric columns of the features table).
ML_FEATURES = ("length_nm", "neck_min_diameter_nm", "neck_mean_diameter_nm", "neck_length_nm",
               "head_diameter_nm", "head_volume_um3", "volume_um3", "surface_area_um2",
               "convex_hull_ratio", "head_neck_ratio", "open_angle_deg", "cvd")


@dataclass(frozen=True)
class ClassRules:
    """Thresholds of the rule-based classes (after Rodriguez et al. 2008, NeuronStudio).

    A spine with ``n_tips > 1`` is branched. Otherwise, with a head (head/neck diameter
    ratio > ``head_neck_ratio``): mushroom if the head diameter >= ``mushroom_head_nm``,
    else thin. Without a head: filopodium if length >= ``filopodium_min_length_nm`` and
    length/diameter >= ``filopodium_aspect_ratio``; thin if length/head diameter >
    ``thin_aspect_ratio``; else stubby.
    """

    head_neck_ratio: float = 1.1
    thin_aspect_ratio: float = 2.5
    mushroom_head_nm: float = 350.0
    filopodium_aspect_ratio: float = 6.0
    filopodium_min_length_nm: float = 1000.0


def classify_rules(features: dict, rules: ClassRules = ClassRules()) -> str:
    """Class of one spine from its features (a dict with the morphology feature names).

    Examples
    --------
    >>> classify_rules({"n_tips": 1, "head_neck_ratio": 3.0, "head_diameter_nm": 600.0,
    ...                 "length_nm": 1200.0, "neck_min_diameter_nm": 200.0})
    'mushroom'
    >>> classify_rules({"n_tips": 1, "head_neck_ratio": 1.0, "head_diameter_nm": 500.0,
    ...                 "length_nm": 600.0, "neck_min_diameter_nm": 480.0})
    'stubby'
    """
    if features.get("n_tips", 1) > 1:
        return "branched"
    head = features["head_diameter_nm"]
    length = features["length_nm"]
    if features["head_neck_ratio"] > rules.head_neck_ratio:
        return "mushroom" if head >= rules.mushroom_head_nm else "thin"
    if length >= rules.filopodium_min_length_nm and length / head >= rules.filopodium_aspect_ratio:
        return "filopodium"
    if length / head > rules.thin_aspect_ratio:
        return "thin"
    return "stubby"


def classify_table(features: pa.Table, *, rules: ClassRules = ClassRules(), model=None) -> pa.Table:
    """Add a ``spine_class`` column (rules, or a trained model when given)."""
    if model is not None:
        X = _matrix(features, model.get("features", ML_FEATURES))
        labels = [str(v) for v in model["pipeline"].predict(X)]
        method = "model"
    else:
        rows = features.to_pylist()
        labels = [classify_rules(r, rules) for r in rows]
        method = "rules"
    out = features
    if "spine_class" in out.column_names:
        out = out.drop_columns(["spine_class"])
    out = out.append_column(pa.field("spine_class", pa.string(), metadata={"unit": "",
                            "description": f"spine class ({method})"}), pa.array(labels, pa.string()))
    meta = dict(features.schema.metadata or {})
    meta[b"smlmspine.classification"] = json.dumps(
        {"method": method, "rules": asdict(rules) if model is None else None}).encode()
    return out.replace_schema_metadata(meta)


def _matrix(features: pa.Table, names) -> np.ndarray:
    missing = [n for n in names if n not in features.column_names]
    if missing:
        raise ParameterError(f"the features table lacks column(s) {missing} needed by the classifier")
    X = np.column_stack([np.asarray(features.column(n).to_numpy(zero_copy_only=False), float)
                         for n in names])
    return np.where(np.isfinite(X), X, np.nan)


@dataclass(frozen=True)
class TrainingReport:
    """Cross-validated performance of a trained spine classifier."""

    accuracy_mean: float
    accuracy_std: float
    n_folds: int
    classes: tuple[str, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    n_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def train_classifier(features: pa.Table, labels, *, n_folds: int = 5, rng=0):
    """Train a random-forest pipeline (imputation + forest) on spine features.

    Returns ``(model, TrainingReport)``; ``model`` is a dict with the pipeline and the
    feature names, saved with :func:`save_model`.
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    y = np.asarray([str(v) for v in labels])
    if len(y) != features.num_rows:
        raise ParameterError(f"{len(y)} labels for {features.num_rows} spines")
    X = _matrix(features, ML_FEATURES)
    classes, counts = np.unique(y, return_counts=True)
    folds = int(min(n_folds, counts.min()))
    if folds < 2 or len(classes) < 2:
        raise ParameterError("need at least 2 classes with 2 labelled spines each to train; "
                             f"got {dict(zip(classes.tolist(), counts.tolist()))}")
    seed = int(np.random.default_rng(rng).integers(2 ** 31))
    pipe = make_pipeline(SimpleImputer(strategy="median"),
                         RandomForestClassifier(n_estimators=200, random_state=seed))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(pipe, X, y, cv=cv)
    acc = [(pred[te] == y[te]).mean() for _, te in cv.split(X, y)]
    pipe.fit(X, y)
    cm = confusion_matrix(y, pred, labels=classes)
    report = TrainingReport(float(np.mean(acc)), float(np.std(acc)), folds, tuple(classes.tolist()),
                            tuple(tuple(int(v) for v in row) for row in cm), len(y))
    return {"pipeline": pipe, "features": ML_FEATURES, "classes": tuple(classes.tolist())}, report


def load_model(path: str | Path) -> dict:
    """Load a classifier saved by ``smlmspine train`` (a pickle: load only your own files)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            model = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise FormatError(f"not a smlmspine classifier model: {exc}", path=path) from exc
    if not isinstance(model, dict) or "pipeline" not in model:
        raise FormatError("not a smlmspine classifier model (no 'pipeline')", path=path)
    return model
