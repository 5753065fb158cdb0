"""No public function or public method takes more than 15 parameters (issue #16).

"Public" as in ``tests/test_docstrings.py``: the functions and classes exported through
the ``__all__`` of a public module (a module path with no ``_``-prefixed part), and the
public methods (no leading ``_``) defined on those classes. Counted: every parameter of
the signature except ``self``/``cls`` and ``*args``/``**kwargs``. Long signatures are
grouped into frozen parameter dataclasses instead (``smlmspine.simulate.Geometry``,
``MinfluxSample``, ``SynapsePopulations``, ...).

Class constructors are not counted: the classes with more than 15 constructor arguments
are frozen result records the package fills in (``coupling.SodaResult``,
``coupling.RipleyResult``, ``morphology.SpineMeasurement``), not settings a caller passes.
At commit 1e0a39a this test listed ``simulate.minflux_traces`` (19) and
``simulate.synapses.synapses`` (18).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import smlmspine

MAX_PARAMETERS = 15


def public_modules() -> list[str]:
    names = ["smlmspine"]
    for info in pkgutil.walk_packages(smlmspine.__path__, "smlmspine."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def counted_parameters(func, *, bound: bool = False) -> list[str]:
    """Names of the parameters that count (``bound``: the first one is self/cls)."""
    params = list(inspect.signature(func).parameters.values())
    if bound and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [p.name for p in params
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def _public_methods(cls):
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, staticmethod):
            yield name, value.__func__, False
        elif isinstance(value, classmethod):
            yield name, value.__func__, True
        elif isinstance(value, property):
            continue
        elif inspect.isfunction(value):
            yield name, value, True


def public_callables() -> dict[str, tuple[object, bool]]:
    """``{qualified public name: (function, bound)}`` of every public function and method."""
    found: dict[int, tuple[str, object, bool]] = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            obj = getattr(obj, "py_func", obj)  # numba dispatchers
            if not getattr(obj, "__module__", "").startswith("smlmspine"):
                continue
            if inspect.isfunction(obj):
                found.setdefault(id(obj), (f"{module_name}.{attr}", obj, False))
            elif inspect.isclass(obj):
                for name, func, bound in _public_methods(obj):
                    found.setdefault(id(func), (f"{module_name}.{attr}.{name}", func, bound))
    return {name: (func, bound) for name, func, bound in found.values()}


def too_long(callables) -> list[str]:
    lines = []
    for name, (func, bound) in sorted(callables.items()):
        params = counted_parameters(func, bound=bound)
        if len(params) > MAX_PARAMETERS:
            lines.append(f"{name}: {len(params)} parameters ({', '.join(params)})")
    return lines


def test_no_public_function_takes_more_than_15_parameters():
    problems = too_long(public_callables())
    assert not problems, (f"{len(problems)} public function(s)/method(s) with more than "
                          f"{MAX_PARAMETERS} parameters (group them into frozen dataclasses):\n  "
                          + "\n  ".join(problems))


def test_the_walk_reaches_every_stage_and_methods():
    """A broken walk would make the test above vacuous."""
    from smlmspine import coupling, drift, io, simulate
    from smlmspine.simulate import synapses

    names = public_callables()
    assert len(names) > 150
    functions = {func for func, _ in names.values()}
    for expected in (simulate.dendrite, simulate.minflux_traces, synapses.synapses, coupling.soda,
                     io.read, drift.correct, simulate.MinfluxSimulation.write,
                     synapses.SynapseSimulation.localizations):
        assert expected in functions, expected
    for stage in ("io", "drift", "cluster", "envelope", "morphology", "coupling", "simulate"):
        assert any(n.startswith(f"smlmspine.{stage}.") for n in names), stage
    # nothing private
    assert not any(part.startswith("_") for n in names for part in n.split("."))


def _sixteen(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, *args, **kwargs):
    pass


def _fifteen(a, b, c, d, e, f, g, h, i, j, k, l, m, n, *, o, **kwargs):
    pass


class _Holder:
    def method(self, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o):  # 15 without self
        pass

    @classmethod
    def build(cls, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p):  # 16 without cls
        pass

    @staticmethod
    def helper(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p):  # 16, no self
        pass


def test_the_count_skips_self_cls_args_kwargs_and_flags_sixteen():
    holder = {name: (func, bound) for name, func, bound in _public_methods(_Holder)}
    found = too_long({"sixteen": (_sixteen, False), "fifteen": (_fifteen, False),
                      **{f"_Holder.{n}": v for n, v in holder.items()}})
    assert [line.split(":")[0] for line in found] == ["_Holder.build", "_Holder.helper", "sixteen"]
    assert "16 parameters (a, b," in found[-1]
