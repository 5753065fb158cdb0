"""Configuration files: every parameter of ``smlmspine run`` and ``smlmspine batch`` in TOML.

A configuration is a nested dict with three sections, whose keys are the long options of
the command line without the dashes (``--alpha-nm`` -> ``alpha_nm``; a ``--no-X`` flag is
``X = false``):

- ``[read]``: how each input file is read (``format``, ``pixel_size_nm``, ``map``,
  ``coordinate_unit``, ``keep_invalid``, ``z_scale``, ``position_unit``);
- ``[run]``: the stages of :func:`smlmspine.pipeline.run` (``label``, ``drift``,
  ``segment_frames``, ``merge``, ``method``, ``alpha_nm``, ``mesh_format``, ``step_nm``,
  ``neck_surface``, ``workers``);
- ``[batch]``: how :func:`smlmspine.batch` distributes files (``workers``, ``retries``,
  ``scheduler``); ignored by ``smlmspine run``.

A key whose default is "none" (``segment_frames``, ``pixel_size_nm``, ...) is absent from
the file (TOML has no null); :func:`to_toml` writes it as a commented-out line.
:func:`load_config` reads a file with the standard library's ``tomllib`` and refuses an
unknown section or key, or a value of the wrong kind, with one line naming the key and the file.

Examples
--------
>>> cfg = check_config({"run": {"drift": "none", "alpha_nm": 80}})
>>> cfg["run"]["drift"], cfg["run"]["alpha_nm"], cfg["run"]["label"]
('none', 80.0, 'membrane')
>>> check_config({"run": {"alfa_nm": 80}}, source="run.toml")
Traceback (most recent call last):
...
smlmspine.errors.ParameterError: run.toml: unknown key 'run.alfa_nm'; known keys of [run]: label, drift, segment_frames, merge, method, alpha_nm, mesh_format, step_nm, neck_surface, workers
>>> check_config(tomllib.loads(to_toml(default_config()))) == default_config()
True
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib
from pathlib import Path

from ._labels import LABELS
from ._validate import integer, positive, workers
from .errors import FormatError, ParameterError

__all__ = ["default_config", "check_config", "load_config", "to_toml", "run_arguments",
           "parameters_hash", "config_from_run"]

#: Drift estimation methods of the pipeline (``"none"`` skips the stage).
DRIFT_METHODS = ("aim", "rcc", "fiducial", "none")
#: Surface reconstructions the pipeline accepts.
ENVELOPE_METHODS = ("auto", "alpha", "shell", "poisson", "voxel")
#: Mesh file formats the pipeline writes.
MESH_FORMATS = ("ply", "obj", "stl", "glb")


def _choice(choices):
    def check(value, name):
        if not isinstance(value, str) or value not in choices:
            raise ParameterError(f"{name} must be one of {', '.join(map(repr, choices))}, "
                                 f"got {value!r}")
        return value
    return check


def _boolean(value, name):
    if not isinstance(value, bool):
        raise ParameterError(f"{name} must be true or false, got {value!r}")
    return value


def _text(value, name):
    if not isinstance(value, str) or not value:
        raise ParameterError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _number(check, **options):
    def convert(value, name):
        if isinstance(value, (str, bool)):  # TOML has numbers: "80" is a mistake
            raise ParameterError(f"{name} must be a number, got {value!r}")
        return check(value, name, **options)
    return convert


def _alpha(value, name):
    if value == "auto":
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value) and value > 0:
        return float(value)
    raise ParameterError(f"{name} must be a positive number in nm or \"auto\", got {value!r}")


def _mapping(value, name):
    if not isinstance(value, dict) or not value or not all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()):
        raise ParameterError(f"{name} must be a table of column = \"source column\" "
                             f"(e.g. {{ x = \"X_pos\", y = \"Y_pos\" }}), got {value!r}")
    return dict(value)


def _scheduler(value, name):
    value = _text(value, name)
    if "://" not in value:
        raise ParameterError(f"{name} must be a scheduler address such as "
                             f"\"tcp://host:8786\", got {value!r}")
    return value


# section -> key -> (default, check, example written for a commented-out default, comment)
_SPEC = {
    "read": {
        "format": (None, _text, "thunderstorm", "input format; default: detected from each file"),
        "pixel_size_nm": (None, _number(positive, unit="nm"), 160.0,
                          "pixel-unit files that do not store one; never guessed"),
        "map": (None, _mapping, {"x": "X_pos", "y": "Y_pos", "z": "Z_pos"},
                "generic CSV/TSV column mapping (--map)"),
        "coordinate_unit": (None, _text, "nm", "unit of x/y/z when the header states none"),
        "keep_invalid": (False, _boolean, None, "MINFLUX: keep localizations flagged invalid"),
        "z_scale": (None, _number(positive), 0.7, "MINFLUX: axial foreshortening factor"),
        "position_unit": (None, _choice(("nm", "um", "m")), "nm",
                          "MINFLUX MATLAB export: unit of pos when the file states none"),
        "chunk_rows": (None, _number(integer, minimum=1), 2000000,
                       "Parquet/Arrow: read, drift-correct and merge in frame windows of about "
                       "N localizations; default: only when the file exceeds the memory budget"),
    },
    "run": {
        "label": ("membrane", _choice(LABELS), None, "membrane or volume"),
        "drift": ("aim", _choice(DRIFT_METHODS), None, "aim, rcc, fiducial or none"),
        "segment_frames": (None, _number(integer, minimum=1), 1000,
                           "drift segment length in frames; default: the method's choice"),
        "merge": (True, _boolean, None, "merge blinks / average traces (--no-merge: false)"),
        "method": ("auto", _choice(ENVELOPE_METHODS), None, "auto, alpha, shell, poisson or voxel"),
        "alpha_nm": ("auto", _alpha, None, "alpha radius in nm, or \"auto\""),
        "mesh_format": ("ply", _choice(MESH_FORMATS), None, "ply, obj, stl or glb"),
        "step_nm": (10.0, _number(positive, unit="nm"), None, "cross-section spacing, nm"),
        "neck_surface": (True, _boolean, None, "refit membrane necks (--no-neck-surface: false)"),
        "workers": (-1, _number(workers), None,
                    "envelope processes per file (-1: all cores; batch: 1); no effect on results"),
    },
    "batch": {
        "workers": (None, _number(integer, minimum=1), 2,
                    "Dask worker processes of the local cluster; default: one per core"),
        "retries": (2, _number(integer, minimum=0), None,
                    "times a file is retried when its worker dies"),
        "scheduler": (None, _scheduler, "tcp://host:8786",
                      "an existing Dask scheduler; default: a local cluster"),
    },
}

#: Keys that do not change any result (left out of :func:`parameters_hash`): ``chunk_rows``
#: only changes how a file is read (docs/batch.md: the drift sample of files over 4e6 rows).
_NO_EFFECT = {("run", "workers"), ("read", "chunk_rows")}


def default_config() -> dict:
    """The default configuration (what ``smlmspine run --print-config`` prints).

    Returns
    -------
    dict
        ``{"read": {...}, "run": {...}, "batch": {...}}``, a fresh copy; keys whose
        default is "none" hold ``None``.

    Examples
    --------
    >>> default_config()["run"]["drift"]
    'aim'
    """
    return {section: {key: copy.deepcopy(spec[0]) for key, spec in keys.items()}
            for section, keys in _SPEC.items()}


def check_config(config, *, source: str = "configuration") -> dict:
    """Validate a (partial) configuration and complete it with the defaults.

    Parameters
    ----------
    config : mapping
        ``{section: {key: value}}``; missing sections and keys take their defaults,
        ``None`` means the default too.
    source : str
        What to name in an error message (the file).

    Returns
    -------
    dict
        The complete configuration, values converted (numbers as float or int).

    Raises
    ------
    ParameterError
        An unknown section or key, or a value of the wrong kind: one line naming
        ``source`` and the key.

    Examples
    --------
    >>> check_config({"run": {"step_nm": -1}}, source="a.toml")
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: a.toml: run.step_nm must be a positive finite number in nm, got -1
    """
    out = default_config()
    if not isinstance(config, dict):
        raise ParameterError(f"{source}: expected a table of sections "
                             f"[{'], ['.join(_SPEC)}], got {type(config).__name__}")
    for section, values in config.items():
        if section not in _SPEC:
            raise ParameterError(f"{source}: unknown section [{section}]; known sections: "
                                 + ", ".join(f"[{s}]" for s in _SPEC))
        if not isinstance(values, dict):
            raise ParameterError(f"{source}: {section} must be a section [{section}], "
                                 f"got {values!r}")
        for key, value in values.items():
            spec = _SPEC[section].get(key)
            if spec is None:
                raise ParameterError(f"{source}: unknown key '{section}.{key}'; known keys of "
                                     f"[{section}]: {', '.join(_SPEC[section])}")
            if value is None:
                continue
            try:
                out[section][key] = spec[1](value, f"{section}.{key}")
            except ParameterError as exc:
                raise ParameterError(f"{source}: {exc}") from None
    return out


def load_config(path) -> dict:
    """Read a TOML configuration file (the standard library's ``tomllib``) and validate it.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    dict
        The complete configuration (:func:`check_config`).

    Raises
    ------
    FormatError
        The file cannot be read or is not TOML.
    ParameterError
        An unknown section or key, or a value of the wrong kind.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError("configuration file does not exist", path=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"cannot read the configuration: {exc}", path=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"not a TOML file: {exc}", path=path) from None
    return check_config(data, source=str(path))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_key(key: str) -> str:
    ok = key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key)
    return key if ok else json.dumps(key)


def to_toml(config) -> str:
    """A configuration as a TOML document, one commented line per key.

    Parameters
    ----------
    config : mapping
        A configuration (validated with :func:`check_config` first).

    Returns
    -------
    str
        TOML text; :func:`load_config` of it gives the same configuration. Keys set to
        ``None`` (the default "none") are written as comments with an example value.

    Examples
    --------
    >>> [line for line in to_toml({"run": {"drift": "none"}}).splitlines() if line.startswith("drift")]
    ['drift = "none"                  # aim, rcc, fiducial or none']
    """
    config = check_config(config)
    lines = ["# smlmspine configuration (smlmspine run --config FILE, smlmspine batch --config FILE).",
             "# Keys are the command-line options without dashes (--alpha-nm -> alpha_nm;",
             "# --no-merge -> merge = false). Options given on the command line override the file.",
             ""]
    for section, keys in _SPEC.items():
        lines.append(f"[{section}]")
        for key, (_default, _check, example, comment) in keys.items():
            value = config[section][key]
            if value is None:
                text = f"# {key} = {_toml_value(example)}"
            else:
                text = f"{key} = {_toml_value(value)}"
            lines.append(f"{text:<32}# {comment}" if len(text) < 32 else f"{text}  # {comment}")
        lines.append("")
    return "\n".join(lines)


def run_arguments(config) -> dict:
    """Keyword arguments of :func:`smlmspine.pipeline.run` from a configuration.

    Parameters
    ----------
    config : mapping
        A configuration (validated with :func:`check_config` first).

    Returns
    -------
    dict
        ``label``, ``drift``, ..., ``workers``, ``pixel_size_nm`` and the reader options
        that differ from the reader's default (``format``, ``mapping``, ...).

    Examples
    --------
    >>> args = run_arguments({"read": {"map": {"x": "X"}}, "run": {"merge": False}})
    >>> args["merge"], args["mapping"], "format" in args
    (False, {'x': 'X'}, False)
    """
    cfg = check_config(config)
    args = dict(cfg["run"])
    read = cfg["read"]
    args["pixel_size_nm"] = read["pixel_size_nm"]
    names = {"format": "format", "map": "mapping", "coordinate_unit": "coordinate_unit",
             "z_scale": "z_scale", "position_unit": "position_unit"}
    for key, name in names.items():
        if read[key] is not None:
            args[name] = read[key]
    if read["keep_invalid"]:
        args["keep_invalid"] = True
    if read["chunk_rows"] is not None:
        args["chunk_rows"] = read["chunk_rows"]
    return args


def config_from_run(parameters) -> dict:
    """The configuration of a call of :func:`smlmspine.pipeline.run` (the inverse of
    :func:`run_arguments`), as recorded in ``run.json``.

    Parameters
    ----------
    parameters : mapping
        ``label``, ``drift``, ... as :func:`smlmspine.pipeline.run` records them
        (``read_options`` a mapping of reader options, ``pixel_size_nm`` beside them).

    Returns
    -------
    dict
        A complete configuration (``[batch]`` at its defaults).

    Examples
    --------
    >>> config_from_run({"drift": "none", "read_options": {"mapping": {"x": "X"}}})["read"]["map"]
    {'x': 'X'}
    """
    params = dict(parameters)
    read_options = dict(params.pop("read_options", None) or {})
    read = {"pixel_size_nm": params.pop("pixel_size_nm", None),
            "chunk_rows": params.pop("chunk_rows", None)}
    names = {"format": "format", "mapping": "map", "coordinate_unit": "coordinate_unit",
             "z_scale": "z_scale", "position_unit": "position_unit",
             "keep_invalid": "keep_invalid"}
    for name, value in read_options.items():
        if name not in names:
            raise ParameterError(f"reader option {name!r} has no configuration key; "
                                 f"known: {', '.join(names)}")
        read[names[name]] = value
    run = {k: v for k, v in params.items() if k in _SPEC["run"]}
    return check_config({"read": read, "run": run}, source="run parameters")


def parameters_hash(config) -> str:
    """SHA-256 (hex) of every parameter that can change a result: ``[read]`` and
    ``[run]`` but not ``run.workers``, ``read.chunk_rows`` nor ``[batch]``.

    Parameters
    ----------
    config : mapping
        A configuration.

    Returns
    -------
    str
        64 hexadecimal digits; equal configurations give equal hashes.

    Examples
    --------
    >>> a = parameters_hash({"run": {"workers": 1}})
    >>> a == parameters_hash({"run": {"workers": 2}}), a == parameters_hash({"run": {"drift": "rcc"}})
    (True, False)
    """
    cfg = check_config(config)
    relevant = {section: {k: v for k, v in cfg[section].items() if (section, k) not in _NO_EFFECT}
                for section in ("read", "run")}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
