"""Trained spine classifiers saved as data (JSON), never as code (pickle).

A model file holds the parameters of the scikit-learn pipeline that
``smlmspine train`` fits (median imputation followed by a random forest): the
imputation medians and, for every tree, its node arrays (children, split feature,
threshold, class fractions of the leaves). Prediction walks these arrays itself,
with the arithmetic of scikit-learn (features cast to float32 before the
``<= threshold`` test, tree probabilities summed in tree order, then divided by the
number of trees), so a loaded model predicts exactly what the fitted pipeline
predicts, without scikit-learn and without running anything stored in the file.

Arrays are stored little-endian in base64 inside the JSON, with their dtype and
shape; the document carries a SHA-256 of its canonical JSON (:func:`content_sha256`).
Loading checks the format name and version, the checksum, the feature and class
names, every array's dtype/shape/length and the
tree structure (children after their parent, split features in range, finite
thresholds, leaf fractions in [0, 1] summing to 1); any fault is one
:class:`~smlmspine.errors.FormatError` naming the file. A Python pickle (the model
format of smlmspine 0.1.0 and older) is recognised and refused without being read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FormatError, ParameterError

__all__ = ["ClassifierModel", "save_model", "load_model", "content_sha256", "MODEL_FORMAT",
           "MODEL_FORMAT_VERSION"]

MODEL_FORMAT = "smlmspine-classifier"
MODEL_FORMAT_VERSION = 1
#: Model files larger than this are refused before being read (bytes).
MAX_MODEL_BYTES = 256 << 20
_KIND = "median-imputer+random-forest"
#: (tree, sample) pairs walked at once by ClassifierModel.predict_proba (memory bound).
_WALK_ENTRIES = 1 << 21
# name -> (dtype, number of dimensions)
_ARRAYS = {"children_left": ("<i4", 1), "children_right": ("<i4", 1), "feature": ("<i4", 1),
           "threshold": ("<f8", 1), "leaf_fraction": ("<f8", 2)}


@dataclass(frozen=True, eq=False)
class ClassifierModel:
    """A median-imputation + random-forest spine classifier, as plain arrays.

    Attributes
    ----------
    features : tuple of str
        Feature (column) names, in the order of the model's input matrix.
    classes : tuple of str
        Class names; column order of :meth:`predict_proba`.
    medians : (F,) ndarray of float
        Imputation value of each feature (NaN: the feature had no value in training
        and is dropped, as scikit-learn's ``SimpleImputer`` does).
    node_counts : (T,) ndarray of int
        Number of nodes of each tree; the node arrays are the trees concatenated.
    children_left, children_right : (N,) ndarray of int32
        Child node of each node, within its tree (-1 at leaves).
    feature : (N,) ndarray of int32
        Split feature of each node, an index into the kept (non-NaN median) features.
    threshold : (N,) ndarray of float
        Split threshold; a sample goes left when its float32 value is <= it.
    leaf_fraction : (N, C) ndarray of float
        Class fractions of the training samples in each node (used at leaves).
    sklearn_version : str
        Version of scikit-learn the model was trained with ("" when unknown). Saved,
        for the record only: prediction does not use scikit-learn.
    n_samples : int
        Number of labelled spines the model was trained on (0 when unknown).
    sklearn_pipeline : object or None
        The fitted scikit-learn pipeline the model was built from (None when loaded
        from a file). Not saved.

    Examples
    --------
    A one-tree forest splitting feature 0 at 0.5 (node 0 is the root, 1 and 2 leaves):

    >>> import numpy as np
    >>> m = ClassifierModel(features=("length_nm",), classes=("stubby", "thin"),
    ...                     medians=np.array([0.0]), node_counts=np.array([3]),
    ...                     children_left=np.array([1, -1, -1], np.int32),
    ...                     children_right=np.array([2, -1, -1], np.int32),
    ...                     feature=np.array([0, -2, -2], np.int32),
    ...                     threshold=np.array([0.5, -2.0, -2.0]),
    ...                     leaf_fraction=np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]))
    >>> m.predict(np.array([[0.2], [0.9], [np.nan]])).tolist()
    ['stubby', 'thin', 'stubby']
    """

    features: tuple
    classes: tuple
    medians: np.ndarray
    node_counts: np.ndarray
    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    leaf_fraction: np.ndarray
    sklearn_version: str = ""
    n_samples: int = 0
    sklearn_pipeline: object = field(default=None, repr=False)

    @property
    def n_trees(self) -> int:
        """Number of trees of the forest."""
        return int(len(self.node_counts))

    @classmethod
    def from_pipeline(cls, pipeline, features, *, n_samples: int = 0) -> "ClassifierModel":
        """Parameters of a fitted ``make_pipeline(SimpleImputer("median"), RandomForestClassifier)``.

        Parameters
        ----------
        pipeline : sklearn.pipeline.Pipeline
            A fitted pipeline of exactly two steps, ``SimpleImputer(strategy="median")``
            on NaN (no ``add_indicator``, no ``keep_empty_features``) and a
            single-output ``RandomForestClassifier``.
        features : sequence of str
            Names of the pipeline's input columns, in order (F names).
        n_samples : int
            Number of training samples, recorded in the model.

        Returns
        -------
        ClassifierModel
            The imputation medians and the trees' node arrays, with
            ``sklearn_pipeline`` set to ``pipeline``. Leaf fractions are normalised
            (scikit-learn < 1.4 stores weighted counts).

        Raises
        ------
        ParameterError
            When the pipeline has other steps or options, a multi-output forest, or a
            number of feature names different from the imputer's.
        """
        import sklearn

        steps = [s for _, s in getattr(pipeline, "steps", [])]
        kinds = [type(s).__name__ for s in steps]
        if kinds != ["SimpleImputer", "RandomForestClassifier"]:
            raise ParameterError(f"only a SimpleImputer + RandomForestClassifier pipeline can be "
                                 f"saved as a smlmspine model; got {kinds}")
        imputer, forest = steps
        if imputer.strategy != "median" or not (isinstance(imputer.missing_values, float)
                                                and math.isnan(imputer.missing_values)):
            raise ParameterError("the imputer must be SimpleImputer(strategy='median') on NaN")
        if getattr(imputer, "add_indicator", False) or getattr(imputer, "keep_empty_features", False):
            raise ParameterError("imputer options add_indicator/keep_empty_features are not supported")
        if forest.n_outputs_ != 1:
            raise ParameterError("only single-output forests can be saved")
        features = tuple(str(f) for f in features)
        medians = np.asarray(imputer.statistics_, dtype=np.float64)
        if len(medians) != len(features):
            raise ParameterError(f"{len(features)} feature names for an imputer of {len(medians)}")
        n_classes = int(forest.n_classes_)
        old_counts = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 4)
        parts = {k: [] for k in _ARRAYS}
        counts = []
        for est in forest.estimators_:
            t = est.tree_
            value = np.asarray(t.value, dtype=np.float64).reshape(t.node_count, -1)[:, :n_classes]
            if old_counts:   # scikit-learn < 1.4 stores weighted counts; predict_proba normalises
                norm = value.sum(axis=1)[:, np.newaxis]
                norm[norm == 0.0] = 1.0
                value = value / norm
            counts.append(int(t.node_count))
            parts["children_left"].append(np.asarray(t.children_left, np.int32))
            parts["children_right"].append(np.asarray(t.children_right, np.int32))
            feat = np.asarray(t.feature, np.int32).copy()
            feat[np.asarray(t.children_left) == -1] = -2
            parts["feature"].append(feat)
            parts["threshold"].append(np.asarray(t.threshold, np.float64))
            parts["leaf_fraction"].append(value)
        arrays = {k: np.concatenate(v).astype(_ARRAYS[k][0]) for k, v in parts.items()}
        return cls(features=features, classes=tuple(str(c) for c in forest.classes_),
                   medians=medians, node_counts=np.asarray(counts, np.int64),
                   sklearn_version=sklearn.__version__, n_samples=int(n_samples),
                   sklearn_pipeline=pipeline, **arrays)

    # -- prediction ---------------------------------------------------------------
    def _leaves(self, X: np.ndarray) -> np.ndarray:
        """Global leaf index of every (tree, sample): (T, M) ndarray."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ParameterError(f"the model needs a matrix of {len(self.features)} feature columns; "
                                 f"got shape {X.shape}")
        keep = ~np.isnan(self.medians)
        X = X[:, keep].copy()
        miss = ~np.isfinite(X)                          # NaN and +-inf are missing values
        X[miss] = np.broadcast_to(self.medians[keep], X.shape)[miss]
        # The forest compares float32 features with float64 thresholds.
        X = X.astype(np.float32).astype(np.float64)
        offsets = np.concatenate([[0], np.cumsum(self.node_counts)[:-1]]).astype(np.int64)
        m = X.shape[0]
        node = np.repeat(offsets, m)                    # tree-major
        sample = np.tile(np.arange(m), self.n_trees)
        base = node.copy()
        left = self.children_left.astype(np.int64)
        right = self.children_right.astype(np.int64)
        active = np.flatnonzero(left[node] != -1)
        while active.size:
            n = node[active]
            f = self.feature[n]
            go_left = X[sample[active], f] <= self.threshold[n]
            node[active] = base[active] + np.where(go_left, left[n], right[n])
            active = active[left[node[active]] != -1]
        return node.reshape(self.n_trees, m)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, (M, C) ndarray (columns in the order of ``classes``).

        ``X`` is an (M, F) matrix of the model's features; non-finite values (NaN, inf)
        are missing and take the training median, as in :func:`classify_table`.

        Parameters
        ----------
        X : (M, F) array_like of float
            One row per spine, the columns in the order of ``features`` (their units:
            nm, um^3, ... as in the features table).

        Returns
        -------
        (M, C) ndarray of float
            Mean over the trees of the class fractions of the leaf each row reaches;
            rows sum to 1.

        Raises
        ------
        ParameterError
            When ``X`` is not a 2-D matrix of F columns.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ParameterError(f"the model needs a matrix of {len(self.features)} feature columns; "
                                 f"got shape {X.shape}")
        proba = np.zeros((len(X), len(self.classes)), dtype=np.float64)
        # Samples in chunks: the walk holds (trees x chunk) node indices, not (trees x M).
        step = max(1, _WALK_ENTRIES // max(self.n_trees, 1))
        for lo in range(0, len(X), step):
            leaves = self._leaves(X[lo:lo + step])
            part = proba[lo:lo + step]
            for t in range(self.n_trees):
                part += self.leaf_fraction[leaves[t]]
        proba /= self.n_trees
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class name of every row of ``X`` (M, F): the class of largest probability.

        Parameters
        ----------
        X : (M, F) array_like of float
            One row per spine, the columns in the order of ``features``; non-finite
            values take the training median.

        Returns
        -------
        (M,) ndarray of object
            Class names (str); ties go to the class listed first in ``classes``.

        Raises
        ------
        ParameterError
            When ``X`` is not a 2-D matrix of F columns.
        """
        return np.asarray(self.classes, dtype=object).take(np.argmax(self.predict_proba(X), axis=1))


def _encode(arr: np.ndarray, dtype: str) -> dict:
    a = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
    return {"dtype": dtype, "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def save_model(model: ClassifierModel, path: str | Path) -> Path:
    """Write a classifier as JSON (atomically: nothing is left behind on failure).

    Parameters
    ----------
    model : ClassifierModel
        From :func:`~smlmspine.morphology.train_classifier`.
    path : str or Path
        Output file (``.json`` recommended).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ParameterError
        When ``model`` is not a :class:`ClassifierModel`.
    """
    from .. import __version__
    from ..io import atomic_output

    if not isinstance(model, ClassifierModel):
        raise ParameterError(f"save_model needs a ClassifierModel, got {type(model).__name__}")
    arrays = {k: _encode(getattr(model, k), dt) for k, (dt, _) in _ARRAYS.items()}
    doc = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "smlmspine_version": __version__,
        "model": _KIND,
        "features": list(model.features),
        "classes": list(model.classes),
        "imputer_medians": [None if math.isnan(v) else float(v) for v in model.medians],
        "node_counts": [int(v) for v in model.node_counts],
        "arrays": arrays,
        "trained_with": {"scikit-learn": model.sklearn_version, "n_samples": int(model.n_samples)},
    }
    doc["sha256"] = content_sha256(doc)
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, allow_nan=False, indent=1), encoding="utf-8")
    return path


def content_sha256(doc: dict) -> str:
    """SHA-256 of a model document without its ``sha256`` key, in canonical JSON.

    Canonical: keys sorted, no spaces, floats in their shortest round-trip form (what
    ``json`` writes), so a file's checksum does not depend on its layout.

    Examples
    --------
    >>> content_sha256({"b": 1, "a": [0.1, None]}) == content_sha256({"a": [0.1, None], "b": 1})
    True
    """
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in a model file")


def load_model(path: str | Path) -> ClassifierModel:
    """Read a classifier written by :func:`save_model` (``smlmspine train``).

    The file is data only: nothing in it is executed. Pickles (models of smlmspine
    0.1.0 and older) are refused unread; retrain them with ``smlmspine train``.

    Parameters
    ----------
    path : str or Path
        A model file (JSON) of at most ``MAX_MODEL_BYTES`` bytes.

    Returns
    -------
    ClassifierModel
        The model, validated (``sklearn_pipeline`` is None).

    Raises
    ------
    FormatError
        Naming the file, when it is not a valid smlmspine model (missing, unreadable,
        too large, a pickle, wrong format or version, malformed or tampered content).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> m = ClassifierModel(features=("length_nm",), classes=("stubby", "thin"),
    ...                     medians=np.array([0.0]), node_counts=np.array([3]),
    ...                     children_left=np.array([1, -1, -1], np.int32),
    ...                     children_right=np.array([2, -1, -1], np.int32),
    ...                     feature=np.array([0, -2, -2], np.int32),
    ...                     threshold=np.array([0.5, -2.0, -2.0]),
    ...                     leaf_fraction=np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     back = load_model(save_model(m, pathlib.Path(d) / "model.json"))
    >>> back.classes, back.predict(np.array([[0.9]])).tolist()
    (('stubby', 'thin'), ['thin'])
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise FormatError("not a regular file (a model file expected)", path=path)
        if size > MAX_MODEL_BYTES:
            raise FormatError(f"{size} bytes; a smlmspine model file is at most {MAX_MODEL_BYTES} "
                              "bytes (refused unread)", path=path)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FormatError("no such model file", path=path) from None
    except OSError as exc:
        raise FormatError(f"cannot read the model file: {exc.strerror or exc}", path=path) from None
    head = raw.lstrip()[:1]
    if (raw[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
            or (raw.endswith(b".") and raw[:1] in (b"(", b"c", b"}", b"]"))):
        raise FormatError("is a Python pickle (the model format of smlmspine 0.1.0 and older); pickles "
                          "can run arbitrary code when loaded and are refused unread. Retrain with "
                          "`smlmspine train` to write a JSON model file", path=path)
    if head != b"{":
        raise FormatError("not a smlmspine model file (a JSON object expected, starting with '{'); "
                          f"found {raw[:16]!r}", path=path)
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text at byte {exc.start} (a JSON model file expected)",
                          path=path) from None
    except RecursionError:
        raise FormatError("JSON nested too deeply (not a smlmspine model file)", path=path) from None
    except ValueError as exc:
        raise FormatError(f"malformed JSON: {exc}", path=path) from None
    try:
        return _from_document(doc)
    except _Bad as exc:
        raise FormatError(str(exc), path=path) from None


class _Bad(Exception):
    pass


def _get(doc: dict, key: str, types, what: str):
    if key not in doc:
        raise _Bad(f"missing key {key!r} ({what})")
    val = doc[key]
    if not isinstance(val, types) or (isinstance(val, bool) and types is not bool):
        raise _Bad(f"key {key!r} must be {what}; found {type(val).__name__}")
    return val


def _names(doc: dict, key: str, min_len: int) -> tuple:
    vals = _get(doc, key, list, "a list of names")
    if len(vals) < min_len or not all(isinstance(v, str) and v for v in vals):
        raise _Bad(f"key {key!r} must be at least {min_len} non-empty names; found {vals[:10]!r}")
    if len(set(vals)) != len(vals):
        raise _Bad(f"key {key!r} has repeated names: {vals!r}")
    return tuple(vals)


def _decode(arrays: dict, name: str) -> np.ndarray:
    dtype, ndim = _ARRAYS[name]
    spec = arrays.get(name)
    if not isinstance(spec, dict):
        raise _Bad(f"missing array {name!r}")
    if spec.get("dtype") != dtype:
        raise _Bad(f"array {name!r} must have dtype {dtype}; found {spec.get('dtype')!r}")
    shape = spec.get("shape")
    if (not isinstance(shape, list) or len(shape) != ndim
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
        raise _Bad(f"array {name!r} must have a shape of {ndim} non-negative integers; found {shape!r}")
    data = spec.get("base64")
    if not isinstance(data, str):
        raise _Bad(f"array {name!r} has no base64 data")
    n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
    if n_bytes != len(data) // 4 * 3 - data[-2:].count("="):
        raise _Bad(f"array {name!r} of shape {shape} needs {n_bytes} bytes; its data holds "
                   f"{len(data) // 4 * 3 - data[-2:].count('=')}")
    try:
        buf = base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise _Bad(f"array {name!r}: invalid base64 data") from None
    if len(buf) != n_bytes:
        raise _Bad(f"array {name!r} of shape {shape} needs {n_bytes} bytes; found {len(buf)}")
    return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape).copy()


def _from_document(doc) -> ClassifierModel:
    if not isinstance(doc, dict):
        raise _Bad(f"a JSON object expected at the top; found {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt != MODEL_FORMAT:
        raise _Bad(f"not a smlmspine model file (format {fmt!r}, expected {MODEL_FORMAT!r})")
    version = _get(doc, "format_version", int, "an integer")
    if version > MODEL_FORMAT_VERSION:
        raise _Bad(f"model format version {version} was written by a newer smlmspine "
                   f"({doc.get('smlmspine_version')!r}); this version reads up to {MODEL_FORMAT_VERSION}")
    if version < 1:
        raise _Bad(f"invalid model format version {version}")
    _get(doc, "smlmspine_version", str, "a version string")
    if doc.get("sha256") != content_sha256(doc):
        raise _Bad("content does not match its SHA-256 checksum (the file was altered or damaged)")
    kind = doc.get("model")
    if kind != _KIND:
        raise _Bad(f"unknown model kind {kind!r} (this version reads {_KIND!r})")
    features = _names(doc, "features", 1)
    classes = _names(doc, "classes", 2)
    med = _get(doc, "imputer_medians", list, "a list of numbers or null")
    if len(med) != len(features) or not all(v is None or isinstance(v, (int, float))
                                            and not isinstance(v, bool) for v in med):
        raise _Bad(f"'imputer_medians' must hold {len(features)} numbers or null (one per feature)")
    medians = np.array([np.nan if v is None else float(v) for v in med], dtype=np.float64)
    if not np.isfinite(medians[~np.isnan(medians)]).all():
        raise _Bad("'imputer_medians' must be finite")
    n_kept = int((~np.isnan(medians)).sum())
    if n_kept == 0:
        raise _Bad("every feature has a null median: the model uses no feature")
    counts = _get(doc, "node_counts", list, "a list of node counts")
    if not counts or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts):
        raise _Bad("'node_counts' must be a non-empty list of positive integers")
    n_nodes = sum(counts)
    arrays = _get(doc, "arrays", dict, "an object of arrays")
    # Shapes are checked before any data is decoded (a declared size cannot make us allocate).
    for name, (_, ndim) in _ARRAYS.items():
        spec = arrays.get(name)
        shape = spec.get("shape") if isinstance(spec, dict) else None
        want = [n_nodes] if ndim == 1 else [n_nodes, len(classes)]
        if shape != want:
            raise _Bad(f"array {name!r} must have shape {want} (from 'node_counts' and 'classes'); "
                       f"found {shape!r}")
    arr = {name: _decode(arrays, name) for name in _ARRAYS}
    _check_trees(arr, np.asarray(counts, np.int64), n_kept)
    trained = doc.get("trained_with") if isinstance(doc.get("trained_with"), dict) else {}
    n_samples = trained.get("n_samples", 0)
    return ClassifierModel(features=features, classes=classes, medians=medians,
                           node_counts=np.asarray(counts, np.int64),
                           sklearn_version=str(trained.get("scikit-learn", "")),
                           n_samples=n_samples if isinstance(n_samples, int) else 0, **arr)


def _check_trees(arr: dict, counts: np.ndarray, n_features: int) -> None:
    left, right, feat = arr["children_left"], arr["children_right"], arr["feature"]
    thr, frac = arr["threshold"], arr["leaf_fraction"]
    local = np.arange(len(left)) - np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    size = np.repeat(counts, counts)
    leaf = left == -1
    if np.any(leaf != (right == -1)):
        raise _Bad("tree nodes with one child only")
    inner = ~leaf
    # Children come after their parent within the same tree: every walk ends at a leaf.
    for name, child in (("children_left", left), ("children_right", right)):
        bad = inner & ((child <= local) | (child >= size))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _Bad(f"array {name!r}: node {i} points to node {int(child[i])} outside its tree "
                       "or before itself")
    bad = inner & ((feat < 0) | (feat >= n_features))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _Bad(f"array 'feature': node {i} splits on feature {int(feat[i])}; "
                   f"the model has {n_features} kept feature(s)")
    if not np.isfinite(thr[inner]).all():
        raise _Bad("array 'threshold' has non-finite split thresholds")
    fl = frac[leaf]
    if not (np.isfinite(fl).all() and (fl >= 0).all() and (fl <= 1).all()
            and np.allclose(fl.sum(axis=1), 1.0, rtol=0, atol=1e-9)):
        raise _Bad("array 'leaf_fraction': leaf class fractions must be in [0, 1] and sum to 1")
