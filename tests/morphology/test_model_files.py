"""Classifier model files: JSON data that predicts exactly as the fitted forest; pickles refused."""

import base64
import hashlib
import json
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smlmspine.cli import main
from smlmspine.errors import FormatError, ParameterError
from smlmspine.morphology import (ML_FEATURES, ClassifierModel, classify_table, load_model, save_model,
                                  train_classifier)

# Class centres: (neck, head, length) in nm.
CENTRES = {"thin": (80, 250, 1200), "mushroom": (200, 700, 1200), "stubby": (450, 480, 500),
           "filopodium": (90, 120, 1900)}


def _features(n_per_class, seed, *, nan_fraction=0.0):
    """A features table of spines around each class centre (+ labels)."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for cls, (neck, head, length) in CENTRES.items():
        for _ in range(n_per_class):
            n, h, L = (v * rng.uniform(0.7, 1.3) for v in (neck, head, length))
            row = {"spine_id": len(rows), "length_nm": L, "neck_min_diameter_nm": n,
                   "neck_mean_diameter_nm": n * rng.uniform(1.0, 1.2), "neck_length_nm": L * rng.uniform(0.3, 0.6),
                   "head_diameter_nm": h, "head_volume_um3": (h / 1000) ** 3 * 0.5,
                   "volume_um3": (h / 1000) ** 3 * rng.uniform(0.5, 0.8),
                   "surface_area_um2": (h / 1000) ** 2 * rng.uniform(2.5, 3.5),
                   "convex_hull_ratio": rng.uniform(0.6, 0.95), "head_neck_ratio": h / n,
                   "open_angle_deg": rng.uniform(0, 10), "cvd": rng.uniform(0, 0.5), "n_tips": 1}
            for k in ML_FEATURES:
                if rng.random() < nan_fraction:
                    row[k] = None
            rows.append(row)
            labels.append(cls)
    return pa.Table.from_pylist(rows), labels


def _matrix(table):
    return np.column_stack([np.asarray(table.column(k).to_numpy(zero_copy_only=False), float)
                            for k in ML_FEATURES])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    table, labels = _features(15, seed=1, nan_fraction=0.05)
    model, report = train_classifier(table, labels, n_folds=3, rng=4)
    path = tmp_path_factory.mktemp("model") / "spines.json"
    save_model(model, path)
    return model, path


def test_loaded_model_predicts_exactly_as_the_fitted_pipeline(trained):
    model, path = trained
    loaded = load_model(path)
    assert loaded.features == ML_FEATURES and loaded.classes == tuple(sorted(CENTRES))
    assert loaded.n_trees == 200 and loaded.sklearn_pipeline is None
    held_out, truth = _features(40, seed=99, nan_fraction=0.1)
    X = _matrix(held_out)
    X[3, 0] = np.inf                                   # non-finite values are missing values
    X_sk = np.where(np.isfinite(X), X, np.nan)
    pipe = model.sklearn_pipeline
    expected = pipe.predict(X_sk)
    np.testing.assert_array_equal(loaded.predict(X), expected)
    np.testing.assert_array_equal(model.predict(X), expected)
    # Bit-identical probabilities, not merely the same argmax.
    assert np.array_equal(loaded.predict_proba(X), pipe.predict_proba(X_sk))
    # The model is a real classifier on held-out spines (the test can fail).
    assert np.mean(expected == np.array(truth)) > 0.8
    out = classify_table(held_out, model=loaded)
    sk_table = pipe.predict(np.where(np.isfinite(_matrix(held_out)), _matrix(held_out), np.nan))
    assert out.column("spine_class").to_pylist() == [str(v) for v in sk_table]


def test_prediction_in_chunks_is_identical(trained, monkeypatch):
    """predict_proba walks the trees over sample chunks (bounded memory): same bits."""
    import smlmspine.morphology._model as model_module

    model, path = trained
    X = _matrix(_features(25, seed=12, nan_fraction=0.1)[0])
    whole = load_model(path).predict_proba(X)
    monkeypatch.setattr(model_module, "_WALK_ENTRIES", 200 * 7)   # chunks of 7 samples
    assert np.array_equal(load_model(path).predict_proba(X), whole)
    assert np.array_equal(whole, model.sklearn_pipeline.predict_proba(X))
    with pytest.raises(ParameterError, match="12 feature columns"):
        model.predict_proba(X[:, :5])


def test_feature_without_training_values_is_dropped_as_sklearn_does(tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    table, labels = _features(10, seed=5)
    X = _matrix(table)
    X[:, 4] = np.nan                                   # head_diameter_nm never measured
    pipe = make_pipeline(SimpleImputer(strategy="median"), RandomForestClassifier(n_estimators=25,
                                                                                  random_state=2))
    with pytest.warns(UserWarning, match="without any observed values"):
        pipe.fit(X, labels)
    save_model(ClassifierModel.from_pipeline(pipe, ML_FEATURES), tmp_path / "m.json")
    loaded = load_model(tmp_path / "m.json")
    assert np.isnan(loaded.medians[4]) and np.isfinite(np.delete(loaded.medians, 4)).all()
    test, _ = _features(20, seed=6, nan_fraction=0.2)
    Xt = _matrix(test)
    with pytest.warns(UserWarning, match="without any observed values"):
        expected_proba, expected = pipe.predict_proba(Xt), pipe.predict(Xt)
    assert np.array_equal(loaded.predict_proba(Xt), expected_proba)
    np.testing.assert_array_equal(loaded.predict(Xt), expected)


def test_other_estimators_are_not_saved():
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    table, labels = _features(4, seed=1)
    pipe = make_pipeline(SimpleImputer(strategy="median"), ExtraTreesClassifier(n_estimators=3))
    pipe.fit(_matrix(table), labels)
    with pytest.raises(ParameterError, match="RandomForestClassifier"):
        ClassifierModel.from_pipeline(pipe, ML_FEATURES)


class _RunsCode:
    """Unpickling this calls exec(): writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"__import__('pathlib').Path({self.marker!r}).write_text('code ran')",))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_model_is_refused_and_never_unpickled(tmp_path, capsys, protocol):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "shared_model.pkl"
    evil.write_bytes(pickle.dumps({"pipeline": _RunsCode(marker)}, protocol=protocol))
    with pytest.raises(FormatError, match="pickle") as exc:
        load_model(evil)
    assert str(exc.value).startswith(str(evil))
    assert not marker.exists()
    table, _ = _features(2, seed=0)
    pq.write_table(table, tmp_path / "f.parquet")
    rc = main(["classify", str(tmp_path / "f.parquet"), "--model", str(evil), "-o", str(tmp_path / "c.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(evil) in err and "pickle" in err
    assert not marker.exists() and not (tmp_path / "c.parquet").exists()
    # The payload is live: an ordinary unpickler would have run it.
    pickle.loads(evil.read_bytes())
    assert marker.read_text() == "code ran"


def _rewrite(path, doc, *, rehash=True):
    """Write ``doc`` back; ``rehash``: with a valid checksum (a deliberate edit, not damage)."""
    if rehash and isinstance(doc, dict):
        body = {k: v for k, v in doc.items() if k != "sha256"}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
        doc = {**doc, "sha256": hashlib.sha256(canonical.encode()).hexdigest()}
    path.write_text(json.dumps(doc))


def _set_array(doc, name, fn):
    spec = doc["arrays"][name]
    arr = np.frombuffer(base64.b64decode(spec["base64"]), dtype=spec["dtype"]).copy()
    fn(arr)
    spec["base64"] = base64.b64encode(arr.tobytes()).decode()


def _first_inner(doc):
    spec = doc["arrays"]["children_left"]
    left = np.frombuffer(base64.b64decode(spec["base64"]), dtype=spec["dtype"])
    return int(np.flatnonzero(left != -1)[0])


TAMPER = {
    "empty file": (lambda p, d: p.write_bytes(b""), "JSON object expected"),
    "truncated": (lambda p, d: p.write_text(json.dumps(d)[:5000]), "malformed JSON"),
    "utf-16": (lambda p, d: p.write_text(json.dumps(d), encoding="utf-16"), "JSON object expected"),
    "latin-1 byte": (lambda p, d: p.write_bytes(json.dumps(d).replace('"thin"', '"th\u00efn"')
                                                .encode("latin-1")), "not UTF-8"),
    "top-level list": (lambda p, d: p.write_text("[1, 2]"), "JSON object expected"),
    "deep nesting": (lambda p, d: p.write_text('{"a": ' + "[" * 200000 + "]" * 200000 + "}"),
                     "nested too deeply|not a smlmspine model"),
    "other format": (lambda p, d: _rewrite(p, {**d, "format": "sklearn-pickle"}), "not a smlmspine model"),
    "newer version": (lambda p, d: _rewrite(p, {**d, "format_version": 99}), "newer smlmspine"),
    "version as text": (lambda p, d: _rewrite(p, {**d, "format_version": "1"}), "must be an integer"),
    "no features": (lambda p, d: _rewrite(p, {k: v for k, v in d.items() if k != "features"}),
                    "missing key 'features'"),
    "repeated class": (lambda p, d: _rewrite(p, {**d, "classes": ["thin"] * len(d["classes"])}),
                       "repeated names"),
    "NaN median": (lambda p, d: p.write_text(json.dumps(d).replace('"imputer_medians": [', '"imputer_medians": [NaN, ', 1)),
                   "NaN is not allowed|malformed JSON"),
    "huge declared size": (lambda p, d: _rewrite(p, {**d, "node_counts": [10 ** 15] * len(d["node_counts"])}),
                           "must have shape"),
    "edited median": (lambda p, d: _rewrite(p, {**d, "imputer_medians": [1.0] * len(d["imputer_medians"])},
                                          rehash=False), "checksum"),
    "no checksum": (lambda p, d: _rewrite(p, {k: v for k, v in d.items() if k != "sha256"}, rehash=False),
                    "checksum"),
    "flipped threshold byte": (lambda p, d: (_set_array(d, "threshold", lambda a: a.view(np.uint8).__setitem__(
        8 * _first_inner(d) + 3, a.view(np.uint8)[8 * _first_inner(d) + 3] ^ 0x10)), _rewrite(p, d, rehash=False)),
        "checksum"),
    "child loops back": (lambda p, d: (_set_array(d, "children_left", lambda a: a.__setitem__(_first_inner(d), 0)),
                                       _rewrite(p, d)), "outside its tree or before itself"),
    "feature out of range": (lambda p, d: (_set_array(d, "feature", lambda a: a.__setitem__(_first_inner(d), 40)),
                                           _rewrite(p, d)), "splits on feature 40"),
    "negative fraction": (lambda p, d: (_set_array(d, "leaf_fraction", lambda a: a.__setitem__(
        slice(None), -np.abs(a))), _rewrite(p, d)), "leaf class fractions"),
    "wrong dtype": (lambda p, d: (d["arrays"]["threshold"].__setitem__("dtype", "|O"), _rewrite(p, d)),
                    "dtype <f8"),
    "bad base64": (lambda p, d: (d["arrays"]["feature"].__setitem__("base64", "!" + d["arrays"]["feature"]["base64"][1:]),
                                 _rewrite(p, d)), "invalid base64"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_malformed_or_tampered_model_gives_one_clear_error(trained, tmp_path, capsys, case):
    _, good = trained
    doc = json.loads(good.read_text())
    bad = tmp_path / "model.json"
    mutate, message = TAMPER[case]
    mutate(bad, doc)
    with pytest.raises(FormatError, match=message) as exc:
        load_model(bad)
    assert str(exc.value).startswith(str(bad))
    table, _ = _features(2, seed=0)
    pq.write_table(table, tmp_path / "f.parquet")
    rc = main(["classify", str(tmp_path / "f.parquet"), "--model", str(bad), "-o", str(tmp_path / "c.parquet")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and str(bad) in err
    assert not (tmp_path / "c.parquet").exists()


def test_missing_model_file_and_missing_feature_columns(trained, tmp_path):
    model, path = trained
    with pytest.raises(FormatError, match="no such model file"):
        load_model(tmp_path / "nope.json")
    table, _ = _features(2, seed=0)
    with pytest.raises(ParameterError, match="cvd"):
        classify_table(table.drop_columns(["cvd"]), model=load_model(path))
    with pytest.raises(ParameterError, match="ClassifierModel"):
        classify_table(table, model={"pipeline": None})


def test_train_cli_writes_a_json_model_and_nothing_else(tmp_path, capsys):
    table, labels = _features(6, seed=2)
    pq.write_table(table, tmp_path / "features.parquet")
    pq.write_table(pa.table({"spine_id": table.column("spine_id"), "label": labels}), tmp_path / "labels.parquet")
    (tmp_path / "labels.csv").write_text("spine_id,label\n" + "".join(
        f"{i},{c}\n" for i, c in zip(table.column("spine_id").to_pylist(), labels)))
    out = tmp_path / "model.json"
    assert main(["train", str(tmp_path / "features.parquet"), "--labels", str(tmp_path / "labels.csv"),
                 "-o", str(out), "--folds", "3"]) == 0
    capsys.readouterr()
    doc = json.loads(out.read_text())
    assert doc["format"] == "smlmspine-classifier" and doc["format_version"] == 1
    assert doc["features"] == list(ML_FEATURES) and doc["classes"] == sorted(CENTRES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.parquet", "labels.csv",
                                                          "labels.parquet", "model.json"]
    assert main(["classify", str(tmp_path / "features.parquet"), "--model", str(out),
                 "-o", str(tmp_path / "classes.parquet")]) == 0
    pred = pq.read_table(tmp_path / "classes.parquet").column("spine_class").to_pylist()
    assert np.mean(np.array(pred) == np.array(labels)) > 0.9


def test_random_damage_is_refused_or_harmless(trained, tmp_path):
    """400 single-bit flips anywhere in a model file: a FormatError, or identical predictions."""
    model, good = trained
    raw = good.read_bytes()
    X = _matrix(_features(10, seed=7, nan_fraction=0.1)[0])
    expected = model.predict_proba(X)
    rng = np.random.default_rng(11)
    loaded_ok = 0
    for i in range(400):
        b = bytearray(raw)
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
        bad = tmp_path / f"m{i}.json"
        bad.write_bytes(bytes(b))
        try:
            m = load_model(bad)
        except FormatError as exc:
            assert str(exc).startswith(str(bad)) and "\n" not in str(exc)
            continue
        loaded_ok += 1   # a flip in layout whitespace only
        assert np.array_equal(m.predict_proba(X), expected), f"byte {pos} changed predictions silently"
    assert loaded_ok < 40
