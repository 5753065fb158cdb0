"""Row filters on any table by simple, safely parsed expressions (``"cfr<0.8"``).

The grammar is deliberately small and parsed without ``eval``::

    expression := condition (("and" | "&" | "&&") condition)*
    condition  := COLUMN OP NUMBER | NUMBER OP COLUMN
    OP         := "<" | "<=" | ">" | ">=" | "==" | "!="
    NUMBER     := a decimal literal (``500``, ``-3.5``, ``1e4``) or ``inf`` / ``-inf``

Column names are identifiers (letters, digits, ``_``). A row passes when every condition
holds; a missing value (null or NaN) in a tested column never passes (so ``efo != 5``
drops rows whose ``efo`` is NaN). Works on every table: STORM columns
(``"photons>500"``), MINFLUX quality fields (``"cfr<0.8 and efo>1e4"``), cluster ids.

Examples
--------
>>> from smlmspine.schema import make_table
>>> t = make_table({"x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0], "photons": [100., 600., 900.]})
>>> filter_where(t, ["photons>500", "x <= 1"]).column("x").to_pylist()
[1.0]
>>> parse_where("cfr<0.8 & 1e4<efo")
(Condition(column='cfr', op='<', value=0.8), Condition(column='efo', op='>', value=10000.0))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa

from .errors import ParameterError
from .schema import with_history

__all__ = ["Condition", "parse_where", "where_mask", "filter_where", "OPERATORS"]

#: Supported comparison operators.
OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NUMBER = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?)"
_TOKEN = re.compile(rf"\s*(?:(?P<num>{_NUMBER})(?![A-Za-z_0-9])|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|"
                    r"(?P<op><=|>=|==|!=|<|>)|(?P<and>&&|&)|(?P<other>\S))")


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison ``column op value`` (the value is a float).

    Attributes
    ----------
    column : str
        Column name.
    op : {"<", "<=", ">", ">=", "==", "!="}
        Comparison operator (see :data:`OPERATORS`).
    value : float
        Right-hand side, in the column's unit (``inf`` allowed, never NaN).

    Examples
    --------
    >>> str(Condition("cfr", "<", 0.8))
    'cfr<0.8'
    """

    column: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.column}{self.op}{self.value:g}"


def _tokens(expr: str):
    pos = 0
    out = []
    text = expr.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "name" and value.lower() == "and":
            kind = "and"
        elif kind == "name" and value.lower() in ("inf", "infinity"):
            kind = "num"
        if kind == "other":
            raise ParameterError(f"malformed filter expression {expr!r}: unexpected character "
                                 f"{value!r} at position {m.start(kind) + 1}; expected e.g. "
                                 "'cfr<0.8' or 'photons>500 and efo>=1e4'")
        out.append((kind, value))
        pos = m.end()
    return out


def parse_where(expressions: str | Iterable[str]) -> tuple[Condition, ...]:
    """Parse one or more filter expressions into :class:`Condition` objects.

    Parameters
    ----------
    expressions : str or iterable of str
        Each is ``condition [and condition ...]``; several expressions are combined with
        *and* as well.

    Returns
    -------
    tuple of Condition
        The conditions in the order written, ``NUMBER OP COLUMN`` turned into
        ``COLUMN OP' NUMBER``.

    Raises
    ------
    ParameterError
        Naming the malformed expression and what was expected.

    Examples
    --------
    >>> [str(c) for c in parse_where(["photons>500 and frame>=100", "-inf<z"])]
    ['photons>500', 'frame>=100', 'z>-inf']
    >>> parse_where("cfr<")
    Traceback (most recent call last):
    ...
    smlmspine.errors.ParameterError: malformed filter expression 'cfr<': expected COLUMN OP NUMBER with OP one of <= >= == != < > (e.g. 'cfr<0.8'), got 'cfr <'
    """
    if isinstance(expressions, str):
        expressions = [expressions]
    conditions: list[Condition] = []
    for expr in expressions:
        if not isinstance(expr, str) or not expr.strip():
            raise ParameterError(f"empty filter expression {expr!r}; expected e.g. 'cfr<0.8'")
        toks = _tokens(expr)
        i = 0
        while True:
            part = toks[i:i + 3]
            kinds = [k for k, _ in part]
            if kinds == ["name", "op", "num"]:
                col, op, num = part[0][1], part[1][1], part[2][1]
            elif kinds == ["num", "op", "name"]:
                col, op, num = part[2][1], _FLIP[part[1][1]], part[0][1]
            else:
                got = " ".join(v for _, v in part) or "nothing"
                raise ParameterError(
                    f"malformed filter expression {expr!r}: expected COLUMN OP NUMBER with OP one "
                    f"of {' '.join(OPERATORS)} (e.g. 'cfr<0.8'), got {got!r}")
            value = float(num)
            if math.isnan(value):
                raise ParameterError(f"filter expression {expr!r}: comparing with NaN is never true")
            conditions.append(Condition(col, op, value))
            i += 3
            if i == len(toks):
                break
            if toks[i][0] != "and" or i + 1 == len(toks):
                raise ParameterError(f"malformed filter expression {expr!r}: conditions must be "
                                     f"joined with 'and' or '&', got {toks[i][1]!r}")
            i += 1
    return tuple(conditions)


def _column_values(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        raise ParameterError(f"filter on unknown column {name!r}; the table has columns "
                             f"{table.column_names}")
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or
            pa.types.is_boolean(col.type)):
        raise ParameterError(f"filter column {name!r} is {col.type}, not numeric")
    if col.null_count:
        col = col.cast(pa.float64()).fill_null(float("nan"))
    values = col.to_numpy()
    return values.astype(np.float64) if values.dtype == bool else values


def where_mask(table: pa.Table, where: str | Iterable[str] | Iterable[Condition]) -> np.ndarray:
    """Boolean mask of the rows that satisfy every condition.

    Parameters
    ----------
    table : pyarrow.Table
        Any table with the numeric (or boolean) columns the conditions name.
    where : str or iterable of str or iterable of Condition
        Expressions (see :func:`parse_where`) or :class:`Condition` objects; all must
        hold. A null or NaN value never satisfies a condition.

    Returns
    -------
    (N,) ndarray of bool
        ``True`` for the rows kept, ``N`` = the table's rows.

    Raises
    ------
    ParameterError
        Malformed expression, unknown or non-numeric column.

    Examples
    --------
    >>> from smlmspine.schema import make_table
    >>> t = make_table({"x": [0.0, 1.0, 2.0], "y": [0.0, 0.0, 0.0], "photons": [100., float("nan"), 900.]})
    >>> where_mask(t, "photons != 100").tolist()
    [False, False, True]
    """
    conditions: list[Condition] = []
    for item in [where] if isinstance(where, str) else where:
        if isinstance(item, Condition):
            conditions.append(item)
        else:
            conditions.extend(parse_where(item))
    mask = np.ones(table.num_rows, dtype=bool)
    for c in conditions:
        v = _column_values(table, c.column)
        with np.errstate(invalid="ignore"):
            if c.op == "<":
                m = v < c.value
            elif c.op == "<=":
                m = v <= c.value
            elif c.op == ">":
                m = v > c.value
            elif c.op == ">=":
                m = v >= c.value
            elif c.op == "==":
                m = v == c.value
            else:
                m = v != c.value
        if v.dtype.kind == "f":
            m &= ~np.isnan(v)
        mask &= m
    return mask


def filter_where(table: pa.Table, where: str | Iterable[str]) -> pa.Table:
    """Keep the rows that satisfy every expression; record the step in the history.

    Parameters
    ----------
    table : pyarrow.Table
        Any table (localizations, cluster statistics, ...).
    where : str or iterable of str
        Expressions such as ``"cfr<0.8"``, ``"photons>500 and frame>=100"``.

    Returns
    -------
    pyarrow.Table
        The kept rows, metadata kept, history step ``filter.where`` appended.

    Raises
    ------
    ParameterError
        Malformed expression, unknown or non-numeric column.

    Examples
    --------
    >>> from smlmspine.schema import history, make_table
    >>> t = make_table({"x": [0.0, 1.0], "y": [0.0, 0.0], "frame": [5, 200]})
    >>> out = filter_where(t, "frame>=100")
    >>> out.num_rows, history(out)[-1]["params"]["where"]
    (1, ['frame>=100'])
    """
    conditions = parse_where(where)
    mask = where_mask(table, conditions)
    out = table.filter(pa.array(mask))
    return with_history(out, "filter.where", {"where": [str(c) for c in conditions],
                                              "n_in": table.num_rows, "n_out": out.num_rows})
