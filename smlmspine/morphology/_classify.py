"""Spine classes: NeuronStudio-style rules, and trainable scikit-learn classifiers.

Trained classifiers are saved and loaded as JSON data (:mod:`._model`), never pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .._columns import SPINE_CLASSES
from ..errors import ParameterError
from ._model import ClassifierModel, load_model, save_model

__all__ = ["ClassRules", "classify_rules", "has_head", "classify_table", "train_classifier",
           "TrainingReport", "load_model", "save_model", "ClassifierModel", "SPINE_CLASSES",
           "ML_FEATURES"]


#: Features used by trained classifiers (all numeric columns of the features table).
ML_FEATURES = ("length_nm", "neck_min_diameter_nm", "neck_mean_diameter_nm", "neck_length_nm",
               "head_diameter_nm", "head_volume_um3", "volume_um3", "surface_area_um2",
               "convex_hull_ratio", "head_neck_ratio", "open_angle_deg", "cvd")


@dataclass(frozen=True)
class ClassRules:
    """Thresholds of the rule-based classes (after Rodriguez et al. 2008, NeuronStudio).

    A spine with ``n_tips > 1`` is branched. Otherwise it has a head when its head
    diameter exceeds the neck diameter by the ratio ``head_neck_ratio`` (1.1) AND by
    more than ``head_margin_nm`` (50 nm, ~4 x the lateral precision of 3D STORM: a
    noise allowance, since the widest of many noisy sections of a headless protrusion
    comes out wider than its narrowest; 0 disables it). With a head: mushroom if the
    head diameter >= ``mushroom_head_nm`` (350 nm), else thin. Without a head:
    filopodium if length >= ``filopodium_min_length_nm`` (1 um) and length/head
    diameter >= ``filopodium_aspect_ratio`` (6); thin if length/head diameter >
    ``thin_aspect_ratio`` (2.5); else stubby.

    The neck diameter of the head test is the point-based fit ``neck_fit_diameter_nm``
    when the features have a finite one and ``use_neck_fit`` (it is unbiased; mesh neck
    minima of noisy envelopes are pinched or inflated), else ``neck_min_diameter_nm``.
    A spine whose features carry a ``neck_fit_diameter_nm`` that is NaN (its
    localizations were fitted but do not support a neck: too few of them along a short
    or wide neck segment, as at the pinched base of a reconstructed stubby spine) is
    tested against its mesh neck with the stricter ratio ``unconfirmed_head_neck_ratio``
    (2.5; ``inf``: no head without a fitted neck; 1.1: the plain rule). Features
    without that key (meshes measured without localizations) use the mesh neck and
    ``head_neck_ratio``.

    Attributes
    ----------
    head_neck_ratio : float
        Minimum head/neck diameter ratio of a head (dimensionless, > 0; default 1.1).
        The test is strict: ``head / neck > head_neck_ratio``.
    thin_aspect_ratio : float
        A headless spine with length/head diameter above this is thin, at or below
        it stubby (dimensionless, > 0; default 2.5).
    mushroom_head_nm : float
        Head diameter (nm, > 0) from which a spine with a head is a mushroom rather
        than thin (default 350 nm).
    filopodium_aspect_ratio : float
        Minimum length/head diameter of a filopodium (dimensionless, > 0; default 6).
    filopodium_min_length_nm : float
        Minimum length (nm, >= 0) of a filopodium (default 1000 nm).
    head_margin_nm : float
        Minimum difference head - neck diameter (nm, >= 0) of a head, besides the
        ratio (default 50 nm; 0 disables this test).
    use_neck_fit : bool
        Use the point-based ``neck_fit_diameter_nm`` as the neck diameter of the
        head test when the features have a finite one (default True); False uses
        the mesh ``neck_min_diameter_nm`` and ``head_neck_ratio`` always.
    unconfirmed_head_neck_ratio : float
        Head/neck ratio required against the mesh neck when the features carry a
        NaN ``neck_fit_diameter_nm`` (dimensionless, > 0, may be ``inf``; default
        2.5). The larger of it and ``head_neck_ratio`` is used.

    Raises
    ------
    ParameterError
        When a ratio or ``mushroom_head_nm`` is not positive, a length is negative,
        or ``unconfirmed_head_neck_ratio`` is not in (0, inf].

    Examples
    --------
    >>> ClassRules(mushroom_head_nm=400.0).mushroom_head_nm
    400.0
    """

    head_neck_ratio: float = 1.1
    thin_aspect_ratio: float = 2.5
    mushroom_head_nm: float = 350.0
    filopodium_aspect_ratio: float = 6.0
    filopodium_min_length_nm: float = 1000.0
    head_margin_nm: float = 50.0
    use_neck_fit: bool = True
    unconfirmed_head_neck_ratio: float = 2.5

    def __post_init__(self):
        from .._validate import in_range, non_negative, positive

        for name in ("head_neck_ratio", "thin_aspect_ratio", "mushroom_head_nm",
                     "filopodium_aspect_ratio"):
            positive(getattr(self, name), name)
        for name in ("filopodium_min_length_nm", "head_margin_nm"):
            non_negative(getattr(self, name), name)
        in_range(self.unconfirmed_head_neck_ratio, "unconfirmed_head_neck_ratio", 0, np.inf,
                 low_open=True)


def _neck_for_head_test(features: dict, rules: ClassRules) -> tuple[float, float]:
    """Neck diameter and head/neck ratio threshold of the head test."""
    mesh_neck = float(features["neck_min_diameter_nm"])
    if not rules.use_neck_fit or "neck_fit_diameter_nm" not in features:
        return mesh_neck, rules.head_neck_ratio
    fit = features["neck_fit_diameter_nm"]
    fit = float("nan") if fit is None else float(fit)
    if np.isfinite(fit) and fit > 0:
        return fit, rules.head_neck_ratio
    return mesh_neck, max(rules.unconfirmed_head_neck_ratio, rules.head_neck_ratio)


def has_head(features: dict, rules: ClassRules = ClassRules()) -> bool:
    """Whether a spine has a head by the rules' head test (see :class:`ClassRules`).

    Parameters
    ----------
    features : dict
        Morphology features of one spine (a row of the features table): needs
        ``head_diameter_nm`` and ``neck_min_diameter_nm`` (nm); ``neck_fit_diameter_nm``
        (nm, NaN or None when the localizations do not support a neck) is used when
        present and ``rules.use_neck_fit``.
    rules : ClassRules
        Thresholds of the head test.

    Returns
    -------
    bool
        True when head/neck > the ratio threshold and head - neck >
        ``rules.head_margin_nm``; False when the neck diameter is not finite and
        positive or the head diameter is not finite.

    Examples
    --------
    >>> has_head({"head_diameter_nm": 600.0, "neck_min_diameter_nm": 200.0})
    True
    >>> has_head({"head_diameter_nm": 600.0, "neck_min_diameter_nm": 200.0,
    ...           "neck_fit_diameter_nm": float("nan")})   # needs a ratio > 2.5 then
    True
    >>> has_head({"head_diameter_nm": 230.0, "neck_min_diameter_nm": 200.0})
    False
    """
    head = float(features["head_diameter_nm"])
    neck, ratio = _neck_for_head_test(features, rules)
    if not (np.isfinite(neck) and neck > 0 and np.isfinite(head)):
        return False
    return head / neck > ratio and head - neck > rules.head_margin_nm


def classify_rules(features: dict, rules: ClassRules = ClassRules()) -> str:
    """Class of one spine from its features (a dict with the morphology feature names).

    Uses ``n_tips``, ``head_diameter_nm``, ``length_nm``, ``neck_min_diameter_nm`` and,
    when present, ``neck_fit_diameter_nm`` (see :class:`ClassRules`).

    Parameters
    ----------
    features : dict
        Morphology features of one spine (a row of the features table). Needs
        ``head_diameter_nm``, ``length_nm`` and ``neck_min_diameter_nm`` (nm);
        ``n_tips`` (default 1) and ``neck_fit_diameter_nm`` (nm) are optional.
    rules : ClassRules
        Thresholds of the classes.

    Returns
    -------
    str
        One of ``"branched"``, ``"mushroom"``, ``"thin"``, ``"filopodium"``,
        ``"stubby"`` (see ``SPINE_CLASSES``). A spine whose head diameter is NaN has
        no head and falls through to ``"stubby"``.

    Raises
    ------
    KeyError
        When a needed feature is missing from ``features``.

    Examples
    --------
    >>> classify_rules({"n_tips": 1, "head_neck_ratio": 3.0, "head_diameter_nm": 600.0,
    ...                 "length_nm": 1200.0, "neck_min_diameter_nm": 200.0})
    'mushroom'
    >>> classify_rules({"n_tips": 1, "head_neck_ratio": 1.0, "head_diameter_nm": 500.0,
    ...                 "length_nm": 600.0, "neck_min_diameter_nm": 480.0})
    'stubby'
    >>> classify_rules({"n_tips": 1, "head_diameter_nm": 150.0, "length_nm": 1800.0,
    ...                 "neck_min_diameter_nm": 60.0, "neck_fit_diameter_nm": 125.0})
    'filopodium'
    """
    if features.get("n_tips", 1) > 1:
        return "branched"
    head = float(features["head_diameter_nm"])
    length = float(features["length_nm"])
    if has_head(features, rules):
        return "mushroom" if head >= rules.mushroom_head_nm else "thin"
    if length >= rules.filopodium_min_length_nm and length / head >= rules.filopodium_aspect_ratio:
        return "filopodium"
    if length / head > rules.thin_aspect_ratio:
        return "thin"
    return "stubby"


def classify_table(features: pa.Table, *, rules: ClassRules = ClassRules(), model=None) -> pa.Table:
    """Add a ``spine_class`` column (rules, or a trained :class:`ClassifierModel` when given).

    Parameters
    ----------
    features : pyarrow.Table
        Features table, one row per spine (:func:`features_table`). With rules it
        needs the columns read by :func:`classify_rules`; with a model, the
        model's ``features`` columns (non-finite values are missing and take the
        training median).
    rules : ClassRules
        Thresholds of the rule-based classes (ignored when ``model`` is given).
    model : ClassifierModel or None
        A trained classifier (:func:`train_classifier` or :func:`load_model`);
        None classifies by ``rules``.

    Returns
    -------
    pyarrow.Table
        ``features`` with a string column ``spine_class`` appended (an existing one
        is replaced) and the schema metadata key ``smlmspine.classification``: JSON
        with the ``method`` (``"rules"`` or ``"model"``) and the ``rules`` used
        (null for a model).

    Raises
    ------
    ParameterError
        When ``model`` is not a :class:`ClassifierModel`, or the table lacks a
        column the model needs.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"n_tips": [1, 1], "head_diameter_nm": [600.0, 500.0],
    ...               "length_nm": [1200.0, 600.0], "neck_min_diameter_nm": [200.0, 480.0]})
    >>> classify_table(t).column("spine_class").to_pylist()
    ['mushroom', 'stubby']
    """
    if model is not None:
        if not isinstance(model, ClassifierModel):
            raise ParameterError(f"model must be a ClassifierModel (from train_classifier or "
                                 f"load_model); got {type(model).__name__}")
        X = _matrix(features, model.features)
        labels = [str(v) for v in model.predict(X)]
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
    """Cross-validated performance of a trained spine classifier.

    Attributes
    ----------
    accuracy_mean : float
        Mean over the folds of the fraction of held-out spines classified correctly
        (0 to 1).
    accuracy_std : float
        Standard deviation of the fold accuracies (population, ``ddof=0``).
    n_folds : int
        Number of stratified folds used: the requested number, lowered to the size
        of the smallest class.
    classes : tuple of str
        Class names, sorted; the row and column order of ``confusion_matrix``.
    confusion_matrix : tuple of tuple of int
        ``confusion_matrix[i][j]``: spines of true class ``classes[i]`` predicted as
        ``classes[j]`` by the cross-validated (held-out) predictions.
    n_samples : int
        Number of labelled spines.
    """

    accuracy_mean: float
    accuracy_std: float
    n_folds: int
    classes: tuple[str, ...]
    confusion_matrix: tuple[tuple[int, ...], ...]
    n_samples: int

    def to_dict(self) -> dict:
        """The report as a dict of plain values (JSON-compatible).

        Returns
        -------
        dict
            One key per attribute; ``classes`` and ``confusion_matrix`` as tuples.

        Examples
        --------
        >>> TrainingReport(0.9, 0.05, 2, ("stubby", "thin"), ((4, 1), (0, 5)), 10).to_dict()["n_folds"]
        2
        """
        return asdict(self)


def train_classifier(features: pa.Table, labels, *, n_folds: int = 5, rng=0):
    """Train a random-forest pipeline (imputation + forest) on spine features.

    Returns ``(model, TrainingReport)``; ``model`` is a :class:`ClassifierModel` (the
    fitted parameters as arrays; the scikit-learn pipeline in ``model.sklearn_pipeline``),
    saved with :func:`save_model` as JSON.

    The forest has 200 trees; missing (non-finite) features take the training median.
    Accuracy is estimated by stratified, shuffled k-fold cross-validation before the
    final fit on all spines.

    Parameters
    ----------
    features : pyarrow.Table
        Features table, one row per spine, with every column of ``ML_FEATURES``.
    labels : sequence of str
        Class of each row of ``features`` (converted with ``str``); any names.
    n_folds : int
        Number of cross-validation folds (>= 2; lowered to the size of the smallest
        class when that is smaller).
    rng : int or numpy.random.Generator
        Seed (or generator) from which the forest and fold seeds are drawn.

    Returns
    -------
    model : ClassifierModel
        The forest fitted on all labelled spines.
    report : TrainingReport
        Cross-validated accuracy and confusion matrix.

    Raises
    ------
    ParameterError
        When ``n_folds`` < 2, the number of labels differs from the number of rows,
        a column of ``ML_FEATURES`` is missing, or there are fewer than 2 classes
        with at least 2 spines each.

    Examples
    --------
    >>> import numpy as np, pyarrow as pa
    >>> rng = np.random.default_rng(0)
    >>> cols = {n: rng.normal(100.0, 10.0, 12) for n in ML_FEATURES}
    >>> for n in ML_FEATURES:
    ...     cols[n][6:] += 300.0                     # six spines apart in every feature
    >>> labels = ["thin"] * 6 + ["mushroom"] * 6
    >>> model, report = train_classifier(pa.table(cols), labels, n_folds=3)
    >>> report.n_folds, report.classes, report.accuracy_mean
    (3, ('mushroom', 'thin'), 1.0)
    >>> model.predict(np.array([[100.0] * 12, [400.0] * 12])).tolist()
    ['thin', 'mushroom']
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import confusion_matrix
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    from .._validate import integer

    n_folds = integer(n_folds, "n_folds", minimum=2)
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
    return ClassifierModel.from_pipeline(pipe, ML_FEATURES, n_samples=len(y)), report
