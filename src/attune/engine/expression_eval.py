"""Evaluating a filter tree: compiled once into nested closures, then run per item.

Closures rather than a tree walk per item: dispatch on node type happens once, so a
simple filter costs about a microsecond per item. Values are plain Python (str, int,
float, bool, None, list, dict); pandas' missing markers and numpy scalars are turned into
those on the way in. Every operation is total: a null or a type mismatch yields null or
false, never an exception (see :mod:`attune.engine.expressions` for the rules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from attune.engine.expression_tree import (
    And,
    Arith,
    Compare,
    Duration,
    External,
    Field,
    ListLiteral,
    Literal,
    Node,
    Not,
    Now,
    Or,
    Property,
    Scalar,
    number_in_text,
)

Row = Mapping[str, Any]
Evaluator = Callable[[Row], Any]
Condition = Callable[[Row], bool]


def clean(value: Any) -> Any:
    """``value`` as a plain Python value: NaN / pd.NA → None, numpy → Python, tuple → list."""
    kind = type(value)
    if kind is str or kind is list or kind is bool or kind is int or value is None:
        return value
    if kind is float:
        return value if value == value else None
    if isinstance(value, np.ndarray | tuple):
        return [clean(v) for v in value.tolist()] if isinstance(value, np.ndarray) else list(value)
    if isinstance(value, np.generic):
        return clean(value.item())
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as dicts of plain values, ready for a compiled filter."""
    columns = [str(c) for c in frame.columns]
    values = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind in "biu":
            values.append(column.tolist())
        elif column.dtype.kind == "f" or isinstance(column.dtype, pd.StringDtype):
            missing = column.isna().tolist()
            values.append([None if m else v for v, m in zip(column.tolist(), missing, strict=True)])
        else:
            values.append([clean(v) for v in column.tolist()])
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


# -- operations (total: null or False on a mismatch) ------------------------------------


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or kind is float


def _as_numbers(a: Any, b: Any) -> tuple[float, float] | None:
    """``(a, b)`` as numbers where one is a number and the other text writing one."""
    if type(a) is str and _is_number(b):
        number = number_in_text(a)
        return None if number is None else (number, b)
    if type(b) is str and _is_number(a):
        number = number_in_text(b)
        return None if number is None else (a, number)
    return None


def _scalar_equal(a: Any, b: Any) -> bool | None:
    """Equality of same-typed scalars (text writing a number equals that number); None
    when they cannot be compared."""
    kind = type(a)
    if kind is str and type(b) is str:
        return a == b
    if kind is bool:
        return a == b if type(b) is bool else None
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    pair = _as_numbers(a, b)
    return None if pair is None else pair[0] == pair[1]


def _equal(a: Any, b: Any) -> bool | None:
    if type(a) is list and type(b) is list:
        # lists compare element by element, and only their scalars: never a deep recursion
        return len(a) == len(b) and all(_scalar_equal(x, y) for x, y in zip(a, b, strict=True))
    return _scalar_equal(a, b)


def _eq(a: Any, b: Any) -> bool:
    return _equal(a, b) is True


def _ne(a: Any, b: Any) -> bool:
    return _equal(a, b) is False


def _orderable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (type(a) is str and type(b) is str)


def _lt(a: Any, b: Any) -> bool:
    if _orderable(a, b):
        return bool(a < b)
    pair = _as_numbers(a, b)
    return pair is not None and pair[0] < pair[1]


def _le(a: Any, b: Any) -> bool:
    if _orderable(a, b):
        return bool(a <= b)
    pair = _as_numbers(a, b)
    return pair is not None and pair[0] <= pair[1]


def _gt(a: Any, b: Any) -> bool:
    if _orderable(a, b):
        return bool(a > b)
    pair = _as_numbers(a, b)
    return pair is not None and pair[0] > pair[1]


def _ge(a: Any, b: Any) -> bool:
    if _orderable(a, b):
        return bool(a >= b)
    pair = _as_numbers(a, b)
    return pair is not None and pair[0] >= pair[1]


def _contains(needle: Any, haystack: Any) -> bool | None:
    """``needle in haystack`` by the filter rules; None when the types do not fit."""
    hay_kind, kind = type(haystack), type(needle)
    if hay_kind is str:
        return needle in haystack if kind is str else None
    if hay_kind is not list:
        return None
    if kind is str:
        if needle in haystack:  # str == non-str is False, so this is exact per element
            return True
        number = number_in_text(needle)  # "18" in [18, 19]: context values are text
        return number is not None and any(_is_number(e) and e == number for e in haystack)
    if kind is bool:
        return any(e is needle for e in haystack)
    if kind is int or kind is float:
        return any(
            (_is_number(e) and e == needle) or (type(e) is str and number_in_text(e) == needle)
            for e in haystack
        )
    return None


def _in(needle: Any, haystack: Any) -> bool:
    return _contains(needle, haystack) is True


def _not_in(needle: Any, haystack: Any) -> bool:
    return _contains(needle, haystack) is False


_OPERATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": _ne,
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": _in,
    "not in": _not_in,
}


# -- compilation ------------------------------------------------------------------------


class _Constant:
    """A sub-expression's value known when compiling (it reads no item field)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def compile_condition(node: Node, now: float) -> Condition:
    """A function ``item -> bool`` for ``node`` used as a condition, with ``now`` bound.

    Items must hold plain values (see :func:`clean_row` and :func:`frame_records`).
    Sub-expressions that read no field (``now - 7d``) are computed here, once.
    """
    condition = _condition(node, now)
    if isinstance(condition, _Constant):
        verdict = bool(condition.value)
        return lambda row: verdict
    return condition


def compile_value(node: Node, now: float) -> Evaluator:
    """A function ``item -> value`` for ``node``, with ``now`` bound."""
    return _dynamic(_value(node, now))


def _dynamic(value: _Constant | Evaluator) -> Evaluator:
    if isinstance(value, _Constant):
        constant = value.value
        return lambda row: constant
    return value


def clean_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """One item's fields as plain values (NaN → None, numpy → Python)."""
    return {str(key): clean(value) for key, value in item.items()}


def _condition(node: Node, now: float) -> _Constant | Condition:
    match node:
        case Compare(op=op, left=left, right=right):
            return _compare(op, left, right, now)
        case Not(operand=operand):
            inner = _condition(operand, now)
            if isinstance(inner, _Constant):
                return _Constant(not inner.value)
            return lambda row: not inner(row)
        case And(operands=operands):
            return _junction([_condition(o, now) for o in operands], every=True)
        case Or(operands=operands):
            return _junction([_condition(o, now) for o in operands], every=False)
    value = _value(node, now)
    if isinstance(value, _Constant):
        return _Constant(value.value is True)
    return lambda row: value(row) is True


def _junction(parts: list[_Constant | Condition], every: bool) -> _Constant | Condition:
    """``and`` (``every``) or ``or`` of conditions, with the constant ones folded away."""
    if any(isinstance(p, _Constant) and bool(p.value) is not every for p in parts):
        return _Constant(not every)  # a false term decides an "and", a true one an "or"
    checks = [p for p in parts if not isinstance(p, _Constant)]
    if not checks:
        return _Constant(every)
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        if every:
            return lambda row: first(row) and second(row)
        return lambda row: first(row) or second(row)
    combine = all if every else any
    return lambda row: combine(check(row) for check in checks)


def _compare(op: str, left: Node, right: Node, now: float) -> _Constant | Condition:
    null = Literal(None)
    if op in ("==", "!=") and null in (left, right):
        # the one comparison with null that is not false: testing for absence
        other = _value(right if left == null else left, now)
        absent = op == "=="
        if isinstance(other, _Constant):
            return _Constant((other.value is None) is absent)
        return lambda row: (other(row) is None) is absent
    a, b, operation = _value(left, now), _value(right, now), _OPERATIONS[op]
    if isinstance(a, _Constant) and isinstance(b, _Constant):
        return _Constant(operation(a.value, b.value))
    if isinstance(a, _Constant):
        constant, name = a.value, right.name if isinstance(right, Field) else None
        if name is not None and op in ("in", "not in") and type(constant) is str:
            return _text_in_field(constant, name, op == "in")
        if name is not None:
            return lambda row: operation(constant, row.get(name))
        dynamic_b = b
        return lambda row: operation(constant, dynamic_b(row))
    if isinstance(b, _Constant):
        constant, name = b.value, left.name if isinstance(left, Field) else None
        if name is not None:
            return lambda row: operation(row.get(name), constant)
        dynamic_a = a
        return lambda row: operation(dynamic_a(row), constant)
    first, second = a, b
    return lambda row: operation(first(row), second(row))


def _text_in_field(needle: str, name: str, positive: bool) -> Condition:
    """``"x" in field`` / ``"x" not in field``: the commonest filter, kept to one call."""

    def check(row: Row) -> bool:
        haystack = row.get(name)
        kind = type(haystack)
        # list: exact per element (str == non-str is False); str: substring
        return (kind is list or kind is str) and (needle in haystack) is positive

    return check


def _value(node: Node, now: float) -> _Constant | Evaluator:
    match node:
        case Literal(value=value):
            return _Constant(value)
        case ListLiteral(items=items):
            return _Constant(list(items))
        case Duration():
            return _Constant(node.seconds)
        case Now():
            return _Constant(now)
        case Field(name=name):
            return lambda row: row.get(name)
        case Property(path=path, root=root):
            return _property(root, path)
        case External():
            return _Constant(None)  # unbound: see bind_tree
        case Arith(first=first, rest=rest):
            return _arith(first, rest, now)
    return _condition(node, now)


def _property(root: str, path: tuple[str, ...]) -> Evaluator:
    def read(row: Row) -> Any:
        return clean(_lookup(row.get(root), path))

    return read


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    """``value[path[0]][path[1]]…``; null where a step is missing or not a map."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _add(total: Any, plus: bool, value: Any) -> Any:
    if not (_is_number(total) and _is_number(value)):
        return None
    try:
        return total + value if plus else total - value
    except OverflowError:  # a float meeting an integer too large to convert
        return None


def _arith(first: Node, rest: tuple[tuple[str, Node], ...], now: float) -> _Constant | Evaluator:
    start = _value(first, now)
    terms = [(op == "+", _value(term, now)) for op, term in rest]
    if isinstance(start, _Constant) and all(isinstance(t, _Constant) for _, t in terms):
        total = start.value
        for plus, term in terms:
            assert isinstance(term, _Constant)
            total = _add(total, plus, term.value)
        return _Constant(total)
    evaluators = [(plus, _dynamic(term)) for plus, term in terms]
    head = _dynamic(start)

    def total_of(row: Row) -> Any:
        total = head(row)
        for plus, term in evaluators:
            total = _add(total, plus, term(row))
        return total

    return total_of


# -- binding request values -------------------------------------------------------------

_MAX_INT = 10**300  # longer integers have no literal (the tokenizer's limit)


def _scalar(value: Any) -> tuple[bool, Scalar]:
    """``(True, value)`` when ``value`` (already cleaned) can be written as a literal."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return True, value
    if kind is int:
        return -_MAX_INT < value < _MAX_INT, value
    if kind is float:
        return bool(np.isfinite(value)), value
    return False, None


def literal_of(value: Any) -> Literal | ListLiteral:
    """A request value as a literal: a string, number, bool, null, or a list of those
    (tuples and numpy arrays included); anything else (maps, nested lists, NaN,
    infinities) becomes null."""
    value = clean(value)
    if type(value) is list:
        items = [_scalar(clean(element)) for element in value]
        if all(ok for ok, _ in items):
            return ListLiteral(tuple(element for _, element in items))
        return Literal(None)
    ok, scalar = _scalar(value)
    return Literal(scalar if ok else None)


def bind_tree(node: Node, values: Mapping[str, Mapping[str, Any]]) -> Node:
    """``node`` with each :class:`External` replaced by its value in ``values``.

    Args:
        node: a parsed tree.
        values: scope → map, e.g. ``{"context": {"region": "EU"}, "user": traits}``; a
            missing scope or key, or a step into a non-map, binds null.
    """
    match node:
        case External(scope=scope, path=path):
            return replace(literal_of(_lookup(values.get(scope), path)), pos=node.pos)
        case Arith(first=first, rest=rest):
            terms = tuple((op, bind_tree(term, values)) for op, term in rest)
            return Arith(bind_tree(first, values), terms, node.pos)
        case Compare(op=op, left=left, right=right):
            return Compare(op, bind_tree(left, values), bind_tree(right, values), node.pos)
        case Not(operand=operand):
            return Not(bind_tree(operand, values), node.pos)
        case And(operands=operands):
            return And(tuple(bind_tree(o, values) for o in operands), node.pos)
        case Or(operands=operands):
            return Or(tuple(bind_tree(o, values) for o in operands), node.pos)
    return node
