"""One validation layer for numeric parameters, shared by the API and the CLI.

Every check names the parameter (``step_nm`` in the API, ``--step-nm`` on the command
line), says what was expected and what was found, and raises
:class:`~smlmspine.errors.ParameterError`. :func:`cli_type` turns any of them into an
``argparse`` ``type=`` so the command line refuses a bad option before any work starts.

Resource budget: functions whose memory grows with a parameter (a step, a ring width,
a grid cell) estimate the bytes they would allocate and call :func:`check_memory`
*before* allocating. The budget is a quarter of the machine's physical memory, at least
:data:`DEFAULT_MEMORY_BUDGET_GB` (1 GB), of the arrays that parameter implies (6 GB on a
24 GB machine); set it with the environment variable ``SMLMSPINE_MEMORY_BUDGET_GB``
(e.g. ``SMLMSPINE_MEMORY_BUDGET_GB=8``).

Examples
--------
>>> positive(2.5, "step_nm")
2.5
>>> positive(float("nan"), "step_nm")
Traceback (most recent call last):
...
smlmspine.errors.ParameterError: step_nm must be a positive finite number, got nan
>>> integer(3, "folds", minimum=2)
3
"""

from __future__ import annotations

import math
import numbers
import os

from .errors import ParameterError

__all__ = ["finite", "positive", "non_negative", "in_range", "integer", "workers",
           "memory_budget_bytes", "check_memory", "check_count", "cli_type",
           "DEFAULT_MEMORY_BUDGET_GB", "DEFAULT_MEMORY_SHARE", "MEMORY_BUDGET_ENV", "MAX_WORKERS",
           "physical_memory_bytes"]

#: Smallest default budget of the arrays a parameter implies, in GB (10^9 bytes); the
#: default is a quarter of the machine's physical memory when that is more.
DEFAULT_MEMORY_BUDGET_GB = 1.0
#: Share of the machine's physical memory the default budget takes.
DEFAULT_MEMORY_SHARE = 0.25
#: Environment variable that raises (or lowers) the budget, in GB.
MEMORY_BUDGET_ENV = "SMLMSPINE_MEMORY_BUDGET_GB"


def _invalid(name, expected, value) -> ParameterError:
    """A ParameterError that also remembers the expectation (for the CLI wording)."""
    shown = value if isinstance(value, str) else repr(value)
    head = f"{name} must be" if name else "must be"
    exc = ParameterError(f"{head} {expected}, got {shown}")
    exc.expected = expected
    return exc


def _number(value, name, expected) -> float:
    if isinstance(value, bool) or value is None:
        raise _invalid(name, expected, value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise _invalid(name, expected, value) from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _invalid(name, expected, value) from None


def _unit(unit: str) -> str:
    return f" in {unit}" if unit else ""


def finite(value, name: str, *, allow_none: bool = False, unit: str = ""):
    """``value`` as a finite float (``None`` passes through with ``allow_none``).

    >>> finite("-3", "shift_nm")
    -3.0
    """
    if value is None and allow_none:
        return None
    v = _number(value, name, f"a finite number{_unit(unit)}")
    if not math.isfinite(v):
        raise _invalid(name, f"a finite number{_unit(unit)}", value)
    return v


def positive(value, name: str, *, allow_none: bool = False, unit: str = ""):
    """``value`` as a finite float > 0 (subnormal numbers are refused: below 1e-300).

    >>> positive(1e-320, "radius_nm")
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: radius_nm must be a positive finite number (>= 1e-300), got 1e-320
    """
    if value is None and allow_none:
        return None
    expected = f"a positive finite number{_unit(unit)}"
    v = _number(value, name, expected)
    if not (math.isfinite(v) and v > 0):
        raise _invalid(name, expected, value)
    if v < 1e-300:
        raise _invalid(name, expected + " (>= 1e-300)", value)
    return v


def non_negative(value, name: str, *, allow_none: bool = False, unit: str = ""):
    """``value`` as a finite float >= 0.

    >>> non_negative(0, "margin_nm")
    0.0
    """
    if value is None and allow_none:
        return None
    expected = f"a finite number >= 0{_unit(unit)}"
    v = _number(value, name, expected)
    if not (math.isfinite(v) and v >= 0):
        raise _invalid(name, expected, value)
    return v


def in_range(value, name: str, low: float, high: float, *, low_open: bool = False,
             high_open: bool = False, allow_none: bool = False, unit: str = ""):
    """``value`` as a float within ``[low, high]`` (``low_open``/``high_open``: strict).

    >>> in_range(0.5, "fraction", 0, 1)
    0.5
    """
    if value is None and allow_none:
        return None
    lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
    expected = f"a number in {lo}{low:g}, {high:g}{hi}{_unit(unit)}"
    v = _number(value, name, expected)
    ok = math.isfinite(v) or (math.isinf(v) and not high_open and v == high)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        raise _invalid(name, expected, value)
    return v


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None,
            allow_none: bool = False) -> int | None:
    """``value`` as an int within ``[minimum, maximum]`` (a float must be integral).

    >>> integer(0, "folds", minimum=2)
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: folds must be an integer >= 2, got 0
    """
    if value is None and allow_none:
        return None
    if minimum is not None and maximum is not None:
        expected = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    elif maximum is not None:
        expected = f"an integer <= {maximum}"
    else:
        expected = "an integer"
    if isinstance(value, bool) or value is None:
        raise _invalid(name, expected, value)
    if isinstance(value, numbers.Integral):
        v = int(value)
    else:
        if isinstance(value, str):
            try:
                v = int(value.strip())
            except ValueError:
                # an integral number written with an exponent ("1e6") is an integer too
                try:
                    if "e" not in value.lower():
                        raise ValueError(value)
                    f = float(value.strip())
                except ValueError:
                    raise _invalid(name, expected, value) from None
                if not (math.isfinite(f) and f == int(f)):
                    raise _invalid(name, expected, value) from None
                v = int(f)
        else:
            f = _number(value, name, expected)
            if not (math.isfinite(f) and f == int(f)):
                raise _invalid(name, expected, value)
            v = int(f)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise _invalid(name, expected, value)
    if not -2 ** 63 <= v < 2 ** 63:  # kernels take int64
        raise _invalid(name, expected + " that fits in 64 bits", value)
    return v


#: Most workers (processes or threads) accepted; more than cores only adds overhead.
MAX_WORKERS = 1024


def workers(value, name: str = "workers") -> int:
    """Worker count: ``-1`` (all cores) or an integer in ``[1, MAX_WORKERS]``.

    >>> workers(-1), workers(4)
    (-1, 4)
    """
    expected = f"-1 (all cores) or an integer in [1, {MAX_WORKERS}]"
    try:
        v = integer(value, name)
    except ParameterError:
        raise _invalid(name, expected, value) from None
    if v != -1 and not 1 <= v <= MAX_WORKERS:
        raise _invalid(name, expected, value)
    return v


def physical_memory_bytes() -> float | None:
    """The machine's physical memory in bytes (``None`` when the system does not say)."""
    try:
        total = float(os.sysconf("SC_PAGE_SIZE")) * float(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None
    return total if math.isfinite(total) and total > 0 else None


def memory_budget_bytes() -> float:
    """The memory budget in bytes: ``SMLMSPINE_MEMORY_BUDGET_GB``, else a quarter of the
    machine's physical memory (at least 1 GB)."""
    text = os.environ.get(MEMORY_BUDGET_ENV)
    if text is None or not text.strip():
        total = physical_memory_bytes()
        floor = DEFAULT_MEMORY_BUDGET_GB * 1e9
        return floor if total is None else max(floor, DEFAULT_MEMORY_SHARE * total)
    try:
        gb = float(text)
    except ValueError:
        gb = float("nan")
    if not (math.isfinite(gb) and gb > 0):
        raise ParameterError(f"environment variable {MEMORY_BUDGET_ENV} must be a positive "
                             f"number of GB, got {text!r}")
    return gb * 1e9


def _gb(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.3g} GB" if n_bytes >= 1e7 else f"{n_bytes / 1e6:.3g} MB"


def check_memory(n_bytes: float, *, what: str) -> None:
    """Refuse (:class:`ParameterError`) work whose arrays would exceed the budget.

    ``what`` says what would be allocated and which parameter drives it, e.g.
    ``"step_nm=1e-06: 6.5e8 cross-sections"``. Called before allocating.

    >>> check_memory(1e6, what="a small array")
    >>> check_memory(1e13, what="step_nm=1e-09: 1e12 sections")
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: step_nm=1e-09: 1e12 sections would need about 1e+04 GB, over the memory budget of 1 GB (raise it with SMLMSPINE_MEMORY_BUDGET_GB=...)
    """
    budget = memory_budget_bytes()
    if not (n_bytes <= budget):  # also refuses NaN/inf estimates
        need = f"about {_gb(n_bytes)}" if math.isfinite(n_bytes) else "more memory than exists"
        raise ParameterError(f"{what} would need {need}, over the memory budget of "
                             f"{_gb(budget)} (raise it with {MEMORY_BUDGET_ENV}=...)")


def check_count(n: float, bytes_each: float, *, what: str) -> None:
    """:func:`check_memory` for ``n`` items of ``bytes_each`` bytes (``n`` may be inf/NaN)."""
    n = float(n)
    if not math.isfinite(n):
        raise ParameterError(f"{what} is not a finite count ({n}); refused before allocating")
    check_memory(n * float(bytes_each), what=what)


def cli_type(check, **options):
    """An ``argparse`` ``type=`` that applies ``check(text, None, **options)``.

    A refusal becomes ``argparse.ArgumentTypeError``, so the parser prints
    ``argument --step-nm: must be a positive finite number, got 'nan'``.

    >>> cli_type(positive)("2")
    2.0
    """
    import argparse

    def convert(text):
        try:
            return check(text, None, **options)
        except ParameterError as exc:
            expected = getattr(exc, "expected", None)
            msg = str(exc) if expected is None else f"must be {expected}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert
